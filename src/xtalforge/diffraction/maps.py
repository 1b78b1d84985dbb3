"""Patterson and electron-density maps by FFT on the full P1 reciprocal grid.

ρ(x) = (1/V) Σ_h F(h) exp(−2πi h·x) and P(u) = (1/V) Σ_h |F(h)|² cos(2π h·u), summed over the
full sphere (symmetry equivalents and Friedel mates expanded from the ASU). Maps are returned as
float arrays of shape (n_a, n_b, n_c) indexed by fractional coordinate i/n along each axis.
"""

from __future__ import annotations

import math

import numpy as np

from xtalforge.crystal.model import cell_volume
from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import ReflectionError

__all__ = [
    "auto_grid_shape",
    "check_grid",
    "density_map",
    "fft_size",
    "grid_shape",
    "patterson_map",
    "shell_mean",
]


def fft_size(n: int, factor: int = 1) -> int:
    """Smallest m ≥ n, a multiple of ``factor``, with no prime factor above 5 (a fast FFT
    length)."""
    m = max(n, 1)
    while True:
        if m % factor == 0:
            k = m
            for p in (2, 3, 5):
                while k % p == 0:
                    k //= p
            if k == 1:
                return m
        m += 1


def grid_shape(
    cell: tuple[float, ...],
    hkl: np.ndarray,
    d_min: float,
    sample_rate: float = 3.0,
    factors: tuple[int, int, int] = (1, 1, 1),
) -> tuple[int, int, int]:
    """FFT grid with at least ``sample_rate`` points per ``d_min`` (Å) along each cell edge,
    large enough to hold every index of ``hkl`` (2|h|max + 1 points), each size a fast FFT
    length (:func:`fft_size`) and a multiple of its ``factors`` entry."""
    hmax = np.abs(hkl).max(axis=0) if len(hkl) else np.zeros(3, int)
    n = [
        fft_size(max(math.ceil(sample_rate * edge / d_min), 2 * int(h) + 1), int(f))
        for edge, h, f in zip(cell[:3], hmax, factors, strict=True)
    ]
    return n[0], n[1], n[2]


def auto_grid_shape(refl: Reflections, sample_rate: float = 3.0) -> tuple[int, int, int]:
    """Grid with at least ``sample_rate`` points per d_min along each edge, FFT-friendly sizes,
    compatible with the space group's symmetry and large enough to hold every index."""
    factors = refl.spacegroup.operations().find_grid_factors()
    fa, fb, fc = (int(f) for f in factors)
    return grid_shape(refl.cell, refl.hkl, refl.d_min, sample_rate, (fa, fb, fc))


def _fourier_grid(
    refl: Reflections,
    coefficients: np.ndarray,
    shape: tuple[int, int, int] | None,
    sample_rate: float,
) -> np.ndarray:
    """(1/V) Σ_h C(h) exp(−2πi h·x) on a grid, ASU coefficients expanded to the full sphere."""
    given = auto_grid_shape(refl, sample_rate) if shape is None else tuple(int(n) for n in shape)
    if len(given) != 3 or min(given) < 1:
        raise ReflectionError(f"grid shape must be three positive integers, got {given}")
    shape = (given[0], given[1], given[2])
    hkl, values = refl.expand_to_p1(coefficients)
    span = 2 * np.abs(hkl).max(axis=0) + 1 if len(hkl) else np.ones(3, int)
    # Evaluate on a fine grid that holds every index, then keep every k-th point: the result is
    # the exact Fourier sum at the requested points even when they undersample the data.
    mult = [max(1, math.ceil(int(s) / n)) for s, n in zip(span, shape)]
    fine = tuple(n * m for n, m in zip(shape, mult))
    grid = np.zeros(fine, dtype=np.complex128)
    idx = tuple((hkl[:, i] % fine[i]) for i in range(3))
    grid[idx] = values
    volume = cell_volume(*refl.cell)
    rho = np.fft.fftn(grid).real / volume
    return np.ascontiguousarray(rho[:: mult[0], :: mult[1], :: mult[2]])


def _scale01(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def patterson_map(
    refl: Reflections,
    values: np.ndarray,
    shape: tuple[int, int, int] | None = None,
    sample_rate: float = 3.0,
    e_values: np.ndarray | None = None,
    sharpen: bool = False,
    remove_origin: bool = False,
    scale01: bool = False,
) -> np.ndarray:
    """Patterson function P(u) in e²/Å³ from amplitudes or structure factors ``values``.

    ``sharpen`` uses |E|² (``e_values`` required) instead of |F|²; ``remove_origin`` subtracts
    the expected value (1 for |E|², ε-weighted shell mean for |F|²), removing the origin peak;
    ``scale01`` rescales the map linearly to [0, 1]. ``shape`` fixes the grid (e.g. (24, 24, 24));
    by default ≥ ``sample_rate`` points per d_min.
    """
    amp = np.abs(np.asarray(values))
    if amp.shape != (len(refl),) or not np.isfinite(amp).all():
        raise ReflectionError("values must be finite, one per reflection")
    if sharpen:
        if e_values is None:
            raise ReflectionError("sharpen=True needs e_values")
        coef = np.abs(np.asarray(e_values)) ** 2
        if remove_origin:
            coef = coef - 1.0
    else:
        coef = amp**2
        if remove_origin:
            coef = coef - shell_mean(coef / refl.epsilon, refl) * refl.epsilon
    m = _fourier_grid(refl, coef.astype(np.float64), shape, sample_rate)
    return _scale01(m) if scale01 else m


def shell_mean(y: np.ndarray, refl: Reflections, n_bins: int = 20) -> np.ndarray:
    """Mean of ``y`` over equal-count resolution shells (at most ``n_bins``, at least 20
    reflections each), returned at every reflection."""
    order = np.argsort(refl.d)
    out = np.empty_like(y)
    for part in np.array_split(order, max(1, min(n_bins, len(y) // 20))):
        out[part] = y[part].mean() if len(part) else 0.0
    return out


def density_map(
    refl: Reflections,
    f: np.ndarray,
    shape: tuple[int, int, int] | None = None,
    sample_rate: float = 3.0,
    f000: float = 0.0,
    scale01: bool = False,
) -> np.ndarray:
    """Electron density ρ(x) in e/Å³ from complex structure factors ``f`` (phases included).

    ``f000`` (electrons in the cell) sets the absolute level; 0 gives a zero-mean map.
    """
    f = np.asarray(f)
    if f.shape != (len(refl),) or not np.isfinite(f).all():
        raise ReflectionError("structure factors must be finite, one per reflection")
    m = _fourier_grid(refl, f.astype(np.complex128), shape, sample_rate)
    m += f000 / cell_volume(*refl.cell)
    return _scale01(m) if scale01 else m


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
