"""Training runs, evaluation and prediction (what ``xtalforge train / evaluate / predict`` do).

A run folder ``<output_dir>/<name>/version_<k>`` holds ``run.yaml`` (the resolved config, seed,
package/torch/Lightning versions, git commit, the dataset's folder and spec hash),
``checkpoints/{best,last}.ckpt``, CSV logs (``csv/metrics.csv``) and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import platform
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import DatasetError, load_spec
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import at_or_above, below
from xtalforge.errors import XtalforgeError
from xtalforge.train.config import ConfigError, RunConfig
from xtalforge.train.domain import domain_warnings, merge_domains, training_domain

__all__ = ["evaluate", "load_checkpoint", "predict_hkl", "prepare_data", "train"]


def prepare_data(cfg: RunConfig, progress: Callable[[int, int], None] | None = None) -> Path | None:
    """The dataset folder of a run: ``data.path``, or ``data.spec`` built (or resumed) once into
    ``<cache_dir>/<name>-<spec hash>``; None when structures are generated on the fly."""
    from xtalforge.data.build import build_dataset

    if cfg.data.generator is not None:
        return None
    if cfg.data.path is not None:
        root = Path(cfg.data.path)
        read_manifest(root)
        return root
    spec = load_spec(cfg.data.spec)
    root = Path(cfg.data.cache_dir) / f"{spec.name}-{spec.spec_hash()[:8]}"
    done = (root / "manifest.json").is_file() and read_manifest(root).get("status") == "complete"
    if not done:
        build_dataset(spec, root, workers=cfg.data.workers, progress=progress)
    return root


def dataset_grid(root: Path, d_high: float) -> HKLGrid:
    """The hkl grid of a dataset folder for resolution ``d_high`` (Å)."""
    m = read_manifest(root)
    return HKLGrid.from_bounds(tuple(m["max_edges"]), d_high, list(m["spacegroups"]))


def _h_max(grid: HKLGrid) -> int:
    return int(
        max(max(abs(lo), abs(lo + n - 1)) for lo, n in zip(grid.lower, grid.shape, strict=True))
    )


def _next_run_dir(cfg: RunConfig) -> Path:
    base = Path(cfg.output_dir) / cfg.name
    k = 0
    while (base / f"version_{k}").exists():
        k += 1
    return base / f"version_{k}"


def run_record(cfg: RunConfig, data_root: Path | None) -> dict[str, Any]:
    """What a run saves beside its checkpoints to be reproduced."""
    import lightning

    from xtalforge import __version__
    from xtalforge.data.build import _git_commit

    if data_root is None:
        from xtalforge.generate.config import load_config

        dataset = {
            "generator": load_config(cfg.data.generator).model_dump(mode="json"),
            "train_length": cfg.data.train_length,
            "val_length": cfg.data.val_length,
            "test_length": cfg.data.test_length,
        }
    else:
        m = read_manifest(data_root)
        dataset = {
            "path": str(data_root),
            "spec_hash": m.get("spec_hash"),
            "name": m.get("name"),
            "git_commit": m.get("git_commit"),
        }
    return {
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "xtalforge_version": __version__,
        "git_commit": _git_commit(),
        "torch": str(torch.__version__),
        "lightning": str(lightning.__version__),
        "python": platform.python_version(),
        "dataset": dataset,
    }


def build_module(cfg: RunConfig, data_root: Path | None) -> Any:
    """The LightningModule of a config (transformers get ``h_max`` from the dataset's grid),
    started from ``init_from``'s weights when given. A resolution-extension module records its
    training domain (the data's space groups and longest edge, merged with ``init_from``'s)."""
    from xtalforge.models import MODELS
    from xtalforge.train.resolution import ResolutionExtension
    from xtalforge.train.tasks import task_api

    base = load_checkpoint(cfg.init_from) if cfg.init_from else None
    if cfg.task.name != "resolution":
        module = task_api(cfg.task.name).make_module(cfg, data_root)
    else:
        params = dict(cfg.model.params)
        if MODELS[cfg.model.name].input_mode == "list" and "h_max" not in params:
            params["h_max"] = _h_max(dataset_grid(data_root, cfg.task.d_high))
        model = {**cfg.model.model_dump(), "params": params}
        domain = training_domain(cfg, data_root)
        if base is not None:
            domain = merge_domains(base.hparams.get("training_domain"), domain)
        module = ResolutionExtension(
            model,
            cfg.task.model_dump(),
            cfg.optim.model_dump(),
            cfg.loss_on_known,
            cfg.n_shells,
            cfg.trainer.max_epochs,
            domain,
        )
    if base is not None:
        try:
            module.load_state_dict(base.state_dict())
        except RuntimeError as exc:
            raise ConfigError(
                f"init_from {cfg.init_from}: weights do not fit model "
                f"{cfg.model.name} ({cfg.model.size}): {str(exc)[:300]}"
            ) from None
    return module


def load_checkpoint(path: str | Path) -> Any:
    """A trained model of any task (``ResolutionExtension``, ``PattersonSR``,
    ``PattersonDensity``, ``PhaseSign``; the task name is in the checkpoint's hyper-parameters,
    ``resolution`` for older checkpoints) from a checkpoint (CPU, eval mode)."""
    from xtalforge.train.tasks import task_class

    path = Path(path)
    if not path.is_file():
        raise XtalforgeError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = ckpt["hyper_parameters"]
        name = str(hparams["task"].get("name", "resolution"))
    except Exception as exc:  # any unreadable file is a bad checkpoint
        raise XtalforgeError(f"{path}: not an xtalforge checkpoint ({exc})") from None
    try:
        module = task_class(name)(**hparams)
        module.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise XtalforgeError(f"{path}: not a {name} checkpoint ({exc})") from None
    return module.eval()


def _quiet_lightning() -> None:
    """Hide Lightning's advertising tip and a deprecation warning from its own internals."""
    import logging

    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*IterableDataset. has .__len__. defined.*")

    class _NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip:" not in record.getMessage()

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
        logging.getLogger(name).addFilter(_NoTips())


def checkpoint_callbacks(folder: Path, monitor: str) -> list[Any]:
    """``best.ckpt`` (lowest ``monitor``) and ``last.ckpt``, rewritten after every validation
    whether or not it improved, so ``--resume`` continues from the latest epoch. (Lightning ≥ 2.6
    writes ``save_last`` only when a monitored checkpoint is saved.)"""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return [
        ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, mode="min"),
        ModelCheckpoint(
            dirpath=folder,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
    ]


def train(
    cfg: RunConfig,
    progress: bool = True,
    resume: str | Path | None = None,
    data_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Train a model; returns the run folder. ``resume``: a run folder whose ``last.ckpt``
    continues (same config)."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from xtalforge.data.modules import ShardDataModule
    from xtalforge.data.torch_data import Task
    from xtalforge.models import MODELS

    if cfg.data.length_grouping and (
        cfg.task.name != "resolution"
        or getattr(MODELS.get(cfg.model.name), "input_mode", "grid") != "list"
    ):
        raise XtalforgeError(
            f"data.length_grouping applies to models whose tokens are "
            f"reflections (xrd_transformer), not {cfg.model.name}"
        )
    data_root = prepare_data(cfg, data_progress)
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if resume is not None:
        run_dir = Path(resume)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise XtalforgeError(f"{run_dir}: nothing to resume (no checkpoints/last.ckpt)")
    else:
        run_dir, ckpt = _next_run_dir(cfg), None
        run_dir.mkdir(parents=True)
        (run_dir / "run.yaml").write_text(
            yaml.safe_dump(run_record(cfg, data_root), sort_keys=False)
        )
    module = build_module(cfg, data_root)
    if cfg.task.name == "resolution":
        t = cfg.task
        dm = ShardDataModule(
            data_root,
            Task(t.d_low, t.d_high, t.normalization),
            cfg.data.batch_size,
            cfg.data.num_workers,
            module.input_mode,
            cfg.seed,
            cfg.data.length_grouping,
        )
        monitor = "val/R_target"
    else:
        from xtalforge.train.tasks import task_api

        dm = task_api(cfg.task.name).make_datamodule(cfg, data_root)
        monitor = type(module).MONITOR
    callbacks: list[Any] = [
        *checkpoint_callbacks(run_dir / "checkpoints", monitor),
        LearningRateMonitor("epoch"),
    ]
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    t = cfg.trainer
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        callbacks=callbacks,
        logger=[
            CSVLogger(run_dir, name="csv", version=""),
            TensorBoardLogger(run_dir, name="tb", version="", default_hp_metric=False),
        ],
        enable_progress_bar=progress,
        enable_model_summary=progress,
    )
    if cfg.data.length_grouping and trainer.world_size > 1:
        raise XtalforgeError(
            f"data.length_grouping batches on one device; this run has "
            f"{trainer.world_size} (trainer.devices={t.devices!r}): set "
            f"data.length_grouping=0 or trainer.devices=1"
        )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    return run_dir


# -- evaluation ------------------------------------------------------------------------------


def _dense(grid: HKLGrid, hkl: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(grid.shape, np.float32)
    out[grid.index(hkl)] = values
    return out


def _write_results(out: Path, rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_structure.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # last and atomic: a folder with metrics.json holds a complete evaluation
    tmp = out / "metrics.json.part"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out / "metrics.json")


def evaluate(
    checkpoint: str | Path,
    data: str | Path | None,
    split: str | None = "test",
    out: str | Path | None = None,
    batch_size: int = 8,
    n_slices: int = 3,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score a checkpoint of any task. Every result holds ``task`` (its name), ``metric``
    ({name, value, better}) and ``baseline`` (the trivial baseline's value of that metric on
    the same structures, described by ``baseline_name``); writes ``per_structure.csv`` and
    ``metrics.json`` into ``out`` when given.

    Resolution extension (``data``: a dataset folder, or a folder of structure CIFs imported on
    the fly, see :func:`import_cif_folder`): pooled R_target, R_all, R_wilson, MSE, SSIM, R per
    shell, medians over structures, slice PNGs (true vs predicted, averaged over l); for
    imported data the per-structure rows name each structure's file and space group.
    Other tasks: see their ``evaluate``; ``data`` None scores the run's generated test
    structures, a dataset folder (``patterson_sr``) or a folder of CIFs (``patterson_density``,
    ``phase``) scores those.
    """
    from xtalforge.train.resolution import ResolutionExtension

    module = load_checkpoint(checkpoint)
    if not isinstance(module, ResolutionExtension):
        from xtalforge.train.tasks import task_api

        name = module.task["name"]
        summary, rows = task_api(name).evaluate(
            module, None if data is None else Path(data), split, limit
        )
        result = {
            "checkpoint": str(checkpoint),
            "data": str(data) if data else "generated",
            "split": split if data else "test",
            "task": name,
            "model": module.hparams.model["name"],
            "n_structures": len(rows),
            **summary,
        }
        if out is not None:
            _write_results(Path(out), rows, result)
        return result
    if data is None:
        raise XtalforgeError(
            "resolution extension is evaluated on a dataset folder or a folder "
            "of CIFs: give --data DIR"
        )
    root = Path(data)
    if root.is_dir() and not (root / "manifest.json").is_file():  # a folder of CIFs
        import tempfile

        with tempfile.TemporaryDirectory(prefix="xtalforge-eval-") as tmp:
            imported = import_cif_folder(
                root, Path(tmp) / "data", module.task.d_low, module.task.d_high
            )
            result = _evaluate_resolution(
                module, imported, "test", out, batch_size, n_slices, limit
            )
        result.update(data=str(root), split="all")
    else:
        result = _evaluate_resolution(module, root, split, out, batch_size, n_slices, limit)
    result = {"checkpoint": str(checkpoint), **result}
    rows = result.pop("_rows")
    if out is not None:
        _write_results(Path(out), rows, result)
    return result


def import_cif_folder(folder: Path, out: Path, d_low: float, d_high: float) -> Path:
    """A folder of structure CIFs as a dataset (the ``real-import`` preset: calculated F, every
    structure in the test split) computed to ``d_high`` with the split at ``d_low`` (Å); files
    that cannot be used are skipped and summed up in one warning (``import-report.csv`` in the
    dataset says why, per file)."""
    from xtalforge.data.build import build_dataset
    from xtalforge.io.cif_structure import cif_entries

    if not cif_entries(folder):
        raise XtalforgeError(f"{folder}: neither a dataset (no manifest.json) nor a folder of CIFs")
    spec = load_spec("real-import", cif_dir=str(folder.resolve()))
    spec = spec.model_copy(
        update={"compute": spec.compute.model_copy(update={"d_high": d_high, "d_low": d_low})}
    )
    manifest = build_dataset(spec, out)
    report = manifest.get("import_report", {})
    skipped = report.get("status", {}).get("skipped", 0)
    if skipped:
        with open(out / "import-report.csv", newline="") as fh:
            why = [
                f"{r['file']} ({r['problems']})"
                for r in csv.DictReader(fh)
                if r["status"] == "skipped"
            ]
        warnings.warn(
            f"{folder}: {skipped} of {report.get('files')} CIF entries skipped: "
            + "; ".join(why[:5])
            + (" …" if len(why) > 5 else ""),
            stacklevel=3,
        )
    if not manifest.get("rows"):
        raise XtalforgeError(f"{folder}: no usable structure among its CIFs")
    return out


def _evaluate_resolution(
    module: Any,
    root: Path,
    split: str | None,
    out: str | Path | None,
    batch_size: int,
    n_slices: int,
    limit: int | None,
) -> dict[str, Any]:
    """The resolution-extension metrics of a dataset folder (see :func:`evaluate`); the
    per-structure rows ride along under ``"_rows"``."""
    from torch.utils.data import DataLoader, Subset

    from xtalforge.data.torch_data import ShardDataset, collate_reflections
    from xtalforge.train.metrics import shell_masks, ssim3d
    from xtalforge.train.resolution import per_structure, truth

    grid = dataset_grid(root, module.task.d_high)
    manifest = read_manifest(root)
    outside = domain_warnings(
        module.hparams.get("training_domain"),
        manifest.get("spacegroups") or {},
        max(manifest.get("max_edges") or [0.0]),
        str(root),
    )
    for message in outside:
        warnings.warn(message, stacklevel=2)
    ds = ShardDataset(
        root,
        split,
        module.task,
        mode=module.input_mode,
        grid=grid if module.input_mode == "grid" else None,
    )
    if len(ds) == 0:
        raise DatasetError(f"{root}: split {split!r} is empty")
    if limit is not None:
        ds = Subset(ds, range(min(limit, len(ds))))
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        collate_fn=collate_reflections if module.input_mode == "list" else None,
    )
    rows: list[dict[str, Any]] = []
    sums = {k: 0.0 for k in ("num", "den", "num_all", "den_all", "num_w", "sq", "n_t")}
    shell_num = np.zeros(len(module.edges) - 1)
    shell_den = np.zeros(len(module.edges) - 1)
    slices: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    with torch.no_grad():
        for batch in loader:
            pred_n = module(batch)
            per = per_structure(pred_n, batch)
            # everything below on amplitudes with the largest known one = 1
            true_n = truth(batch)
            pred, true = pred_n * batch["scale"], true_n * batch["scale"]
            for b in range(len(true)):
                if module.input_mode == "grid":
                    p, t = pred[b : b + 1], true[b : b + 1]
                    inp = (batch["input"][b, 0] * batch["scale"][b, 0]).numpy()
                    tm, km = batch["target_mask"][b], batch["known"][b]
                    d, w = batch["d"][b], batch["wilson"][b] * batch["scale"][b]
                else:
                    real = batch["pad_mask"][b]
                    hkl = batch["hkl"][b][real].numpy()
                    p = torch.from_numpy(_dense(grid, hkl, pred[b][real].numpy()))[None, None]
                    t = torch.from_numpy(_dense(grid, hkl, true[b][real].numpy()))[None, None]
                    inp = _dense(grid, hkl, (true[b] * batch["known"][b])[real].numpy())
                    tm, km = batch["target_mask"][b] & real, batch["known"][b] & real
                    d, w = batch["d"][b], batch["wilson"][b] * batch["scale"][b]
                pb, tb = pred[b], true[b]
                sums["num"] += float(((pb - tb).abs() * tm).sum())
                sums["den"] += float((tb.abs() * tm).sum())
                sums["num_all"] += float(((pb - tb).abs() * (tm | km)).sum())
                sums["den_all"] += float((tb.abs() * (tm | km)).sum())
                sums["num_w"] += float(((w - tb).abs() * tm).sum())
                sums["sq"] += float(((pred_n[b] - true_n[b]) ** 2 * tm).sum())
                sums["n_t"] += float(tm.sum())
                for i, (_, _, shell) in enumerate(shell_masks(tm, d, module.edges)):
                    shell_num[i] += float(((pb - tb).abs() * shell).sum())
                    shell_den[i] += float((tb.abs() * shell).sum())
                ssim = float(ssim3d(p, t)[0])
                rows.append(
                    {
                        "id": int(batch["id"][b]),
                        **{k: float(v[b]) for k, v in per.items()},
                        "ssim": ssim,
                    }
                )
                if len(slices) < n_slices:
                    slices.append((int(batch["id"][b]), inp, t[0, 0].numpy(), p[0, 0].numpy()))
    r_target, r_wilson = sums["num"] / sums["den"], sums["num_w"] / sums["den"]
    result: dict[str, Any] = {
        "data": str(root),
        "split": split,
        "task": "resolution",
        "resolution": {
            "d_low": module.task.d_low,
            "d_high": module.task.d_high,
            "normalization": module.task.normalization,
        },
        "model": module.hparams.model["name"],
        "n_structures": len(rows),
        "metric": {"name": "R_target", "value": r_target, "better": "lower"},
        "baseline": r_wilson,
        "baseline_name": "Wilson fill",
        "units": "R on |F| scaled per structure so that its largest known |F| = 1; MSE in the "
        "model's normalisation",
        "R_target": r_target,
        "R_all": sums["num_all"] / sums["den_all"],
        "R_wilson": r_wilson,
        "mse": sums["sq"] / max(sums["n_t"], 1),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "median_R_target": float(np.median([r["R_target"] for r in rows])),
        "median_R_wilson": float(np.median([r["R_wilson"] for r in rows])),
        "fraction_beating_wilson": float(np.mean([r["R_target"] < r["R_wilson"] for r in rows])),
        "R_shells": [
            {"d_upper": u, "d_lower": lo, "R": n / dn if dn else math.nan}
            for (u, lo), n, dn in zip(
                itertools.pairwise(module.edges), shell_num, shell_den, strict=True
            )
        ],
        "training_domain": module.hparams.get("training_domain"),
        "warnings": outside,
        "_rows": _with_sources(root, rows),
    }
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        _plot_slices(slices, Path(out))
    return result


def _with_sources(root: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-structure rows of an imported dataset (CIFs, measured hkl) with their space group
    and source file (``file.cif [block]`` for multi-block CIFs) beside the id."""
    m = read_manifest(root)
    if "import_report" not in m:
        return rows
    from xtalforge.data.torch_data import ShardDataset

    meta = ShardDataset(root, None, mode="list", extra_columns=("metadata",))
    found: dict[int, tuple[str, str, str | None]] = {}
    for i in range(len(meta)):
        r = meta.row(i)
        info = json.loads(r.get("metadata") or "{}")
        found[int(r["id"])] = (
            r["spacegroup"],
            Path(info.get("source") or "?").name,
            info.get("block"),
        )
    per_file = Counter(source for _, source, _ in found.values())
    out = []
    for r in rows:
        group, source, block = found.get(int(r["id"]), ("", "", None))
        if block and per_file[source] > 1:
            source = f"{source} [{block}]"
        out.append(
            {
                "id": r["id"],
                "spacegroup": group,
                "source": source,
                **{k: v for k, v in r.items() if k != "id"},
            }
        )
    return out


def _plot_slices(slices: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for sid, inp, true, pred in slices:
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
        panels = [
            ("input (known)", inp),
            ("true", true),
            ("predicted", pred),
            ("predicted − true", pred - true),
        ]
        top = float(true.mean(axis=2).max()) or 1.0
        for ax, (title, arr) in zip(axes, panels, strict=True):
            img = arr.mean(axis=2).T
            diff = title.startswith("predicted −")
            im = ax.imshow(
                img,
                origin="lower",
                cmap="RdBu_r" if diff else "viridis",
                vmin=-top / 2 if diff else 0,
                vmax=top / 2 if diff else top,
            )
            ax.set_title(title)
            ax.set_xlabel("h (voxel)")
            ax.set_ylabel("k (voxel)")
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle(f"structure {sid}: amplitudes averaged over l")
        fig.tight_layout()
        fig.savefig(out / f"slice-{sid}.png", dpi=90)
        plt.close(fig)


# -- prediction on a user's data -------------------------------------------------------------


def extend_amplitudes(
    module: Any,
    hkl: np.ndarray,
    amplitudes: np.ndarray,
    cell: tuple[float, ...],
    spacegroup: Any,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's amplitudes for the target shell (d_high ≤ d < d_low) of one structure.

    ``hkl``/``amplitudes``: the known reflections (ASU, d ≥ d_low; |F| on any scale) — the
    output is on the same scale. ``z``: atomic numbers (for the Wilson scale), when known.
    Returns the shell's ASU indices and amplitudes.
    """
    from xtalforge.crystal.symmetry import resolve_space_group
    from xtalforge.data.torch_data import collate_reflections, make_item
    from xtalforge.diffraction.reflections import reflections
    from xtalforge.diffraction.wilson import wilson_rms

    task = module.task
    sg = resolve_space_group(spacegroup)
    shell = reflections(tuple(cell), task.d_high, spacegroup=sg)
    todo = below(shell.d, task.d_low)
    hkl = np.concatenate([np.asarray(hkl, np.int64), shell.hkl[todo].astype(np.int64)])
    amps = np.concatenate([np.asarray(amplitudes, float), np.zeros(int(todo.sum()))])
    norm_task = (
        task if task.normalization == "max" else type(task)(task.d_low, task.d_high, "wilson")
    )
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0]))
    hkl, amps = hkl[order], amps[order]
    grid = None
    if module.input_mode == "grid":
        grid = HKLGrid.from_bounds(tuple(cell[:3]), task.d_high, [sg])
    item = make_item(hkl, amps, tuple(cell), sg.xhm(), norm_task, grid, z=z)
    batch = (
        collate_reflections([item])
        if grid is None
        else {k: (v[None] if torch.is_tensor(v) else torch.tensor([v])) for k, v in item.items()}
    )
    with torch.no_grad():
        pred = module(batch)[0]
    pred_norm = pred.numpy() if grid is None else pred[0].numpy()[grid.index(hkl)]
    is_known = (
        item["known"].numpy().ravel() if grid is None else item["known"][0].numpy()[grid.index(hkl)]
    )
    if task.normalization == "max":
        scale = np.full(len(hkl), float(amps[is_known].max()))
    else:
        scale = wilson_rms(amps, is_known, hkl, tuple(cell), sg.xhm(), z)
    return hkl[~is_known], (pred_norm * scale)[~is_known]


def _completeness_note(
    path: Path, d_known: np.ndarray, cell: tuple[float, ...], sg: Any, d_low: float
) -> str | None:
    """A note when the measured data do not fill the sphere the model reads (d ≥ ``d_low`` Å):
    the model sees unmeasured reflections as zeros, so its predictions degrade."""
    from xtalforge.diffraction.reflections import reflections

    expected = reflections(cell, d_low, spacegroup=sg)
    outer = expected.d < 1.25 * d_low
    complete = len(d_known) / max(1, len(expected))
    outer_complete = (d_known < 1.25 * d_low).sum() / max(1, outer.sum())
    if complete >= 0.8 and outer_complete >= 0.8:
        return None
    return (
        f"{path}: the measured data fill {complete:.0%} of the unique reflections with "
        f"d ≥ {d_low} Å ({outer_complete:.0%} between {d_low} and {1.25 * d_low:.3g} Å; "
        f"data end at {d_known.min():.3g} Å); the model was trained on complete data to "
        f"{d_low} Å, so expect poorer predictions"
    )


def predict_hkl(
    checkpoint: str | Path,
    hkl_file: str | Path,
    out: str | Path,
    structure: str | Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
    predicted_sigma: float = 0.35,
) -> dict[str, Any]:
    """Extend a measured reflection file to the model's d_high and write SHELX HKLF 4.

    Cell and symmetry come from ``structure`` (CIF or .ins/.res), or ``cell`` (Å, degrees) +
    ``spacegroup``. All measured reflections are written unchanged (batch number 1); the
    reflections of the target shell (d_high ≤ d < d_low) that were not measured get the model's
    amplitudes as I = F² with σ(I) = 2 F · ``predicted_sigma`` F (batch number 2). Warns (and
    lists in ``"warnings"``) when the data are under 80 % complete to d_low, or lie outside the
    model's training domain (space group, cell edge); notes when the data already reach d_high.
    """
    import gemmi

    from xtalforge.io import write_hkl
    from xtalforge.io.merge import load_measured
    from xtalforge.train.resolution import ResolutionExtension

    module = load_checkpoint(checkpoint)
    if not isinstance(module, ResolutionExtension):
        raise XtalforgeError(
            f"{checkpoint}: a {module.task.get('name')} checkpoint; predict "
            "extends data with resolution-extension models only (for this "
            "task: xtalforge evaluate / benchmark solve)"
        )
    task = module.task
    path = Path(hkl_file)
    refl, amp, sig_amp, notes, comp = load_measured(
        path, Path(structure) if structure else None, cell, spacegroup
    )
    cell, sg = refl.cell, refl.spacegroup
    known = at_or_above(refl.d, task.d_low)
    if not known.any():
        raise XtalforgeError(f"{path}: no measured reflection with d ≥ {task.d_low} Å")
    gap = _completeness_note(path, refl.d[known], tuple(cell), sg, task.d_low)
    found = ([gap] if gap else []) + domain_warnings(
        module.hparams.get("training_domain"), [sg], max(cell[:3]), str(path)
    )
    for message in found:
        warnings.warn(message, stacklevel=2)
    z = (
        np.concatenate(
            [
                np.full(max(1, round(n)), gemmi.Element(str(e)).atomic_number)
                for e, n in comp.items()
            ]
        )
        if comp
        else None
    )
    new_hkl, new_f = extend_amplitudes(module, refl.hkl[known], amp[known], tuple(cell), sg, z)
    measured = {tuple(h) for h in refl.hkl.tolist()}
    fresh = np.array([tuple(h) not in measured for h in new_hkl.tolist()], bool)
    new_hkl, new_f = new_hkl[fresh], new_f[fresh]
    if (~known).any():
        notes = [
            *notes,
            f"{(~known).sum()} measured reflections lie in the model's target shell "
            f"(d < {task.d_low} Å; data end at {refl.d.min():.3g} Å): kept as "
            f"measured, only the {len(new_hkl)} unmeasured ones are predicted",
        ]
    out_i = np.concatenate([amp**2, new_f**2])
    sig_i = np.concatenate(
        [2 * amp * np.maximum(sig_amp, 1e-6), 2 * new_f * predicted_sigma * new_f]
    )
    batch_no = np.concatenate([np.ones(len(refl), int), np.full(len(new_hkl), 2)])
    scale_applied = write_hkl(
        out, np.concatenate([refl.hkl, new_hkl]), out_i, sig_i, hklf=4, batch=batch_no
    )
    return {
        "measured": len(refl),
        "predicted": len(new_hkl),
        "d_low": task.d_low,
        "d_high": task.d_high,
        "scale": scale_applied,
        "notes": notes,
        "warnings": found,
    }
