"""The task protocol: what every trainable task provides, so that one runner trains, evaluates
and checkpoints them all without knowing which it runs.

A task is a folder of :mod:`xtalforge.tasks` with one :class:`Task` object (``TASK``) and one
line in :data:`xtalforge.tasks.registry.TASKS`. It names its typed config (a
:class:`TaskConfig`), the models it can train, the data sources it reads, its LightningModule
(a :class:`TaskModule`, rebuilt from the checkpoint's hyper-parameters), its DataModule and its
evaluation. A module may offer the hooks the rest of the package uses:
``extend_amplitudes(hkl, amplitudes, cell, spacegroup, z)`` (amplitudes of a resolution shell:
``predict``, the solve benchmark's model rows) and ``phase(data, seed)`` (a
:class:`~xtalforge.phasing.solve.Solution` straight from the model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import torch
from pydantic import BaseModel, ConfigDict

from xtalforge.tasks.optim import configure_optimizers

if TYPE_CHECKING:
    from xtalforge.tasks.config import RunConfig

__all__ = ["DataSource", "Evaluation", "Task", "TaskConfig", "TaskModule", "headline"]

#: (summary, per-structure rows) of an evaluation.
Evaluation = tuple[dict[str, Any], list[dict[str, Any]]]


class TaskConfig(BaseModel):
    """The ``task`` block of a run config; each task extends it with its own fields."""

    model_config = ConfigDict(extra="forbid")

    name: str


@dataclass(frozen=True)
class DataSource:
    """Where a run's structures come from: a dataset folder (``root``), or a ``generator``
    (preset, YAML path or mapping) whose structures are made on the fly, ``lengths`` (train,
    val, test) per epoch from ``seed``."""

    root: Path | None = None
    generator: Any = None
    lengths: tuple[int, int, int] = (4096, 256, 256)
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """What a checkpoint stores to find its data again (its ``data`` hyper-parameter): the
        dataset folder, or the generator with the test set's length and seed."""
        if self.root is not None:
            return {"path": str(self.root)}
        return {"generator": self.generator, "test_length": self.lengths[2], "seed": self.seed}


class TaskModule(L.LightningModule):
    """Base of every task's LightningModule: hyper-parameters ``task`` (the task config as a
    mapping), ``optim`` and ``max_epochs`` expected; epoch sums pooled over validation batches.

    ``MONITOR`` names the validation metric that picks ``best.ckpt``; ``BENCHMARK_LABEL`` the
    solve benchmark's rows of the model."""

    MONITOR: ClassVar[str] = "val/loss"
    BENCHMARK_LABEL: ClassVar[str] = "model"
    _sums: dict[str, torch.Tensor]
    task: dict[str, Any]

    @property
    def task_name(self) -> str:
        """The registry name of the module's task (``resolution`` for old checkpoints)."""
        return str(self.hparams["task"].get("name", "resolution"))

    @property
    def data_source(self) -> dict[str, Any] | None:
        """The training data recorded in the checkpoint (see :meth:`DataSource.record`)."""
        return self.hparams.get("data")

    def add_sums(self, sums: dict[str, torch.Tensor], n: int) -> None:
        """Add per-batch sums (and the batch size as ``n``) to the epoch's totals."""
        if not hasattr(self, "_sums"):
            self._sums = {}
        sums = {**sums, "n": torch.tensor(float(n))}
        for k, v in sums.items():
            self._sums[k] = self._sums.get(k, 0) + v.detach().double().cpu()

    def log_means(self, stage: str, prog_bar: tuple[str, ...] = ()) -> None:
        """Log every total divided by the number of structures, then reset."""
        s, self._sums = getattr(self, "_sums", {}), {}
        for k, v in s.items():
            if k != "n":
                self.log(f"{stage}/{k}", float(v / s["n"]), prog_bar=k in prog_bar)

    def configure_optimizers(self) -> Any:
        return configure_optimizers(
            self.parameters(), self.hparams["optim"], self.hparams["max_epochs"]
        )


class Task(ABC):
    """One trainable task (see the module docstring)."""

    name: ClassVar[str]
    config: ClassVar[type[TaskConfig]]
    module: ClassVar[type[TaskModule]]
    #: Model registry names (:mod:`xtalforge.models`) the task can train.
    models: ClassVar[tuple[str, ...]]
    #: Data it trains on: ``dataset`` (data.path / data.spec) and/or ``generator``.
    sources: ClassVar[tuple[str, ...]] = ("dataset", "generator")

    def check(self, cfg: RunConfig) -> None:
        """Raise ``ValueError`` for settings of ``cfg`` this task cannot run (by default:
        length-grouped batches, which only reflection-token models use)."""
        if cfg.data.length_grouping:
            raise ValueError(
                "data.length_grouping applies to models whose tokens are reflections "
                f"(xrd_transformer), not {cfg.model.name}"
            )

    def build_module(
        self, cfg: RunConfig, source: DataSource, domain: dict[str, Any] | None
    ) -> TaskModule:
        """The LightningModule of ``cfg`` (``domain``: the training domain to record); by
        default ``module(model, task, optim, max_epochs, data, training_domain)``."""
        return self.module(
            cfg.model.model_dump(),
            cfg.task.model_dump(),
            cfg.optim.model_dump(),
            cfg.trainer.max_epochs,
            source.record(),
            domain,
        )

    @abstractmethod
    def build_datamodule(
        self, cfg: RunConfig, source: DataSource, module: TaskModule
    ) -> L.LightningDataModule:
        """Train / val / test loaders of ``cfg``'s data for ``module``."""

    @abstractmethod
    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        """Score ``module`` beside its trivial baseline: on ``data`` (a dataset folder's
        ``split``, or a folder of CIFs), or without it on the training source's test set.
        The summary starts with :func:`headline`; ``out`` (when given) takes figures."""


def headline(
    name: str, value: float, better: str, baseline: float, baseline_name: str
) -> dict[str, Any]:
    """The keys every evaluation starts with: ``metric`` {name, value, better}, ``baseline``
    (the trivial baseline's value of the same metric on the same structures) and its name."""
    return {
        "metric": {"name": name, "value": float(value), "better": better},
        "baseline": float(baseline),
        "baseline_name": baseline_name,
    }
