"""Index bookkeeping for real-to-complex FFT grids: which Miller indices the stored half of
reciprocal space holds, and where."""

from __future__ import annotations

import numpy as np

__all__ = ["HalfGrid"]


class HalfGrid:
    """Index bookkeeping for the rfft half of a (n0, n1, n2) grid: (n0, n1, n2 // 2 + 1)."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.full = shape
        self.shape = (shape[0], shape[1], shape[2] // 2 + 1)
        self.size = int(np.prod(self.shape))

    def flat(self, hkl: np.ndarray) -> np.ndarray:
        """Flat full-grid index of Miller indices (n, 3) (taken modulo the grid)."""
        return np.ravel_multi_index(tuple(hkl[:, i] % self.full[i] for i in range(3)), self.full)

    def to_half(self, flat_full: np.ndarray) -> np.ndarray:
        """Flat full-grid indices → flat half-grid indices (−1 outside the stored half)."""
        i, j, k = np.unravel_index(flat_full, self.full)
        out = np.ravel_multi_index((i, j, np.minimum(k, self.shape[2] - 1)), self.shape)
        return np.where(k < self.shape[2], out, -1)

    def values_at(self, half_values: np.ndarray, hkl: np.ndarray) -> np.ndarray:
        """Values at Miller indices (n, 3) of a Hermitian array stored on the half grid (flat):
        stored indices directly, the others as the conjugate of their Friedel mate's."""
        at, mate = self.to_half(self.flat(hkl)), self.to_half(self.flat(-hkl))
        return np.where(
            at >= 0, half_values[np.maximum(at, 0)], np.conj(half_values[np.maximum(mate, 0)])
        )

    def select(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of a full-sphere hkl list stored in the half grid, their flat half-grid
        indices, and their weight in Σ over the sphere (2, or 1 on the self-mated planes)."""
        n2 = self.full[2]
        l_idx = hkl[:, 2] % n2
        rows = np.nonzero(l_idx < self.shape[2])[0]
        flat = np.ravel_multi_index(
            tuple(hkl[rows, i] % self.shape[i] for i in range(3)), self.shape
        )
        self_mated = (l_idx[rows] == 0) | ((n2 % 2 == 0) & (l_idx[rows] == n2 // 2))
        return rows, flat, np.where(self_mated, 1.0, 2.0)
