"""The one runner of every task: training runs, evaluation (what ``xtalforge train`` and
``xtalforge evaluate`` do). It knows tasks only through :class:`~xtalforge.tasks.base.Task`.

A run folder ``<output_dir>/<name>/version_<k>`` holds ``run.yaml`` (the resolved config, seed,
package/torch/Lightning versions, git commit, the dataset's folder and spec hash),
``checkpoints/{best,last}.ckpt``, CSV logs (``csv/metrics.csv``) and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from xtalforge.data.build import build_dataset
from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import load_spec
from xtalforge.errors import XtalforgeError
from xtalforge.generate.config import load_config
from xtalforge.outputs import writable_folder
from xtalforge.provenance import git_commit, versions
from xtalforge.tasks.base import DataSource, TaskModule
from xtalforge.tasks.checkpoints import load_checkpoint
from xtalforge.tasks.config import ConfigError, RunConfig
from xtalforge.tasks.domain import merge_domains, training_domain
from xtalforge.tasks.registry import get_task

__all__ = ["build_module", "evaluate", "prepare_data", "run_record", "train"]


def prepare_data(cfg: RunConfig, progress: Callable[[int, int], None] | None = None) -> DataSource:
    """Where a run's structures come from: ``data.path``, ``data.spec`` built (or resumed) once
    into ``<cache_dir>/<name>-<spec hash>``, or ``data.generator`` (made on the fly)."""
    d = cfg.data
    if d.generator is not None:
        return DataSource(
            generator=d.generator,
            lengths=(d.train_length, d.val_length, d.test_length),
            seed=cfg.seed,
        )
    if d.path is not None:
        root = Path(d.path)
        read_manifest(root)
        return DataSource(root=root, seed=cfg.seed)
    spec = load_spec(d.spec)  # type: ignore[arg-type]  # the one source left
    root = Path(d.cache_dir) / f"{spec.name}-{spec.spec_hash()[:8]}"
    done = (root / "manifest.json").is_file() and read_manifest(root).get("status") == "complete"
    if not done:
        build_dataset(spec, root, workers=d.workers, progress=progress)
    return DataSource(root=root, seed=cfg.seed)


def run_record(cfg: RunConfig, source: DataSource) -> dict[str, Any]:
    """What a run saves beside its checkpoints to be reproduced."""
    import lightning  # noqa: F401 - its version goes in the record
    import torch  # noqa: F401

    if source.root is None:
        n_train, n_val, n_test = source.lengths
        dataset = {
            "generator": load_config(source.generator).model_dump(mode="json"),
            "train_length": n_train,
            "val_length": n_val,
            "test_length": n_test,
        }
    else:
        m = read_manifest(source.root)
        dataset = {
            "path": str(source.root),
            "spec_hash": m.get("spec_hash"),
            "name": m.get("name"),
            "git_commit": m.get("git_commit"),
        }
    v = versions()
    return {
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "xtalforge_version": v["xtalforge_version"],
        "git_commit": git_commit(),
        "torch": v["torch"],
        "lightning": v["lightning"],
        "python": v["python"],
        "dataset": dataset,
    }


def build_module(cfg: RunConfig, source: DataSource) -> TaskModule:
    """The task's LightningModule for ``cfg``, recording its training domain (merged with
    ``init_from``'s) and started from ``init_from``'s weights when given."""
    base = load_checkpoint(cfg.init_from) if cfg.init_from else None
    domain: dict[str, Any] | None = training_domain(source)
    if base is not None:
        domain = merge_domains(base.hparams.get("training_domain"), domain)
    module = get_task(cfg.task.name).build_module(cfg, source, domain)
    if base is not None:
        try:
            module.load_state_dict(base.state_dict())
        except RuntimeError as exc:
            raise ConfigError(
                f"init_from {cfg.init_from}: weights do not fit model "
                f"{cfg.model.name} ({cfg.model.size}): {str(exc)[:300]}"
            ) from None
    return module


#: Environment variable that hands the run folder to DDP ranks > 0 (launched as new processes).
RUN_DIR_ENV = "XTALFORGE_RUN_DIR"


def _next_run_dir(cfg: RunConfig) -> Path:
    base = Path(cfg.output_dir) / cfg.name
    k = 0
    while (base / f"version_{k}").exists():
        k += 1
    return base / f"version_{k}"


def _quiet_lightning() -> None:
    """Hide Lightning's advertising tip and a deprecation warning from its own internals."""
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


def _trainer(cfg: RunConfig, run_dir: Path, monitor: str, progress: bool) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    callbacks: list[Any] = [
        *checkpoint_callbacks(run_dir / "checkpoints", monitor),
        LearningRateMonitor("epoch"),
    ]
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    t = cfg.trainer
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]  # Lightning validates it
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


def train(
    cfg: RunConfig,
    progress: bool = True,
    resume: str | Path | None = None,
    data_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Train a model of any task; returns the run folder. ``resume``: a run folder whose
    ``last.ckpt`` continues (same config)."""
    import lightning as L

    task = get_task(cfg.task.name)
    child = _ddp_child_run_dir()
    if resume is None and child is None:  # refused before any work
        writable_folder(Path(cfg.output_dir) / cfg.name, "run folder")
    source = prepare_data(cfg, data_progress)
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if resume is not None:
        run_dir = Path(resume)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise XtalforgeError(f"{run_dir}: nothing to resume (no checkpoints/last.ckpt)")
    elif child is not None:  # a DDP rank > 0: its launcher's run folder
        run_dir, ckpt = child, None
    else:
        run_dir, ckpt = _next_run_dir(cfg), None
        run_dir.mkdir(parents=True)
        (run_dir / "run.yaml").write_text(yaml.safe_dump(run_record(cfg, source), sort_keys=False))
    # Lightning's DDP launcher re-runs this command for ranks > 0 with this environment
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        return _fit(cfg, task, source, run_dir, ckpt, progress)
    finally:
        os.environ.pop(RUN_DIR_ENV, None)


def _ddp_child_run_dir() -> Path | None:
    """The run folder of the rank-0 process when this process is a DDP rank > 0."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    return None


def _fit(
    cfg: RunConfig,
    task: Any,
    source: Any,
    run_dir: Path,
    ckpt: Path | None,
    progress: bool,
) -> Path:
    """Build the module, data and trainer of a run and fit; returns the run folder."""
    module = build_module(cfg, source)
    datamodule = task.build_datamodule(cfg, source, module)
    trainer = _trainer(cfg, run_dir, task.module.MONITOR, progress)
    if cfg.data.length_grouping and trainer.world_size > 1:
        raise XtalforgeError(
            f"data.length_grouping batches on one device; this run has "
            f"{trainer.world_size} (trainer.devices={cfg.trainer.devices!r}): set "
            f"data.length_grouping=0 or trainer.devices=1"
        )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    return run_dir


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


def _training_data(module: TaskModule) -> str:
    source = module.data_source or {}
    return str(source["path"]) if source.get("path") else "generated"


def evaluate(
    checkpoint: str | Path,
    data: str | Path | None = None,
    split: str | None = "test",
    out: str | Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Score a checkpoint of any task beside its trivial baseline. Every result holds ``task``
    (its name), ``metric`` ({name, value, better}) and ``baseline`` (the trivial baseline's
    value of that metric on the same structures, described by ``baseline_name``); writes
    ``per_structure.csv`` and ``metrics.json`` into ``out`` when given.

    ``data``: a dataset folder (its ``split``) or a folder of structure CIFs (calculated F);
    ``None``: the training data recorded in the checkpoint — its dataset's test split, or the
    run's generated test structures. What each task measures: its ``evaluate``.
    """
    module = load_checkpoint(checkpoint)
    name = module.task_name
    where = Path(data) if data is not None else None
    summary, rows = get_task(name).evaluate(
        module, where, split, limit, Path(out) if out is not None else None
    )
    result = {
        "checkpoint": str(checkpoint),
        "data": str(data) if data is not None else _training_data(module),
        "split": split if data is not None else "test",
        "task": name,
        "model": module.hparams["model"]["name"],
        "n_structures": len(rows),
        **summary,
    }
    if out is not None:
        _write_results(Path(out), rows, result)
    return result
