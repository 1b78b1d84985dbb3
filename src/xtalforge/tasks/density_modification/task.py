"""Task ``density_modification``: a learned density-modification step for charge flipping.

Input: the map of the measured amplitudes to d_low (drawn per structure from [d_low,
d_low_max] Å) with partly wrong phases, on a grid of fixed spacing (Å) over the whole P1 cell;
target: the true E map to d_high on the same grid; both on the input's σ scale
(:mod:`.maps`). Structures are made on the fly by a generator (any space group; bonded
molecules give the real intensity fall-off). The network is fully convolutional with circular
padding, so it works on any cell and is equivariant to the origin. Used inside charge
flipping through ``charge_flip(..., dm_model=...)``. Metrics: map CC against the unmodified
input's (the trivial baseline), and the amplitude-weighted fraction of the extension shell's
phases within 45° of the truth (random: 25 %).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field, model_validator

from xtalforge.data.items import evaluation_structures, generated_datamodule
from xtalforge.errors import XtalforgeError
from xtalforge.tasks.base import DataSource, Evaluation, Task, TaskConfig, TaskModule, headline
from xtalforge.tasks.density_modification.maps import crystal_rng, map_pair
from xtalforge.tasks.density_modification.module import DensityModification, shell_phase_fraction
from xtalforge.tasks.metrics import pearson

if TYPE_CHECKING:
    from xtalforge.crystal.model import Crystal
    from xtalforge.tasks.config import RunConfig

__all__ = ["TASK", "DensityModificationConfig", "DensityModificationTask", "evaluate", "make_item"]


class DensityModificationConfig(TaskConfig):
    """Maps from data to d_low … d_low_max (Å) → the true map to d_high (Å), ``spacing`` Å
    between grid points."""

    name: Literal["density_modification"] = "density_modification"
    d_low: float = Field(1.5, gt=0)
    d_low_max: float = Field(2.1, gt=0)
    d_high: float = Field(1.0, gt=0)
    spacing: float = Field(0.35, gt=0)
    pearson_weight: float = Field(0.5, ge=0)  # loss MSE + w (1 − Pearson)
    flip_fraction: float = Field(0.5, ge=0, le=1)  # inputs moved on by flipping cycles
    max_flip_cycles: int = Field(40, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> DensityModificationConfig:
        if not self.d_low > self.d_high:
            raise ValueError(
                f"d_low ({self.d_low} Å) must be coarser than d_high ({self.d_high} Å)"
            )
        if self.d_low_max < self.d_low:
            raise ValueError(f"d_low_max ({self.d_low_max} Å) must be ≥ d_low ({self.d_low} Å)")
        if self.spacing > self.d_high / 2:
            raise ValueError(
                f"spacing {self.spacing} Å cannot sample a {self.d_high} Å map (at most d_high/2)"
            )
        return self


def make_item(crystal: Crystal, i: int, task: dict[str, Any]) -> dict[str, Any]:
    """The training item of one structure (tensors; the perturbation seeded by the structure)."""
    pair = map_pair(crystal, task, crystal_rng(crystal))
    return {
        "input": torch.from_numpy(pair.input)[None],
        "target": torch.from_numpy(pair.target)[None],
        "shell": torch.from_numpy(pair.shell),
        "shell_true": torch.from_numpy(pair.shell_true),
        "id": i,
    }


def as_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collate: maps of different cells have different grids, so a batch is a list."""
    return list(items)


class DensityModificationTask(Task):
    name = "density_modification"
    config = DensityModificationConfig
    module = DensityModification
    models = ("density_unet",)
    sources = ("generator",)

    def build_datamodule(
        self, cfg: RunConfig, source: DataSource, module: TaskModule
    ) -> L.LightningDataModule:
        d = cfg.data
        return generated_datamodule(
            source.generator,
            source.lengths,
            cfg.seed,
            d.batch_size,
            d.num_workers,
            make=functools.partial(make_item, task=cfg.task.model_dump()),
            collate=as_list,
        )

    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        assert isinstance(module, DensityModification)
        return evaluate(module, data, split, limit)


def evaluate(
    module: DensityModification,
    data: Path | None,
    split: str | None = "test",
    limit: int | None = None,
) -> Evaluation:
    """Map CC beside the unmodified input's and the extension shell's phases within 45° of
    the truth, on the run's test structures (or the CIFs / dataset rows in ``data``), each
    with its own fixed perturbation."""
    task = module.task
    rows: list[dict[str, Any]] = []
    for name, crystal in evaluation_structures(module.data_source, data, limit, split):
        pair = map_pair(crystal, task, crystal_rng(crystal, 1))
        x = torch.from_numpy(pair.input)[None, None]
        true = torch.from_numpy(pair.target)[None, None]
        with torch.no_grad():
            pred = module(x)
        hit, _ = shell_phase_fraction(
            pred[0, 0], torch.from_numpy(pair.shell), torch.from_numpy(pair.shell_true)
        )
        rows.append(
            {
                "id": name,
                "d_low": pair.d_low,
                "cc": float(pearson(pred, true)[0]),
                "cc_baseline": float(pearson(x, true)[0]),
                "shell_45": hit,
            }
        )
    if not rows:
        raise XtalforgeError("no structures to evaluate")
    summary = {
        **headline(
            "map_cc",
            np.mean([r["cc"] for r in rows]),
            "higher",
            np.mean([r["cc_baseline"] for r in rows]),
            "the input map, unmodified",
        ),
        "shell_phases_within_45": float(np.nanmean([r["shell_45"] for r in rows])),
        "units": "maps on the input's σ scale; CC against the true map to d_high; shell phases "
        "amplitude-weighted (random phases: 0.25)",
    }
    return summary, rows


TASK = DensityModificationTask()
