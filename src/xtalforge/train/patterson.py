"""Patterson super-resolution (task ``patterson_sr``): the Patterson map to d_high from the one
to d_low, both scaled to [0, 1] on fixed grids (12³ and 24³ by default, the thesis appendix's
choice), predicted by a circular U-Net (:class:`xtalforge.models.PattersonUNet`).

The way back (:func:`amplitudes_from_patterson`): the Fourier coefficients of a [0, 1]-scaled
Patterson map are c(h) = N |F(h)|² / (V (max − min)) for h ≠ 0, so the target shell's amplitudes
are √(k c(h)), k fitted on the known reflections (Σ|F|² / Σc), c averaged over the symmetry
equivalents and Friedel mates of h. Exact on a true map whose grid holds the sphere.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalforge.diffraction.maps import patterson_map
from xtalforge.diffraction.reflections import Reflections, at_or_above, below, reflections_from_hkl
from xtalforge.errors import ReflectionError, XtalforgeError
from xtalforge.models import build_model
from xtalforge.train.base import TaskModule, headline

__all__ = ["PattersonSR", "amplitudes_from_patterson", "check_grid", "patterson_pair"]


def check_grid(refl: Reflections, shape: tuple[int, int, int], what: str = "map") -> None:
    """Raise when ``shape`` cannot hold the reflections' Fourier components without aliasing
    (2|h|max + 1 points needed along each axis)."""
    if not len(refl):
        return
    need = 2 * np.abs(refl.hkl).max(axis=0) + 1
    if (need > np.asarray(shape)).any():
        raise ReflectionError(
            f"{what} grid {tuple(shape)} cannot hold reflections up to "
            f"|h|,|k|,|l| = {tuple(int(v) for v in (need - 1) // 2)} (needs "
            f"{tuple(int(v) for v in need)} points): raise the grid shape or "
            "lower the resolution / cell size"
        )


def patterson_pair(
    refl: Reflections,
    amp: np.ndarray,
    d_low: float,
    low_shape: tuple[int, int, int],
    high_shape: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """([0, 1]-scaled Patterson map from the reflections with d ≥ ``d_low`` on ``low_shape``,
    the one from all reflections on ``high_shape``), float32."""
    check_grid(refl, high_shape, "high-resolution Patterson")
    known = at_or_above(refl.d, d_low)
    low = patterson_map(refl.subset(known), amp[known], shape=low_shape, scale01=True)
    high = patterson_map(refl, amp, shape=high_shape, scale01=True)
    return low.astype(np.float32), high.astype(np.float32)


def amplitudes_from_patterson(
    pmap: np.ndarray, refl: Reflections, known: np.ndarray, known_amp: np.ndarray
) -> np.ndarray:
    """|F| of every reflection of ``refl`` from a (scaled) Patterson map on any grid that holds
    them, on the scale of ``known_amp`` (the amplitudes of the ``known`` reflections)."""
    check_grid(refl, pmap.shape, "Patterson")
    spec = np.fft.fftn(np.asarray(pmap, np.float64)).real
    eq = refl.symmetry.equivalents(refl.hkl.astype(np.int64))  # (n, S, 3)
    eq = np.concatenate([eq, -eq], axis=1)
    c = spec[tuple(eq[..., i] % pmap.shape[i] for i in range(3))].mean(axis=1)
    num = float((np.asarray(known_amp, float) ** 2).sum())
    den = float(c[known].sum())
    if not den > 0:
        raise XtalforgeError(
            "the map's Fourier coefficients of the known reflections are not "
            "positive: not a Patterson map of these data"
        )
    return np.sqrt(np.clip(c * num / den, 0, None))


def _item(refl: Reflections, amp: np.ndarray, task: dict, sample_id: int) -> dict[str, Any]:
    low, high = patterson_pair(
        refl, amp, task["d_low"], tuple(task["low_shape"]), tuple(task["high_shape"])
    )
    return {
        "input": torch.from_numpy(low)[None],
        "target": torch.from_numpy(high)[None],
        "id": sample_id,
    }


def item_from_row(row: dict, task: dict) -> dict[str, Any]:
    """A training item from a dataset row (hkl, F, cell, spacegroup, id)."""
    refl = reflections_from_hkl(
        row["hkl"].reshape(-1, 3).astype(np.int64), tuple(row["cell"].tolist()), row["spacegroup"]
    )
    use = at_or_above(refl.d, task["d_high"])
    return _item(refl.subset(use), np.asarray(row["F"], float)[use], task, int(row["id"]))


def item_from_crystal(crystal: Any, i: int, task: dict) -> dict[str, Any]:
    """A training item from a generated structure."""
    from xtalforge.train.task_data import crystal_data

    refl, f = crystal_data(crystal, task["d_high"])
    return _item(refl, np.abs(f), task, i)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps (B, …) → (B,)."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


class PattersonSR(TaskModule):
    """Patterson super-resolution; loss = MSE between predicted and true high-resolution maps.
    Every evaluation also scores the trivial baseline, the low-resolution map upsampled by
    periodic trilinear interpolation (what the network starts from)."""

    MONITOR = "val/mse"

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
        params = {"out_shape": tuple(task["high_shape"]), **model.get("params", {})}
        self.net = build_model(model["name"], model.get("size", "small"), **params)
        self.task = task

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.net(low)

    def baseline(self, low: torch.Tensor) -> torch.Tensor:
        from xtalforge.models.patterson_unet import periodic_upsample

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
        from xtalforge.diffraction.reflections import reflections

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


# -- building and evaluating ---------------------------------------------------------------------


def make_module(cfg: Any, data_root: Path | None) -> PattersonSR:
    data = (
        {"generator": cfg.data.generator, "test_length": cfg.data.test_length, "seed": cfg.seed}
        if cfg.data.generator is not None
        else None
    )
    return PattersonSR(
        cfg.model.model_dump(),
        cfg.task.model_dump(),
        cfg.optim.model_dump(),
        cfg.trainer.max_epochs,
        data,
    )


def make_datamodule(cfg: Any, data_root: Path | None) -> Any:
    from xtalforge.train.task_data import RowItems, TaskDataModule, generated_datamodule

    task = cfg.task.model_dump()
    if data_root is None:
        return generated_datamodule(cfg, functools.partial(item_from_crystal, task=task))
    make = functools.partial(item_from_row, task=task)
    sets = [RowItems(data_root, s, make) for s in ("train", "val", "test")]
    return TaskDataModule(
        *sets, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, seed=cfg.seed
    )


def _structures(module: PattersonSR, data: Path | None, split: str | None, limit: int | None):
    """(id, Reflections to d_high, |F|, atomic numbers) of the structures to evaluate: a dataset
    folder's split, the run's generated test structures, or a folder of CIFs (calculated F;
    structures whose reflections do not fit the map grid are reported and skipped)."""
    import sys

    from xtalforge.train.task_data import crystal_data, evaluation_crystals

    d_high = module.task["d_high"]
    if data is not None and (Path(data) / "manifest.json").is_file():
        from xtalforge.data.torch_data import ShardDataset

        rows = ShardDataset(data, split, mode="list")
        for i in range(len(rows) if limit is None else min(limit, len(rows))):
            row = rows.row(i)
            refl = reflections_from_hkl(
                row["hkl"].reshape(-1, 3).astype(np.int64),
                tuple(row["cell"].tolist()),
                row["spacegroup"],
            )
            use = at_or_above(refl.d, d_high)
            yield int(row["id"]), refl.subset(use), np.asarray(row["F"], float)[use], row.get("z")
        return
    for name, crystal in evaluation_crystals(module.hparams.data, data, limit):
        refl, f = crystal_data(crystal, d_high)
        try:
            check_grid(refl, tuple(module.task["high_shape"]), "high-resolution Patterson")
        except ReflectionError as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        yield name, refl, np.abs(f), crystal.z


def evaluate(
    module: PattersonSR, data: Path | None, split: str | None = "test", limit: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Map MSE and Pearson CC of the predicted high-resolution Patterson maps beside the
    upsampled low-resolution map, and R of the target shell's amplitudes recovered from them
    beside the Wilson fill. Returns (summary, per-structure rows)."""
    from xtalforge.diffraction.wilson import wilson_fill

    t = module.task
    rows: list[dict[str, Any]] = []
    sums = dict.fromkeys(("r_num", "r_den", "w_num"), 0.0)
    for sid, refl, amp, z in _structures(module, data, split, limit):
        low, high = patterson_pair(
            refl, amp, t["d_low"], tuple(t["low_shape"]), tuple(t["high_shape"])
        )
        x = torch.from_numpy(low)[None, None]
        with torch.no_grad():
            pred, base = module(x), module.baseline(x)
        true = torch.from_numpy(high)[None, None]
        known = at_or_above(refl.d, t["d_low"])
        rec = amplitudes_from_patterson(pred[0, 0].numpy(), refl, known, amp[known])
        fill = wilson_fill(amp, known, refl, z)
        tg = ~known
        r_num, r_den = float(np.abs(rec - amp)[tg].sum()), float(amp[tg].sum())
        w_num = float(np.abs(fill - amp)[tg].sum())
        sums["r_num"] += r_num
        sums["r_den"] += r_den
        sums["w_num"] += w_num
        rows.append(
            {
                "id": sid,
                "mse": float(((pred - true) ** 2).mean()),
                "mse_baseline": float(((base - true) ** 2).mean()),
                "cc": float(pearson(pred, true)[0]),
                "cc_baseline": float(pearson(base, true)[0]),
                "R_target": r_num / r_den if r_den else math.nan,
                "R_wilson": w_num / r_den if r_den else math.nan,
            }
        )
    if not rows:
        raise XtalforgeError("no structures to evaluate")

    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows]))

    summary = {
        **headline(
            "map_mse",
            mean("mse"),
            "lower",
            mean("mse_baseline"),
            "low-resolution map upsampled (periodic trilinear)",
        ),
        "map_cc": mean("cc"),
        "map_cc_baseline": mean("cc_baseline"),
        "R_target": sums["r_num"] / sums["r_den"],
        "R_wilson": sums["w_num"] / sums["r_den"],
        "fraction_beating_baseline": float(np.mean([r["mse"] < r["mse_baseline"] for r in rows])),
        "units": "maps scaled to [0, 1]; R on |F| of the target shell, the map's "
        "coefficients scaled on the known reflections",
    }
    return summary, rows
