"""``PhaseSign``: the LightningModule of task ``phase`` (PhAI-style sign prediction with phase
recycling, :class:`xtalforge.models.PhaseNet`), inference from several starts, and its
``phase`` hook."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import at_or_above
from xtalforge.diffraction.wilson import normalize
from xtalforge.errors import XtalforgeError
from xtalforge.models import build_model
from xtalforge.phasing.solve import Solution, SolveData
from xtalforge.tasks.base import TaskModule
from xtalforge.tasks.phase.signs import (
    dense_item,
    figure_of_merit,
    invariant_accuracy,
    invariant_bce,
)

__all__ = ["PhaseSign", "predict_signs"]


class PhaseSign(TaskModule):
    """Sign prediction with recycling and the origin-invariant loss; validation logs the loss
    and the sign accuracy after ``recycles`` cycles (a coin gives 0.5; the origin choice lifts
    chance slightly above)."""

    MONITOR = "val/loss"
    BENCHMARK_LABEL = "phai"

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        max_epochs: int = 10,
        data: dict[str, Any] | None = None,
        grid: dict[str, Any] | None = None,
        training_domain: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if grid is None:
            raise XtalforgeError("a phase model needs its hkl grid (lower, shape)")
        self.grid = HKLGrid(tuple(grid["lower"]), tuple(grid["shape"]))
        self.net = build_model(
            model["name"],
            model.get("size", "small"),
            **{"grid_shape": self.grid.shape, **model.get("params", {})},
        )
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor], estimate: torch.Tensor) -> torch.Tensor:
        x = torch.cat([batch["e"], estimate * batch["present"], batch["present"]], 1)
        return self.net(x)

    def cycles(
        self, batch: dict[str, torch.Tensor], n: int, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits after ``n`` cycles (gradients through the last only)."""
        est = torch.zeros_like(batch["e"]) if start is None else start
        with torch.no_grad():
            for _ in range(n - 1):
                est = torch.tanh(self(batch, est) / 2)
        return self(batch, est)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(self.global_step))
        n = int(torch.randint(1, self.task["recycles"] + 1, (1,), generator=gen))
        loss = invariant_bce(self.cycles(batch, n), batch).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["id"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.cycles(batch, self.task["recycles"])
        self.add_sums(
            {
                "loss": invariant_bce(logits, batch).sum(),
                "accuracy": invariant_accuracy(torch.sign(logits), batch).sum(),
            },
            len(logits),
        )

    def on_validation_epoch_end(self) -> None:
        self.log_means("val", ("accuracy",))

    def phase(self, data: SolveData, seed: int = 0) -> Solution:
        """A :class:`~xtalforge.phasing.solve.Solution` for measured-like data (amplitudes to
        the model's d_high, |E| from a Wilson fit): phases 0/π of the best candidate; its
        figure of merit is the network's confidence."""
        t0 = time.perf_counter()
        halls = self.hparams["grid"].get("halls") or []
        if halls and data.refl.spacegroup.hall not in halls:
            raise XtalforgeError(
                f"{data.source}: space group {data.refl.spacegroup.xhm()} is not "
                "one the phase model was trained on"
            )
        cut = data.cut(self.task["d_high"])
        e = normalize(cut.amplitudes, cut.refl, composition=cut.composition or None)
        item = dense_item(cut.refl, e, None, self.grid)
        signs, fom = predict_signs(
            self, item, self.task["inference_cycles"], self.task["inference_starts"], seed
        )
        full = np.zeros(len(data.refl))
        keep = at_or_above(data.refl.d, self.task["d_high"])
        full[keep] = np.where(signs.numpy()[self.grid.index(cut.refl.hkl)] > 0, 0.0, np.pi)
        return Solution("phai", full, full, time.perf_counter() - t0, fom)


def predict_signs(
    module: PhaseSign, item: dict[str, torch.Tensor], cycles: int, starts: int, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Signs (*grid, ±1) of one structure: ``starts`` starts (zeros, then random signs) ×
    ``cycles`` recycling cycles, the candidate with the highest figure of merit; and that FOM."""
    batch = {
        k: (v[None].expand(starts, *v.shape) if torch.is_tensor(v) else v) for k, v in item.items()
    }
    gen = torch.Generator().manual_seed(seed)
    est = torch.where(torch.rand(batch["e"].shape, generator=gen) < 0.5, -1.0, 1.0)
    est[0] = 0.0
    best_fom, best = -1.0, torch.zeros(0)
    with torch.no_grad():
        for _ in range(cycles):
            logits = module(batch, est)
            fom = figure_of_merit(logits, batch)
            k = int(torch.argmax(fom))
            if float(fom[k]) > best_fom:
                best_fom, best = float(fom[k]), logits[k]
            est = torch.tanh(logits / 2)
    return torch.where(best >= 0, 1.0, -1.0)[0], best_fom
