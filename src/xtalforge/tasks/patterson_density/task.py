"""Task ``patterson_density`` (after Pan et al., IUCrJ 2023): the electron density of a
molecule-like fragment in a P1 box from its Patterson map, both to d_high on a fixed grid in
[−1, 1], generated on the fly.

Fragments are centred (unwrapped along their bonds, centroid moved to the box centre), which
fixes the origin; the Patterson map cannot tell a structure from its inverse, so the loss
(MSE + ``pearson_weight`` (1 − Pearson CC)) and every metric take the better of the two hands.
Metrics: Pearson CC of the maps; the amplitude-weighted mean phase error (degrees) per
resolution shell; the solved fraction (phase CC ≥ 0.8, any origin).
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field, model_validator

from xtalforge.data.items import evaluation_structures, generated_datamodule
from xtalforge.errors import XtalforgeError
from xtalforge.phasing.score import score_phases
from xtalforge.tasks.base import DataSource, Evaluation, Task, TaskConfig, TaskModule, headline
from xtalforge.tasks.metrics import SHELL_SLACK, pearson, shell_edges
from xtalforge.tasks.patterson_density.maps import (
    item_from_crystal,
    map_pair,
    map_phases,
    other_hand,
)
from xtalforge.tasks.patterson_density.module import PattersonDensity
from xtalforge.tasks.patterson_sr.config import MapShape, check_shape

if TYPE_CHECKING:
    from xtalforge.tasks.config import RunConfig

__all__ = ["TASK", "PattersonDensityConfig", "PattersonDensityTask", "evaluate"]


class PattersonDensityConfig(TaskConfig):
    """The density to d_high from the Patterson map to d_high, both on ``high_shape``."""

    name: Literal["patterson_density"] = "patterson_density"
    d_high: float = Field(0.8, gt=0)  # Å
    high_shape: MapShape = (24, 24, 24)
    pearson_weight: float = Field(0.1, ge=0)  # loss MSE + w (1 − Pearson)

    @model_validator(mode="after")
    def _valid(self) -> PattersonDensityConfig:
        check_shape(self.high_shape)
        return self


class PattersonDensityTask(Task):
    name = "patterson_density"
    config = PattersonDensityConfig
    module = PattersonDensity
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
            make=functools.partial(item_from_crystal, task=cfg.task.model_dump()),
        )

    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        assert isinstance(module, PattersonDensity)
        return evaluate(module, data, split, limit)


def evaluate(
    module: PattersonDensity,
    data: Path | None,
    split: str | None = "test",
    limit: int | None = None,
) -> Evaluation:
    """Map CC (better hand) beside the shifted-Patterson baseline, phase error per shell and
    the solved fraction on the run's test fragments (or P1 CIFs in ``data``)."""
    t = module.task
    shape = tuple(t["high_shape"])
    d_high = t["d_high"]
    edges = shell_edges(d_high, 4 * d_high, 4)
    edges[0] = np.inf
    rows: list[dict[str, Any]] = []
    err_num = np.zeros(len(edges) - 1)
    err_den = np.zeros(len(edges) - 1)
    for name, crystal in evaluation_structures(module.data_source, data, limit):
        p, rho, refl, f = map_pair(crystal, d_high, shape)
        x = torch.from_numpy(p)[None, None]
        true = torch.from_numpy(rho)[None, None]
        with torch.no_grad():
            pred = module(x)
        cc_same, cc_inv = float(pearson(pred, true)[0]), float(pearson(pred, other_hand(true))[0])
        base = module.baseline(x)
        cc_base = max(float(pearson(base, true)[0]), float(pearson(base, other_hand(true))[0]))
        amp, true_phi = np.abs(f), np.angle(f)
        phi = map_phases(pred[0, 0].numpy(), refl.hkl)
        if cc_inv > cc_same:
            true_phi = -true_phi
        dphi = np.abs((phi - true_phi + np.pi) % (2 * np.pi) - np.pi)
        for i, (upper, lower) in enumerate(itertools.pairwise(edges)):
            sh = (refl.d >= lower * (1 - SHELL_SLACK)) & (refl.d < upper)
            err_num[i] += float((amp * dphi)[sh].sum())
            err_den[i] += float(amp[sh].sum())
        score = score_phases(refl, amp, np.angle(f), phi, p1=True)
        rows.append(
            {
                "id": name,
                "cc": max(cc_same, cc_inv),
                "cc_baseline": cc_base,
                "phase_cc": score.cc,
                "phase_error": score.phase_error,
                "solved": score.solved,
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
            "Patterson map shifted by half a cell",
        ),
        "solved_fraction": float(np.mean([r["solved"] for r in rows])),
        "median_phase_error": float(np.median([r["phase_error"] for r in rows])),
        "phase_error_shells": [
            {
                "d_upper": float(u),
                "d_lower": float(lo),
                "phase_error": float(np.degrees(n / d)) if d else float("nan"),
            }
            for (u, lo), n, d in zip(itertools.pairwise(edges), err_num, err_den, strict=True)
        ],
        "units": "maps scaled to [−1, 1]; CC with the better hand; phase errors in degrees, "
        "amplitude-weighted; solved = phase CC ≥ 0.8 at any origin",
    }
    return summary, rows


TASK = PattersonDensityTask()
