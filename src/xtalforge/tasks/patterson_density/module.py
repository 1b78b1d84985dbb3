"""``PattersonDensity``: the LightningModule of task ``patterson_density`` (a residual SE
U-Net, :class:`xtalforge.models.DensityUNet`) with the hand-invariant loss, and its ``phase``
hook: phases straight from the predicted density."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from xtalforge.diffraction.maps import check_grid, patterson_map
from xtalforge.diffraction.reflections import at_or_above
from xtalforge.errors import XtalforgeError
from xtalforge.models import build_model
from xtalforge.phasing.solve import Solution, SolveData
from xtalforge.tasks.base import TaskModule
from xtalforge.tasks.metrics import pearson
from xtalforge.tasks.patterson_density.maps import map_phases, other_hand, to_pm1

__all__ = ["PattersonDensity", "hand_loss"]


def hand_loss(
    pred: torch.Tensor, true: torch.Tensor, w: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-structure loss MSE + w (1 − CC) against the better hand of ``true``: (loss (B,),
    True where the inverted hand was better)."""
    losses = []
    for t in (true, other_hand(true)):
        losses.append(((pred - t) ** 2).flatten(1).mean(1) + w * (1 - pearson(pred, t)))
    both = torch.stack(losses, 1)
    best, which = both.min(1)
    return best, which.bool()


class PattersonDensity(TaskModule):
    """Patterson → density with the hand-invariant loss; validation logs the loss, the map CC
    and the trivial baseline's CC (the Patterson map itself moved to the box centre)."""

    MONITOR = "val/loss"
    BENCHMARK_LABEL = "density"

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        max_epochs: int = 10,
        data: dict[str, Any] | None = None,
        training_domain: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(model["name"], model.get("size", "small"), **model.get("params", {}))
        self.task = task

    def forward(self, patterson: torch.Tensor) -> torch.Tensor:
        """Density from the Patterson map (B, 1, …); the network also sees the map moved by
        half a cell (the baseline), which spares it learning that long-range shift."""
        return self.net(torch.cat([patterson, self.baseline(patterson)], 1))

    @staticmethod
    def baseline(patterson: torch.Tensor) -> torch.Tensor:
        """The Patterson map shifted by half a cell: a blob the shape of the fragment's
        self-vectors, centred where the fragment is."""
        n = patterson.shape[-3:]
        return torch.roll(patterson, shifts=tuple(v // 2 for v in n), dims=(-3, -2, -1))

    def _cc(self, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        return torch.maximum(pearson(pred, true), pearson(pred, other_hand(true)))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = hand_loss(self(batch["input"]), batch["target"], self.task["pearson_weight"])[0]
        loss = loss.mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["id"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pred, true = self(batch["input"]), batch["target"]
        self.add_sums(
            {
                "loss": hand_loss(pred, true, self.task["pearson_weight"])[0].sum(),
                "cc": self._cc(pred, true).sum(),
                "cc_baseline": self._cc(self.baseline(batch["input"]), true).sum(),
            },
            len(true),
        )

    def on_validation_epoch_end(self) -> None:
        self.log_means("val", ("cc", "cc_baseline"))

    def phase(self, data: SolveData, seed: int = 0) -> Solution:
        """A :class:`~xtalforge.phasing.solve.Solution` from amplitudes alone (``data``: a P1
        fragment to the model's d_high): Patterson → predicted density → phases of its Fourier
        coefficients. The map's origin and hand are arbitrary; scoring aligns both. ``seed``
        is unused (the model is deterministic)."""
        t0 = time.perf_counter()
        if data.refl.spacegroup.number != 1:
            raise XtalforgeError(
                f"{data.source}: the Patterson → density model works in P1, got "
                f"{data.refl.spacegroup.xhm()}"
            )
        d_high, shape = self.task["d_high"], tuple(self.task["high_shape"])
        keep = at_or_above(data.refl.d, d_high)
        refl = data.refl.subset(keep)
        check_grid(refl, shape, "density")
        p = to_pm1(patterson_map(refl, data.amplitudes[keep], shape=shape)).astype(np.float32)
        with torch.no_grad():
            rho = self(torch.from_numpy(p)[None, None])[0, 0].numpy()
        phases = np.zeros(len(data.refl))
        phases[keep] = map_phases(rho, refl.hkl)
        return Solution("density", phases, phases, time.perf_counter() - t0, None)
