"""Patterson → density (task ``patterson_density``), after "A deep learning solution for
crystallographic structure determination" (Pan et al., IUCrJ 2023): a residual U-Net
(:class:`xtalforge.models.DensityUNet`) maps the Patterson function of a molecule-like fragment
in a P1 box to its electron density, both to d_high on the fixed grid ``high_shape`` and scaled
to [−1, 1].

Fragments are centred (unwrapped along their bonds, centroid moved to the box centre), which
fixes the origin; the Patterson map cannot tell a structure from its inverse, so the loss
(MSE + ``pearson_weight`` (1 − Pearson CC)) and every metric take the better of the two hands,
ρ(x) or ρ(−x) (on the grid: index i → −i mod n; F → F*).

Metrics: Pearson CC of the maps; the amplitude-weighted mean phase error (degrees) of the
predicted map's Fourier coefficients against the true phases, per resolution shell; the solved
fraction (phase CC ≥ 0.8 from :func:`xtalforge.phasing.score.score_phases`, any origin).
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalforge.crystal.model import Crystal, orthogonalization_matrix
from xtalforge.diffraction.maps import density_map, patterson_map
from xtalforge.diffraction.reflections import at_or_above
from xtalforge.errors import XtalforgeError
from xtalforge.models import build_model
from xtalforge.train.base import TaskModule, headline
from xtalforge.train.metrics import shell_edges
from xtalforge.train.patterson import check_grid, pearson

__all__ = ["PattersonDensity", "centre_fragment", "map_pair", "other_hand"]


def centre_fragment(crystal: Crystal) -> Crystal:
    """The structure with its atoms unwrapped (each to the image nearest an earlier atom) and
    the centroid at (½, ½, ½): one connected fragment sits whole in the middle of the box."""
    orth = orthogonalization_matrix(crystal.cell)
    frac = crystal.frac.copy()
    for i in range(1, len(frac)):
        diff = frac[i] - frac[:i]
        diff -= np.rint(diff)
        j = int(np.argmin(np.linalg.norm(diff @ orth.T, axis=1)))
        frac[i] = frac[j] + diff[j]
    frac += 0.5 - frac.mean(axis=0)
    return Crystal(
        crystal.cell,
        crystal.spacegroup,
        crystal.z,
        frac,
        crystal.u_iso,
        crystal.occ,
        metadata=crystal.metadata,
    )


def to_pm1(m: np.ndarray) -> np.ndarray:
    """Linear rescaling of a map to [−1, 1]."""
    lo, hi = float(m.min()), float(m.max())
    return (2 * (m - lo) / (hi - lo) - 1) if hi > lo else np.zeros_like(m)


def map_pair(
    crystal: Crystal, d_high: float, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    """(Patterson map, density map — both [−1, 1] on ``shape`` —, reflections, F) of the
    centred fragment to ``d_high`` Å."""
    from xtalforge.train.task_data import crystal_data

    if crystal.spacegroup.number != 1:
        raise XtalforgeError(f"patterson_density works in P1 boxes, got {crystal.spacegroup.xhm()}")
    c = centre_fragment(crystal)
    refl, f = crystal_data(c, d_high)
    check_grid(refl, shape, "density")
    p = to_pm1(patterson_map(refl, np.abs(f), shape=shape))
    rho = to_pm1(density_map(refl, f, shape=shape))
    return p.astype(np.float32), rho.astype(np.float32), refl, f


def item_from_crystal(crystal: Crystal, i: int, task: dict) -> dict[str, Any]:
    p, rho, _, _ = map_pair(crystal, task["d_high"], tuple(task["high_shape"]))
    return {"input": torch.from_numpy(p)[None], "target": torch.from_numpy(rho)[None], "id": i}


def other_hand(m: torch.Tensor) -> torch.Tensor:
    """ρ(−x) of maps (…, n1, n2, n3) sampled at i/n: index i → −i mod n."""
    dims = (-3, -2, -1)
    return torch.roll(torch.flip(m, dims), shifts=(1, 1, 1), dims=dims)


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

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        max_epochs: int = 10,
        data: dict[str, Any] | None = None,
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


def map_phases(rho: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """Phases (radians) of the Fourier coefficients of a map ρ(i/n) at Miller indices ``hkl``,
    in the convention ρ(x) = (1/V) Σ F(h) exp(−2πi h·x)."""
    spec = np.fft.ifftn(np.asarray(rho, np.float64))  # Σ ρ exp(+2πi h·x) / N
    return np.angle(spec[tuple(hkl[:, i] % rho.shape[i] for i in range(3))])


# -- building and evaluating ---------------------------------------------------------------------


def _data_info(cfg: Any) -> dict[str, Any]:
    return {"generator": cfg.data.generator, "test_length": cfg.data.test_length, "seed": cfg.seed}


def make_module(cfg: Any, data_root: Path | None) -> PattersonDensity:
    return PattersonDensity(
        cfg.model.model_dump(),
        cfg.task.model_dump(),
        cfg.optim.model_dump(),
        cfg.trainer.max_epochs,
        _data_info(cfg),
    )


def make_datamodule(cfg: Any, data_root: Path | None) -> Any:
    from xtalforge.train.task_data import generated_datamodule

    return generated_datamodule(
        cfg, functools.partial(item_from_crystal, task=cfg.task.model_dump())
    )


def evaluate(
    module: PattersonDensity,
    data: Path | None,
    split: str | None = "test",
    limit: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Map CC (better hand) beside the shifted-Patterson baseline, phase error per shell and
    the solved fraction on the run's test fragments (or P1 CIFs in ``data``)."""
    from xtalforge.phasing.score import score_phases
    from xtalforge.train.task_data import evaluation_crystals

    t = module.task
    shape = tuple(t["high_shape"])
    d_high = t["d_high"]
    edges = shell_edges(d_high, 4 * d_high, 4)
    edges[0] = np.inf
    rows: list[dict[str, Any]] = []
    err_num = np.zeros(len(edges) - 1)
    err_den = np.zeros(len(edges) - 1)
    for name, crystal in evaluation_crystals(module.hparams.data, data, limit):
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
            sh = (refl.d >= lower * (1 - 1e-6)) & (refl.d < upper)
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


def density_solution(module: PattersonDensity, data: Any) -> Any:
    """A :class:`xtalforge.phasing.solve.Solution` from amplitudes alone (``SolveData`` of a
    P1 fragment to the model's d_high): Patterson → predicted density → phases of its Fourier
    coefficients. The map's origin and hand are arbitrary; scoring aligns both."""
    import time

    from xtalforge.phasing.solve import Solution

    t0 = time.perf_counter()
    if data.refl.spacegroup.number != 1:
        raise XtalforgeError(
            f"{data.source}: the Patterson → density model works in P1, got "
            f"{data.refl.spacegroup.xhm()}"
        )
    d_high, shape = module.task["d_high"], tuple(module.task["high_shape"])
    keep = at_or_above(data.refl.d, d_high)
    refl = data.refl.subset(keep)
    check_grid(refl, shape, "density")
    p = to_pm1(patterson_map(refl, data.amplitudes[keep], shape=shape)).astype(np.float32)
    with torch.no_grad():
        rho = module(torch.from_numpy(p)[None, None])[0, 0].numpy()
    phases = np.zeros(len(data.refl))
    phases[keep] = map_phases(rho, refl.hkl)
    return Solution("density", phases, phases, time.perf_counter() - t0, None)
