"""``ResolutionExtension``: the LightningModule that trains any registered model to predict the
amplitudes of the missing high-resolution reflections from the known low-resolution ones.

The output always keeps the known amplitudes and is zero at absent voxels (outside the sphere,
systematically absent, outside the ASU, padding); predictions are clipped at 0. The loss is the
MSE of the raw network output on the ``target`` reflections (optionally also on the known ones,
as the thesis did), pooled over the batch or (``task.loss: relative_mse``) relative to each
structure's Σ truth² and then averaged over structures. Every evaluation step also scores the
Wilson fill on the same reflections.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from xtalforge.models import build_model
from xtalforge.tasks.base import TaskModule
from xtalforge.tasks.metrics import (
    r_factor,
    r_factor_per_sample,
    r_terms,
    relative_se,
    shell_edges,
    shell_masks,
    ssim3d,
)
from xtalforge.tasks.resolution.extend import extend_amplitudes
from xtalforge.tasks.resolution.items import Extension

__all__ = ["ResolutionExtension", "compose", "grid_channels", "per_structure", "truth"]


def compose(raw: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Known amplitudes kept, predictions (clipped at 0) at targets, zero everywhere else."""
    known, target = batch["known"], batch["target_mask"]
    given = batch["input"] if "input" in batch else batch["value"] * known
    out = torch.where(known, given, raw.clamp_min(0))
    return torch.where(known | target, out, torch.zeros_like(out))


def grid_channels(batch: dict[str, torch.Tensor], d_high: float) -> torch.Tensor:
    """The U-Nets' input channels: known amplitudes, the known mask, and the resolution
    d_high / d of every voxel (1 at the outer edge of the sphere, 0 at absent voxels)."""
    inp = batch["input"]
    d = batch["d"]
    res = torch.where(d > 0, d_high / d.clamp_min(1e-6), torch.zeros_like(d))
    return torch.cat([inp, batch["known"].to(inp.dtype), res.to(inp.dtype)], dim=1)


def truth(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The true normalised amplitudes of a batch (grid ``target`` or list ``value``)."""
    return batch["target"] if "target" in batch else batch["value"]


class ResolutionExtension(TaskModule):
    """Resolution extension with a model from :mod:`xtalforge.models`.

    Parameters are plain mappings (saved as hyper-parameters, so a checkpoint rebuilds the
    model): ``model`` {name, size, params}, ``task`` {d_low, d_high, normalization, loss},
    ``optim`` (see :class:`xtalforge.tasks.config.OptimConfig`); ``training_domain`` (see
    :mod:`xtalforge.tasks.domain`) records what the training data held, so that ``predict``
    and ``evaluate`` can warn about data outside it; ``data`` where they came from
    (:meth:`xtalforge.tasks.base.DataSource.record`).
    """

    MONITOR = "val/R_target"

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        loss_on_known: bool = False,
        n_shells: int = 5,
        max_epochs: int = 10,
        training_domain: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        params = dict(model.get("params", {}))
        self.net = build_model(model["name"], model.get("size", "small"), **params)
        self.input_mode: str = str(self.net.input_mode)
        self.task = dict(task)
        self.extension = Extension(
            **{k: task[k] for k in ("d_low", "d_high", "normalization") if k in task}
        )
        self.edges = shell_edges(self.extension.d_high, self.extension.d_low, n_shells)
        self.loss_name: str = task.get("loss", "mse")
        self._sums: dict[str, torch.Tensor] = {}

    # -- prediction -------------------------------------------------------------------------
    def raw(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The network's output before composition (same shape as the truth)."""
        if self.input_mode == "grid":
            return self.net(grid_channels(batch, self.extension.d_high))
        return self.net(
            batch["hkl"],
            batch["value"] * batch["known"],
            batch["known"],
            batch["d"],
            batch["pad_mask"],
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return compose(self.raw(batch), batch)

    # -- steps ------------------------------------------------------------------------------
    def _masks(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        target, known = batch["target_mask"], batch["known"]
        if "pad_mask" in batch:
            target, known = target & batch["pad_mask"], known & batch["pad_mask"]
        return target, known

    def _loss_mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target, known = self._masks(batch)
        return target | known if self.hparams["loss_on_known"] else target

    def _loss_sums(
        self, raw: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(numerator, denominator) of the loss: squared errors over reflections (``mse``) or
        relative squared errors over structures (``relative_mse``), so that epoch sums pool
        batches the way the loss pools reflections."""
        mask, true = self._loss_mask(batch), truth(batch)
        if self.loss_name == "relative_mse":
            ratio, ok = relative_se(raw, true, mask)
            return ratio.sum(), ok.sum()
        m = mask.to(raw.dtype)
        return ((raw - true) ** 2 * m).sum(), m.sum()

    def _loss(self, raw: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        num, den = self._loss_sums(raw, batch)
        return num / den.clamp_min(1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        raw = self.raw(batch)
        loss = self._loss(raw, batch)
        target, _ = self._masks(batch)
        with torch.no_grad():
            sc = batch["scale"]
            r = r_factor(compose(raw, batch) * sc, truth(batch) * sc, target)
            r_w = r_factor(batch["wilson"] * sc, truth(batch) * sc, target)
        bs = len(batch["id"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/R_target", r, prog_bar=True, batch_size=bs)
        self.log("train/R_wilson", r_w, batch_size=bs)
        return loss

    def _accumulate(self, batch: dict[str, torch.Tensor]) -> None:
        raw = self.raw(batch)
        pred_n, true_n = compose(raw, batch), truth(batch)
        target, known = self._masks(batch)
        tf = target.to(true_n.dtype)
        # R, SSIM and shells on amplitudes with the largest known one = 1, whatever the
        # normalisation the model sees; MSE and loss in the model's units
        pred, true = pred_n * batch["scale"], true_n * batch["scale"]
        loss_num, loss_den = self._loss_sums(raw, batch)
        sums = {
            "loss_num": loss_num,
            "loss_den": loss_den,
            "mse_num": ((pred_n - true_n) ** 2 * tf).sum(),
            "mse_den": tf.sum(),
            "n": torch.tensor(float(len(batch["id"])), device=true.device),
        }
        sums["R_num"], sums["R_den"] = r_terms(pred, true, target)
        sums["Rall_num"], sums["Rall_den"] = r_terms(pred, true, target | known)
        sums["Rw_num"] = r_terms(batch["wilson"] * batch["scale"], true, target)[0]
        if self.input_mode == "grid":
            sums["ssim"] = ssim3d(pred, true).sum()
        for i, (_, _, shell) in enumerate(shell_masks(target, batch["d"], self.edges)):
            sums[f"shell{i}_num"], sums[f"shell{i}_den"] = r_terms(pred, true, shell)
        for k, v in sums.items():
            self._sums[k] = self._sums.get(k, 0) + v.detach().double()

    def _log_epoch(self, stage: str) -> dict[str, float]:
        s = self._sums
        self._sums = {}
        if not s:
            return {}
        out = {
            "loss": s["loss_num"] / s["loss_den"],
            "mse": s["mse_num"] / s["mse_den"],
            "R_target": s["R_num"] / s["R_den"],
            "R_all": s["Rall_num"] / s["Rall_den"],
            "R_wilson": s["Rw_num"] / s["R_den"],
        }
        if "ssim" in s:
            out["ssim"] = s["ssim"] / s["n"]
        for i, (upper, lower) in enumerate(itertools.pairwise(self.edges)):
            out[f"R_shell_{upper:.3f}-{lower:.3f}"] = s[f"shell{i}_num"] / s[f"shell{i}_den"]
        values = {k: float(v) for k, v in out.items()}
        for k, v in values.items():
            self.log(f"{stage}/{k}", v, prog_bar=k in ("R_target", "R_wilson"))
        return values

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._accumulate(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._accumulate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- the hook that extends a user's data -------------------------------------------------
    def extend_amplitudes(
        self,
        hkl: np.ndarray,
        amplitudes: np.ndarray,
        cell: tuple[float, ...],
        spacegroup: Any,
        z: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's amplitudes for the target shell (d_high ≤ d < d_low) of one structure
        (see :func:`xtalforge.tasks.resolution.extend.extend_amplitudes`)."""
        return extend_amplitudes(self, hkl, amplitudes, cell, spacegroup, z)


def per_structure(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """R_target, R_all, R_wilson (on max-scaled amplitudes) and MSE (in the model's units) of
    each structure of a batch (composed ``pred``)."""
    true = truth(batch)
    sc = batch["scale"]
    target, known = batch["target_mask"], batch["known"]
    if "pad_mask" in batch:
        target, known = target & batch["pad_mask"], known & batch["pad_mask"]
    m = target.reshape(len(true), -1).to(true.dtype)
    sq = ((pred - true) ** 2).reshape(len(true), -1)
    return {
        "R_target": r_factor_per_sample(pred * sc, true * sc, target),
        "R_all": r_factor_per_sample(pred * sc, true * sc, target | known),
        "R_wilson": r_factor_per_sample(batch["wilson"] * sc, true * sc, target),
        "mse": (sq * m).sum(1) / m.sum(1).clamp_min(1),
    }
