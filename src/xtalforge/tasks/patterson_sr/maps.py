"""Patterson maps of task ``patterson_sr`` and the way back to amplitudes.

The Fourier coefficients of a [0, 1]-scaled Patterson map are c(h) = N |F(h)|² / (V (max − min))
for h ≠ 0, so the target shell's amplitudes are √(k c(h)), k fitted on the known reflections
(Σ|F|² / Σc), c averaged over the symmetry equivalents and Friedel mates of h
(:func:`amplitudes_from_patterson`). Exact on a true map whose grid holds the sphere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xtalforge.diffraction.maps import check_grid, patterson_map
from xtalforge.diffraction.reflections import Reflections, at_or_above, reflections_from_hkl
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.errors import XtalforgeError

__all__ = ["amplitudes_from_patterson", "item_from_crystal", "item_from_row", "patterson_pair"]


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
    refl, f = calculated_data(crystal, task["d_high"])
    return _item(refl, np.abs(f), task, i)
