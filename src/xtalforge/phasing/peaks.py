"""Density peaks of a phased map, and atom recovery against the true structure.

Peaks are local maxima of ρ on a grid of spacing ≤ d_min / ``sample_rate`` (periodic
neighbourhood), refined to sub-grid precision by a parabola through each peak and its
neighbours along every axis, and made unique under the space group: a peak closer than
``min_distance`` (Å) to a symmetry image of a higher one is dropped.
"""

from __future__ import annotations

import numpy as np

from xtalforge.crystal.model import orthogonalization_matrix
from xtalforge.diffraction.maps import density_map
from xtalforge.diffraction.reflections import Reflections

__all__ = ["atom_recovery", "find_peaks", "min_image_distances"]


def _images(frac: np.ndarray, refl: Reflections) -> np.ndarray:
    """(n, S, 3) symmetry images of fractional positions (all operations, centring included)."""
    rots, trans = refl.symmetry.all_ops()
    return np.einsum("sij,nj->nsi", rots, frac) + trans[None]


def min_image_distances(
    a: np.ndarray, b: np.ndarray, cell: tuple[float, ...], refl: Reflections | None = None
) -> np.ndarray:
    """(len(a), len(b)) shortest distances (Å) between positions of ``a`` and any lattice
    translate (and, given ``refl``, any symmetry image) of positions of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return np.full((len(a), len(b)), np.inf)
    imgs = _images(b, refl) if refl is not None else b[:, None, :]
    diff = a[:, None, None, :] - imgs[None]
    diff -= np.rint(diff)
    # the nearest image in fractions is the nearest in Å for all but very oblique cells;
    # check the 27 neighbours to be exact
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    orth = orthogonalization_matrix(tuple(cell))
    best = np.full(diff.shape[:3], np.inf)
    for s in shifts:
        best = np.minimum(best, np.linalg.norm((diff + s) @ orth.T, axis=-1))
    return best.min(axis=2)


def find_peaks(
    refl: Reflections, f: np.ndarray, n: int, sample_rate: float = 3.0, min_distance: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` highest unique peaks of the map of complex ``f`` (one per ASU reflection):
    fractional positions (n, 3) and heights (e/Å³ up to the map's scale), highest first."""
    from scipy.ndimage import maximum_filter

    rho = density_map(refl, f, sample_rate=sample_rate)
    shape = np.array(rho.shape)
    is_max = (rho == maximum_filter(rho, size=3, mode="wrap")) & (rho > rho.mean())
    idx = np.argwhere(is_max)
    heights = rho[tuple(idx.T)]
    order = np.argsort(-heights, kind="stable")
    idx, heights = idx[order], heights[order]
    # sub-grid refinement: a parabola along each axis
    frac = idx.astype(float)
    for ax in range(3):
        step = np.zeros(3, int)
        step[ax] = 1
        lo = rho[tuple(((idx - step) % shape).T)]
        hi = rho[tuple(((idx + step) % shape).T)]
        den = lo - 2 * heights + hi
        off = np.where(den < 0, 0.5 * (lo - hi) / np.where(den < 0, den, -1), 0.0)
        frac[:, ax] += np.clip(off, -0.5, 0.5)
    frac = (frac / shape) % 1.0
    kept: list[int] = []
    for i in range(len(frac)):
        if len(kept) >= n:
            break
        if (
            kept
            and min_image_distances(frac[i : i + 1], frac[kept], refl.cell, refl).min()
            < min_distance
        ):
            continue
        # a peak on a special position is its own image: keep it (distance to itself ≈ 0)
        kept.append(i)
    return frac[kept], heights[kept]


def atom_recovery(
    true_frac: np.ndarray, peaks: np.ndarray, refl: Reflections, tolerance: float = 0.5
) -> float:
    """Fraction of the true (non-H, ASU) atoms within ``tolerance`` Å of a symmetry image of a
    peak. The peaks must be in the truth's origin and hand (see :func:`~.score.score_phases`)."""
    if len(true_frac) == 0:
        return float("nan")
    d = min_image_distances(np.asarray(true_frac, float), np.asarray(peaks, float), refl.cell, refl)
    return float((d.min(axis=1) <= tolerance).mean()) if d.size else 0.0
