"""The hkl-grid tensor: every ASU reflection of a dataset at a fixed voxel of a dense array.

Voxel (i, j, k) holds reflection (h, k, l) = (i, j, k) + ``lower``: negative indices are shifted
by the grid's lower bounds, which come from the largest cell edges of the dataset and d_min
(|h| ≤ a/d_min) intersected with the reciprocal ASU of its space groups. Masks: ``known``
(measured, d ≥ d_low), ``target`` (to predict, d_high ≤ d < d_low), ``absent`` (every other voxel:
outside the sphere, systematically absent or not in the ASU). Zero is a legal amplitude and
never a mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import gemmi
import numpy as np

from xtalforge.crystal.symmetry import symmetry_info
from xtalforge.diffraction.reflections import Reflections, at_or_above
from xtalforge.errors import ReflectionError

__all__ = ["DenseHKL", "HKLGrid"]


@dataclass(frozen=True)
class DenseHKL:
    """A dense hkl-grid array with its masks (all of the grid's shape)."""

    values: np.ndarray
    known: np.ndarray
    target: np.ndarray
    absent: np.ndarray


@dataclass(frozen=True)
class HKLGrid:
    """Fixed-bounds dense layout of Miller indices.

    Attributes
    ----------
    lower : (h, k, l) stored at voxel (0, 0, 0).
    shape : number of voxels along h, k and l.
    """

    lower: tuple[int, int, int]
    shape: tuple[int, int, int]

    @classmethod
    def from_bounds(
        cls,
        max_cell: float | tuple[float, float, float],
        d_min: float,
        spacegroups: Iterable[str | int | gemmi.SpaceGroup],
    ) -> HKLGrid:
        """Smallest grid holding every ASU reflection with d ≥ ``d_min`` (Å) of any crystal whose
        edges a, b, c do not exceed ``max_cell`` (Å; one number or three) in the given space
        groups (the bounds depend only on their Laue classes and settings)."""
        edges = np.broadcast_to(np.asarray(max_cell, dtype=np.float64), (3,))
        if not (d_min > 0 and (edges > 0).all()):
            raise ReflectionError("max_cell and d_min must be positive (Å)")
        lim = np.floor(edges / d_min + 1e-9).astype(np.int64)
        axes = [np.arange(-n, n + 1) for n in lim]
        box = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        inside = np.zeros(len(box), dtype=bool)
        sgs = list(spacegroups)
        if not sgs:
            raise ReflectionError("HKLGrid.from_bounds needs at least one space group")
        for sg in sgs:
            inside |= symmetry_info(sg).in_asu(box)
        lo, hi = box[inside].min(axis=0), box[inside].max(axis=0)
        n = hi - lo + 1
        return cls((int(lo[0]), int(lo[1]), int(lo[2])), (int(n[0]), int(n[1]), int(n[2])))

    @property
    def h_max(self) -> int:
        """The largest |h|, |k| or |l| the grid holds."""
        return int(
            max(max(abs(lo), abs(lo + n - 1)) for lo, n in zip(self.lower, self.shape, strict=True))
        )

    def index(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel indices of Miller indices (n, 3); raises :class:`ReflectionError` when any
        reflection lies outside the grid."""
        idx = np.asarray(hkl, dtype=np.int64) - np.array(self.lower)
        outside = ((idx < 0) | (idx >= np.array(self.shape))).any(axis=1)
        if outside.any():
            bad = np.asarray(hkl)[outside]
            raise ReflectionError(
                f"{outside.sum()} reflection(s) outside the hkl grid "
                f"(lower {self.lower}, shape {self.shape}), e.g. "
                f"{tuple(int(v) for v in bad[0])}: the crystal's cell or "
                "resolution exceeds the grid's bounds"
            )
        return idx[:, 0], idx[:, 1], idx[:, 2]

    def to_dense(
        self,
        refl: Reflections,
        values: np.ndarray,
        d_low: float | None = None,
        d_high: float | None = None,
        dtype: type = np.float32,
    ) -> DenseHKL:
        """Place per-reflection ``values`` on the grid with ``known / target / absent`` masks.

        Reflections with d ≥ ``d_low`` (Å) are known, those with ``d_high`` ≤ d < ``d_low`` are
        targets; without ``d_low`` all given reflections are known. Reflections finer than
        ``d_high`` are left out (absent).
        """
        values = np.asarray(values)
        if values.shape[0] != len(refl):
            raise ReflectionError(f"{values.shape[0]} values for {len(refl)} reflections")
        if not np.isfinite(values).all():
            raise ReflectionError("values placed on the hkl grid must be finite")
        d_low = math.inf if d_low is None else d_low
        d_high = 0.0 if d_high is None else d_high
        use = at_or_above(refl.d, d_high)
        idx = self.index(refl.hkl[use])
        arr: np.ndarray = np.zeros(self.shape, dtype=dtype)
        arr[idx] = values[use]
        known = np.zeros(self.shape, dtype=bool)
        target = np.zeros(self.shape, dtype=bool)
        is_known = at_or_above(refl.d[use], d_low)
        known[tuple(i[is_known] for i in idx)] = True
        target[tuple(i[~is_known] for i in idx)] = True
        return DenseHKL(arr, known, target, ~(known | target))

    def from_dense(self, array: np.ndarray, refl: Reflections) -> np.ndarray:
        """Values of a dense array (…, *shape) at the reflections of ``refl``: (…, n)."""
        array = np.asarray(array)
        if tuple(array.shape[-3:]) != self.shape:
            raise ReflectionError(
                f"array shape {array.shape} does not end in the grid shape {self.shape}"
            )
        i, j, k = self.index(refl.hkl)
        return array[..., i, j, k]
