"""Compiled (numba) loops of the crystal layer.

Compiled on first use and cached on disk; importing this module compiles nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def site_symmetry_orders(
    frac: np.ndarray, rots: np.ndarray, trans: np.ndarray, orth: np.ndarray, tol: float
) -> np.ndarray:
    """Per atom (fractional ``frac`` (N, 3)) the number of operations (R, t) of the cell
    (``rots`` (S, 3, 3), ``trans`` (S, 3)) that map it within ``tol`` Å of itself, lattice
    translations aside (the difference wrapped to the nearest lattice point; Cartesian by
    ``orth``)."""
    n, s = frac.shape[0], rots.shape[0]
    out = np.zeros(n, np.int64)
    tol2 = tol * tol
    for i in range(n):
        x0, x1, x2 = frac[i, 0], frac[i, 1], frac[i, 2]
        for k in range(s):
            d = np.empty(3)
            for a in range(3):
                v = rots[k, a, 0] * x0 + rots[k, a, 1] * x1 + rots[k, a, 2] * x2 + trans[k, a]
                v -= (x0, x1, x2)[a]
                d[a] = v - np.rint(v)
            dist2 = 0.0
            for a in range(3):
                c = orth[a, 0] * d[0] + orth[a, 1] * d[1] + orth[a, 2] * d[2]
                dist2 += c * c
            if dist2 < tol2:
                out[i] += 1
    return out
