"""Compiled (numba) loop that lists the reciprocal-ASU reflections inside a resolution shell.

:func:`xtalforge.diffraction.reflections.reflections` keeps, per space group, the non-absent
ASU indices of an index box with a dense grid of their row numbers. Listing a crystal's
reflections then needs only the grid points inside the sphere 1/d² ≤ 1/d_min²: for each (h, k)
the quadratic in l gives the range of l to visit, so the loop touches about as many points as
the sphere holds, not the whole box, and writes the rows in lexicographic (h, k, l) order.
Compiled on first use and cached on disk; importing this module compiles nothing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def rows_in_shell(
    grid: np.ndarray,
    big: tuple[int, int, int],
    lim: tuple[int, int, int],
    gstar: np.ndarray,
    inv_d2_max: float,
    inv_d2_min: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the candidate grid (``grid[h + big₀, k + big₁, l + big₂]`` ≥ 0) with |h| ≤ lim₀,
    |k| ≤ lim₁, |l| ≤ lim₂ and inv_d2_min ≤ 1/d² ≤ inv_d2_max (Å⁻², reciprocal metric
    ``gstar``), in (h, k, l) order, and their 1/d² (hᵀ G* h summed row by row)."""
    g00, g01, g02 = gstar[0, 0], gstar[0, 1], gstar[0, 2]
    g10, g11, g12 = gstar[1, 0], gstar[1, 1], gstar[1, 2]
    g20, g21, g22 = gstar[2, 0], gstar[2, 1], gstar[2, 2]
    cap = 1024
    rows = np.empty(cap, dtype=np.int64)
    inv = np.empty(cap)
    n = 0
    for h in range(-lim[0], lim[0] + 1):
        for k in range(-lim[1], lim[1] + 1):
            # 1/d² = g22 l² + 2 b l + c for this (h, k): the l range inside the sphere, widened
            # by one on each side (the exact test below decides)
            b = 0.5 * ((g02 + g20) * h + (g12 + g21) * k)
            c = g00 * h * h + (g01 + g10) * h * k + g11 * k * k
            disc = b * b - g22 * (c - inv_d2_max)
            if disc < 0.0:
                continue
            root = math.sqrt(disc)
            lo = max(-lim[2], math.floor((-b - root) / g22) - 1)
            hi = min(lim[2], math.ceil((-b + root) / g22) + 1)
            for m in range(lo, hi + 1):
                row = grid[h + big[0], k + big[1], m + big[2]]
                if row < 0:
                    continue
                x0 = h * g00 + k * g10 + m * g20
                x1 = h * g01 + k * g11 + m * g21
                x2 = h * g02 + k * g12 + m * g22
                q = x0 * h + x1 * k + x2 * m
                if q > inv_d2_max or q < inv_d2_min:
                    continue
                if n == cap:
                    cap *= 2
                    rows2 = np.empty(cap, dtype=np.int64)
                    inv2 = np.empty(cap)
                    rows2[:n] = rows[:n]
                    inv2[:n] = inv[:n]
                    rows, inv = rows2, inv2
                rows[n] = row
                inv[n] = q
                n += 1
    return rows[:n], inv[:n]
