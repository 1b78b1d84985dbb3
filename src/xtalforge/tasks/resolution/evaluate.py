"""Evaluation of a resolution-extension model: pooled R of the target shell beside the Wilson
fill, R on all reflections, MSE, 3D SSIM, R per shell, medians over structures and slice PNGs,
on a dataset folder's split, a folder of structure CIFs (imported on the fly) or the run's own
generated test structures."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from xtalforge.data.items import GeneratedItems
from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import TEST_OFFSET, DatasetError, load_spec
from xtalforge.data.torch_data import ShardDataset
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.errors import XtalforgeError
from xtalforge.tasks.base import Evaluation, headline
from xtalforge.tasks.domain import domain_warnings
from xtalforge.tasks.metrics import r_terms, shell_masks, ssim3d
from xtalforge.tasks.resolution.items import (
    collate_reflections,
    dataset_grid,
    extension_dataset,
    generator_grid,
    items_from_crystals,
)
from xtalforge.tasks.resolution.module import ResolutionExtension, per_structure, truth

__all__ = ["evaluate", "import_cif_folder"]

#: Structures per batch when evaluating, and reconstruction slices drawn.
EVAL_BATCH, N_SLICES = 8, 3


def evaluate(
    module: ResolutionExtension,
    data: Path | None,
    split: str | None = "test",
    limit: int | None = None,
    out: Path | None = None,
) -> Evaluation:
    """Score ``module`` (see the module docstring): ``data`` a dataset folder (its ``split``) or
    a folder of CIFs (calculated F, all structures; their rows name file and space group);
    ``None`` the training data recorded in the checkpoint (its dataset's ``split``, or its
    generator's fixed test structures)."""
    if data is None:
        source = module.data_source
        if not source:
            raise XtalforgeError(
                "this checkpoint records no training data: give --data (a dataset folder or "
                "a folder of CIFs)"
            )
        if not source.get("path"):
            return _evaluate_generated(module, source, limit, out)
        data = Path(source["path"])
    root = Path(data)
    if root.is_dir() and not (root / "manifest.json").is_file():  # a folder of CIFs
        ext = module.extension
        with tempfile.TemporaryDirectory(prefix="xtalforge-eval-") as tmp:
            imported = import_cif_folder(root, Path(tmp) / "data", ext.d_low, ext.d_high)
            summary, rows = _evaluate_folder(module, imported, "test", limit, out)
        return {**summary, "data": str(root), "split": "all"}, rows
    return _evaluate_folder(module, root, split, limit, out)


def _evaluate_folder(
    module: ResolutionExtension,
    root: Path,
    split: str | None,
    limit: int | None,
    out: Path | None,
) -> Evaluation:
    """The metrics of a dataset folder's split, with warnings for data outside the model's
    training domain."""
    grid = dataset_grid(root, module.extension.d_high)
    manifest = read_manifest(root)
    outside = domain_warnings(
        module.hparams.get("training_domain"),
        manifest.get("spacegroups") or {},
        max(manifest.get("max_edges") or [0.0]),
        str(root),
    )
    for message in outside:
        warnings.warn(message, stacklevel=3)
    ds = extension_dataset(root, split, module.extension, module.input_mode, grid)
    if len(ds) == 0:
        raise DatasetError(f"{root}: split {split!r} is empty")
    summary, rows = _score(module, ds, grid, out, limit)
    return {"data": str(root), "split": split, **summary, "warnings": outside}, _with_sources(
        root, rows
    )


def _evaluate_generated(
    module: ResolutionExtension, source: dict[str, Any], limit: int | None, out: Path | None
) -> Evaluation:
    """The metrics of the run's own generated test structures."""
    ext = module.extension
    grid = generator_grid(source["generator"], ext.d_high)
    make = functools.partial(
        items_from_crystals, task=ext, grid=grid if module.input_mode == "grid" else None
    )
    items = GeneratedItems(
        source["generator"],
        None,
        limit or source["test_length"],
        source["seed"] + TEST_OFFSET,
        make_batch=make,
    )
    summary, rows = _score(module, list(items), grid, out, None)
    return {"data": "generated", "split": "test", **summary, "warnings": []}, rows


class _Pooled:
    """Sums over structures of every pooled metric: R of the model and of the Wilson fill on
    the target shell, R on known + target, squared error, R per resolution shell."""

    def __init__(self, edges: list[float]) -> None:
        self.edges = edges
        self.sums = dict.fromkeys(("num", "den", "num_all", "den_all", "num_w", "sq", "n_t"), 0.0)
        self.shell_num = np.zeros(len(edges) - 1)
        self.shell_den = np.zeros(len(edges) - 1)

    def add(self, pb: Any, tb: Any, tm: Any, km: Any, w: Any, d: Any, sq: Any) -> None:
        """One structure: predicted and true amplitudes (max-scaled), target and known masks,
        the Wilson fill, d (Å) and the squared error in the model's units."""
        sums = self.sums
        for key, (num, den) in (("", r_terms(pb, tb, tm)), ("_all", r_terms(pb, tb, tm | km))):
            sums["num" + key] += float(num)
            sums["den" + key] += float(den)
        sums["num_w"] += float(r_terms(w, tb, tm)[0])
        sums["sq"] += float((sq * tm).sum())
        sums["n_t"] += float(tm.sum())
        for i, (_, _, shell) in enumerate(shell_masks(tm, d, self.edges)):
            num, den = r_terms(pb, tb, shell)
            self.shell_num[i] += float(num)
            self.shell_den[i] += float(den)


def _structure(
    module: ResolutionExtension,
    batch: dict[str, Any],
    pred: Any,
    true: Any,
    b: int,
    grid: HKLGrid,
) -> tuple[Any, ...]:
    """Structure ``b`` of a batch on the dense grid (list-mode items are placed on it): (pred,
    true (1, 1, *grid) tensors, known input, target mask, known mask, d, Wilson fill)."""
    w = batch["wilson"][b] * batch["scale"][b]
    if module.input_mode == "grid":
        inp = (batch["input"][b, 0] * batch["scale"][b, 0]).numpy()
        return (
            pred[b : b + 1],
            true[b : b + 1],
            inp,
            batch["target_mask"][b],
            batch["known"][b],
            batch["d"][b],
            w,
        )
    real = batch["pad_mask"][b]
    hkl = batch["hkl"][b][real].numpy()
    p = torch.from_numpy(_dense(grid, hkl, pred[b][real].numpy()))[None, None]
    t = torch.from_numpy(_dense(grid, hkl, true[b][real].numpy()))[None, None]
    inp = _dense(grid, hkl, (true[b] * batch["known"][b])[real].numpy())
    return (p, t, inp, batch["target_mask"][b] & real, batch["known"][b] & real, batch["d"][b], w)


def _score(
    module: ResolutionExtension, ds: Any, grid: HKLGrid, out: Path | None, limit: int | None
) -> Evaluation:
    """Every metric of the items of ``ds`` (pooled R_target, R_all, R_wilson, MSE, SSIM, R per
    shell, medians over structures) and the per-structure rows; slice PNGs into ``out``."""
    if limit is not None:
        ds = Subset(ds, range(min(limit, len(ds))))
    loader = DataLoader(
        ds,
        batch_size=EVAL_BATCH,
        collate_fn=collate_reflections if module.input_mode == "list" else None,
    )
    rows: list[dict[str, Any]] = []
    pooled = _Pooled(module.edges)
    slices: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    with torch.no_grad():
        for batch in loader:
            pred_n = module(batch)
            per = per_structure(pred_n, batch)
            # everything below on amplitudes with the largest known one = 1
            true_n = truth(batch)
            pred, true = pred_n * batch["scale"], true_n * batch["scale"]
            for b in range(len(true)):
                p, t, inp, tm, km, d, w = _structure(module, batch, pred, true, b, grid)
                pooled.add(pred[b], true[b], tm, km, w, d, (pred_n[b] - true_n[b]) ** 2)
                sid = int(batch["id"][b])
                rows.append(
                    {
                        "id": sid,
                        **{k: float(v[b]) for k, v in per.items()},
                        "ssim": float(ssim3d(p, t)[0]),
                    }
                )
                if len(slices) < N_SLICES:
                    slices.append((sid, inp, t[0, 0].numpy(), p[0, 0].numpy()))
    sums, shell_num, shell_den = pooled.sums, pooled.shell_num, pooled.shell_den
    r_target, r_wilson = sums["num"] / sums["den"], sums["num_w"] / sums["den"]
    result: dict[str, Any] = {
        "resolution": {
            "d_low": module.extension.d_low,
            "d_high": module.extension.d_high,
            "normalization": module.extension.normalization,
        },
        **headline("R_target", r_target, "lower", r_wilson, "Wilson fill"),
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
    }
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        _plot_slices(slices, Path(out))
    return result, rows


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


def _with_sources(root: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-structure rows of an imported dataset (CIFs, measured hkl) with their space group
    and source file (``file.cif [block]`` for multi-block CIFs) beside the id."""
    m = read_manifest(root)
    if "import_report" not in m:
        return rows

    meta = ShardDataset(root, None, extra_columns=("metadata",))
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


def _dense(grid: HKLGrid, hkl: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(grid.shape, np.float32)
    out[grid.index(hkl)] = values
    return out
