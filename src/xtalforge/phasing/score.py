"""Scoring a phasing solution against the truth (design: "Metrics", phasing).

- **CC**: correlation between the solved and the true density, both computed with the true
  amplitudes (zero-mean maps, so by Parseval CC(s) = Σ|F|² cos(φ_sol − φ_true − 2π h·s) / Σ|F|²
  over the full sphere), maximised over origin shifts s and the enantiomorph (φ → −φ). Shifts are
  the space group's permissible origin shifts: s with (I − R)s a lattice (or centring)
  translation for every operation (continuous along polar axes; every s in P1), searched on a
  grid finer than the data (``oversample`` points per d_min along each edge).
- **phase error**: amplitude-weighted mean |Δφ| (degrees) after the same alignment.
- **solved** ⇔ CC ≥ 0.8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import ReflectionError

__all__ = ["Score", "permissible_shift_mask", "score_phases"]

SOLVED_CC = 0.8


@dataclass(frozen=True)
class Score:
    """CC (−1…1), phase error (degrees), the best origin shift (fractions), whether the
    enantiomorph was used, and solved (CC ≥ 0.8)."""

    cc: float
    phase_error: float
    shift: tuple[float, float, float]
    inverted: bool

    @property
    def solved(self) -> bool:
        return self.cc >= SOLVED_CC


def permissible_shift_mask(
    refl: Reflections, shape: tuple[int, int, int], p1: bool = False
) -> np.ndarray:
    """Boolean grid (shape) of the origin shifts s = index / shape that keep the space group's
    symmetry: (I − R)s ≡ a centring vector (mod 1) for every operation. ``p1``: all shifts."""
    if p1:
        return np.ones(shape, bool)
    sym = refl.symmetry
    grids = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1)
    pts = grids.reshape(-1, 3)
    ok = np.ones(len(pts), bool)
    tol = 0.5 / min(shape) + 1e-9
    for rot in sym.rotations:
        delta = pts @ (np.eye(3) - rot).T  # (I − R) s
        hit = np.zeros(len(pts), bool)
        for c in sym.centrings:
            diff = (delta - c + 0.5) % 1.0 - 0.5
            hit |= (np.abs(diff) <= tol).all(axis=1)
        ok &= hit
    return ok.reshape(shape)


def _free_directions(refl: Reflections, p1: bool) -> np.ndarray:
    """(3, k) basis of the continuous origin shifts: the null space of all (I − R)."""
    if p1:
        return np.eye(3)
    stack = np.concatenate([np.eye(3) - r for r in refl.symmetry.rotations])
    _, sv, vt = np.linalg.svd(stack)
    return vt[int((sv > 1e-8).sum()) :].T


def _shift_grid(refl: Reflections, oversample: float) -> tuple[int, int, int]:
    # multiples of 12 put the special shifts (1/2, 1/3, 1/4, 1/6) exactly on the grid
    a, b, c = (12 * max(1, math.ceil(oversample * e / refl.d_min / 12)) for e in refl.cell[:3])
    return a, b, c


def score_phases(
    refl: Reflections,
    amplitudes: np.ndarray,
    true_phases: np.ndarray,
    phases: np.ndarray,
    p1: bool = False,
    oversample: float = 4.0,
) -> Score:
    """Score ``phases`` (radians, one per ASU reflection) against ``true_phases``.

    ``p1``: treat the solution as a P1 map (any origin shift is allowed), e.g. the raw
    charge-flipping map before origin location.
    """
    amp = np.abs(np.asarray(amplitudes, float))
    for name, arr in (("true_phases", true_phases), ("phases", phases)):
        if np.shape(arr) != amp.shape or not np.isfinite(arr).all():
            raise ReflectionError(f"{name} must be finite, one per reflection")
    f_true = amp * np.exp(1j * np.asarray(true_phases, float))
    f_sol = amp * np.exp(1j * np.asarray(phases, float))
    hkl, ft = refl.expand_to_p1(f_true)
    _, fs = refl.expand_to_p1(f_sol)
    sa, sb, sc = (
        max(n, 12 * math.ceil((2 * int(np.abs(hkl[:, i]).max()) + 1) / 12))
        for i, n in enumerate(_shift_grid(refl, oversample))
    )
    shape = (sa, sb, sc)
    allowed = permissible_shift_mask(refl, shape, p1)
    norm = float((np.abs(ft) ** 2).sum())
    idx = tuple(hkl[:, i] % shape[i] for i in range(3))
    best: tuple[float, tuple[float, ...], bool] = (-2.0, (0.0, 0.0, 0.0), False)
    for inverted in (False, True):
        prod = np.conj(ft) * (np.conj(fs) if inverted else fs)
        grid = np.zeros(shape, complex)
        np.add.at(grid, idx, prod)
        # Σ_h conj(F_t) F_s exp(+2πi h·s): the shift s aligns the solution onto the truth
        ccs = np.fft.ifftn(grid).real * np.prod(shape) / norm
        ccs = np.where(allowed, ccs, -np.inf)
        k = np.unravel_index(int(np.argmax(ccs)), shape)
        if ccs[k] > best[0]:
            best = (float(ccs[k]), tuple(float(k[i] / shape[i]) for i in range(3)), inverted)
    cc, shift, inverted = best
    sol = -np.asarray(phases, float) if inverted else np.asarray(phases, float)
    free = _free_directions(refl, p1)
    if free.shape[1]:  # polar axes (or P1): refine the continuous part of the shift
        from scipy.optimize import minimize

        w = amp**2 * refl.multiplicity
        base = sol - np.asarray(true_phases, float)

        def neg_cc(x: np.ndarray) -> float:
            s_vec = np.array(shift) + free @ x
            return -float((w * np.cos(base + 2 * np.pi * (refl.hkl @ s_vec))).sum() / w.sum())

        res = minimize(
            neg_cc,
            np.zeros(free.shape[1]),
            method="Nelder-Mead",
            options={"xatol": 1e-5, "fatol": 1e-9},
        )
        if -res.fun > cc:
            cc, shift = (
                float(-res.fun),
                tuple(float(v) for v in (np.array(shift) + free @ res.x) % 1.0),
            )
    aligned = sol + 2 * np.pi * (refl.hkl @ np.array(shift))
    dphi = np.abs((aligned - np.asarray(true_phases, float) + np.pi) % (2 * np.pi) - np.pi)
    err = float(np.degrees((amp * dphi).sum() / amp.sum())) if amp.sum() > 0 else math.nan
    return Score(cc, err, (shift[0], shift[1], shift[2]), inverted)
