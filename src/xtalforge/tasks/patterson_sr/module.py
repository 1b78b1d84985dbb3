"""``PattersonSR``: the LightningModule of task ``patterson_sr`` (a circular U-Net,
:class:`xtalforge.models.PattersonUNet`), and its ``extend_amplitudes`` hook: the predicted
high-resolution Patterson map back to the amplitudes of the target shell."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xtalforge.diffraction.maps import check_grid, patterson_map
from xtalforge.diffraction.reflections import at_or_above, below, reflections, reflections_from_hkl
from xtalforge.models import build_model
from xtalforge.models.patterson_unet import periodic_upsample
from xtalforge.tasks.base import TaskModule
from xtalforge.tasks.metrics import pearson
from xtalforge.tasks.patterson_sr.maps import amplitudes_from_patterson

__all__ = ["PattersonSR"]


class PattersonSR(TaskModule):
    """Patterson super-resolution; loss = MSE between predicted and true high-resolution maps.
    Every evaluation also scores the trivial baseline, the low-resolution map upsampled by
    periodic trilinear interpolation (what the network starts from)."""

    MONITOR = "val/mse"
    BENCHMARK_LABEL = "patterson"

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
        params = {"out_shape": tuple(task["high_shape"]), **model.get("params", {})}
        self.net = build_model(model["name"], model.get("size", "small"), **params)
        self.task = task

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.net(low)

    def baseline(self, low: torch.Tensor) -> torch.Tensor:
        return periodic_upsample(low, tuple(self.task["high_shape"]))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.mean((self(batch["input"]) - batch["target"]) ** 2)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["id"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pred, true = self(batch["input"]), batch["target"]
        base = self.baseline(batch["input"])
        mse = ((pred - true) ** 2).flatten(1).mean(1).sum()
        self.add_sums(
            {
                "loss": mse,
                "mse": mse,
                "mse_baseline": ((base - true) ** 2).flatten(1).mean(1).sum(),
                "cc": pearson(pred, true).sum(),
                "cc_baseline": pearson(base, true).sum(),
            },
            len(true),
        )

    def on_validation_epoch_end(self) -> None:
        self.log_means("val", ("mse", "mse_baseline"))

    # -- the way back ----------------------------------------------------------------------
    def extend_amplitudes(
        self,
        hkl: np.ndarray,
        amplitudes: np.ndarray,
        cell: tuple[float, ...],
        spacegroup: Any,
        z: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Amplitudes of the target shell (d_high ≤ d < d_low) of one structure from its known
        ones (ASU ``hkl``, d ≥ d_low, any scale — the output has the same): predicted
        high-resolution Patterson → Fourier coefficients. Returns (ASU hkl, |F|)."""
        d_low, d_high = self.task["d_low"], self.task["d_high"]
        full = reflections(tuple(cell), d_high, spacegroup=spacegroup)
        known_refl = reflections_from_hkl(np.asarray(hkl, np.int64), tuple(cell), spacegroup)
        amps = np.asarray(amplitudes, float)
        keep = at_or_above(known_refl.d, d_low)
        check_grid(full, tuple(self.task["high_shape"]), "high-resolution Patterson")
        low = patterson_map(
            known_refl.subset(keep), amps[keep], shape=tuple(self.task["low_shape"]), scale01=True
        )
        with torch.no_grad():
            pred = self(torch.from_numpy(low.astype(np.float32))[None, None])[0, 0].numpy()
        shell = below(full.d, d_low)
        both = reflections_from_hkl(
            np.concatenate([known_refl.hkl[keep], full.hkl[shell]]), tuple(cell), spacegroup
        )
        is_known = np.r_[np.ones(int(keep.sum()), bool), np.zeros(int(shell.sum()), bool)]
        amp = amplitudes_from_patterson(pred, both, is_known, amps[keep])
        return full.hkl[shell].astype(np.int64), amp[~is_known]
