"""Maps of task ``patterson_density``: fragments centred in their P1 box, Patterson and density
maps scaled to [−1, 1] on a fixed grid, the other hand of a map, and the phases of a map's
Fourier coefficients."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xtalforge.crystal.model import Crystal, orthogonalization_matrix
from xtalforge.diffraction.maps import check_grid, density_map, patterson_map
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.errors import XtalforgeError

__all__ = ["centre_fragment", "item_from_crystal", "map_pair", "map_phases", "other_hand", "to_pm1"]


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
    if crystal.spacegroup.number != 1:
        raise XtalforgeError(f"patterson_density works in P1 boxes, got {crystal.spacegroup.xhm()}")
    c = centre_fragment(crystal)
    refl, f = calculated_data(c, d_high)
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


def map_phases(rho: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """Phases (radians) of the Fourier coefficients of a map ρ(i/n) at Miller indices ``hkl``,
    in the convention ρ(x) = (1/V) Σ F(h) exp(−2πi h·x)."""
    spec = np.fft.ifftn(np.asarray(rho, np.float64))  # Σ ρ exp(+2πi h·x) / N
    return np.angle(spec[tuple(hkl[:, i] % rho.shape[i] for i in range(3))])
