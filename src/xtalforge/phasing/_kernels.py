"""Compiled (numba) loops of one charge-flipping cycle on the CPU, around its two FFTs.

A cycle outside its FFTs is a dozen element-wise steps over the observed reflections of each
start (a few thousand values): new coefficients from the measured moduli, the variance that
sets δ, the flip of the map, and the R factor of the flipped map's coefficients. As torch
operations each step costs its dispatch and a fresh array, which on one core is more than the
arithmetic: these loops do the same steps in one pass each, in place. The arithmetic is that of
:meth:`~xtalforge.phasing.charge_flipping._Flipping.cycle` (the definition, which other devices
run), with the sums accumulated in float64 instead of float32.

Compiled on first use and cached on disk (``cache=True``); importing this module compiles
nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: The smallest modulus divided by (as ``clamp_min(1e-30)`` in the torch definition).
TINY = 1e-30


@njit(cache=True)
def observed_coefficients(
    gc: np.ndarray,
    g_obs: np.ndarray,
    g_abs: np.ndarray,
    idx: np.ndarray,
    amp: np.ndarray,
    w: np.ndarray,
    weak: np.ndarray,
    turn: np.ndarray,
    fc: np.ndarray,
    k: np.ndarray,
    n_grid: int,
    delta: np.ndarray,
) -> None:
    """Write into ``fc`` (B, half-grid) the coefficients the next map is made of: F(000) from
    ``gc``, the strong observed reflections the measured modulus ``amp`` with the
    phase of G (``g_obs``, conj G at the flat half-grid index ``idx``), the weak ones G turned
    by ``turn`` (−i·sign: π/2 with the sign of the Friedel half). Only F(000) and the entries at
    ``idx`` are written: the caller keeps every other entry of ``fc`` zero (they never change
    from cycle to cycle). Writes per row the flipping threshold ``delta`` = k σ(ρ), with
    σ(ρ) = √(Σ w |F|²) / N over the observed sphere (Parseval; N = ``n_grid`` points) and k
    the row's factor."""
    n_rows, n_obs = idx.shape
    for b in range(n_rows):
        fc[b, 0] = gc[b, 0]
        v = 0.0
        for j in range(n_obs):
            g = g_obs[b, j]
            if weak[b, j]:
                m = np.float64(g_abs[b, j])
                val = g * turn[b, j]
            else:
                m = np.float64(amp[b, j])
                val = g * (m / max(np.float64(g_abs[b, j]), TINY))
            v += w[b, j] * m * m
            fc[b, idx[b, j]] = val
        delta[b] = np.float64(k[b]) * np.sqrt(v) / n_grid


@njit(cache=True)
def flip_in_place(rho: np.ndarray, delta: np.ndarray) -> None:
    """ρ ← −ρ where ρ ≤ δ, per row of ``rho`` (B, N points) with its own ``delta`` (B,)."""
    n_rows, n = rho.shape
    for b in range(n_rows):
        d = delta[b]
        for i in range(n):
            if not rho[b, i] > d:
                rho[b, i] = -rho[b, i]


@njit(cache=True)
def observe(
    gc: np.ndarray,
    idx: np.ndarray,
    amp: np.ndarray,
    w: np.ndarray,
    weak: np.ndarray,
    g_obs: np.ndarray,
    g_abs: np.ndarray,
    peak: np.ndarray,
    r_prev: np.ndarray,
    stable: np.ndarray,
    r_tol: float,
    r_drop: float,
) -> None:
    """Gather the flipped map's conj G at the observed reflections into ``g_obs`` / ``g_abs``
    and update each row's convergence state in place: R = Σ |amp − k|G|| / Σ amp over the
    strong reflections (k the least-squares scale), its running maximum ``peak``, the previous
    R ``r_prev`` and the count ``stable`` of cycles R stayed within ``r_tol`` after falling
    ``r_drop`` below its peak."""
    n_rows, n_obs = idx.shape
    for b in range(n_rows):
        s_ag, s_gg, s_a = 0.0, 0.0, 0.0
        for j in range(n_obs):
            g = gc[b, idx[b, j]]
            g_obs[b, j] = g
            a = abs(g)
            g_abs[b, j] = a
            if not weak[b, j]:
                wt = np.float64(w[b, j])
                s_ag += amp[b, j] * np.float64(a) * wt
                s_gg += np.float64(a) * a * wt
                s_a += amp[b, j] * wt
        scale = s_ag / max(s_gg, TINY)
        misfit = 0.0
        for j in range(n_obs):
            if not weak[b, j]:
                misfit += abs(amp[b, j] - scale * g_abs[b, j]) * w[b, j]
        r = misfit / max(s_a, TINY)
        peak[b] = max(peak[b], r)
        if abs(r_prev[b] - r) < r_tol and peak[b] - r > r_drop:
            stable[b] += 1
        else:
            stable[b] = 0
        r_prev[b] = r


@njit(cache=True)
def symmetry_series(
    gc: np.ndarray,
    src: np.ndarray,
    mate: np.ndarray,
    amp: np.ndarray,
    pos: np.ndarray,
    shift: np.ndarray,
    at: np.ndarray,
    x: np.ndarray,
) -> None:
    """The coefficients ``x`` (B, reduced half grid + 1 dump slot; zeroed here) whose
    unnormalised inverse real FFT is S((I − R) x0) = Re Σ_h A(h) e^{−2πi h'·x0} on the reduced
    grid of one operation (R, t): A(h) = F'(hR) F'(h)* e^{2πi h·t}, F'(h) = |E(h)| e^{iφ(h)}
    from the stored conj G ``gc`` (as
    :meth:`~xtalforge.phasing.symmetry_check.SymmetryCheck.agreement` defines them); ``x``
    takes Σ A(h)* at the reduced index ``at`` of each h' = h (I − R) of the stored half."""
    n_rows, m = src.shape
    f = np.empty(m, x.dtype)
    for b in range(n_rows):
        for j in range(m):
            g = gc[b, src[b, j]]
            unit = g / max(abs(g), TINY)
            f[j] = amp[b, j] * (unit if mate[b, j] else unit.conjugate())
        x[b, :] = 0
        for j in range(m):
            a = f[pos[b, j]] * f[j].conjugate() * shift[b, j]
            x[b, at[b, j]] += a.conjugate()


@njit(cache=True)
def add_at_origins(s: np.ndarray, origin: np.ndarray, total: np.ndarray) -> None:
    """total[b, x0] += s[b, origin[x0]] (S_g at (I − R) x0 for every grid point x0)."""
    n_rows, n = total.shape
    for b in range(n_rows):
        for i in range(n):
            total[b, i] += s[b, origin[i]]


@njit(cache=True)
def pair_coefficients(
    gc: np.ndarray,
    idx: np.ndarray,
    amp: np.ndarray,
    w: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    hands: int,
    out: np.ndarray,
    norm: np.ndarray,
) -> None:
    """The coefficients ``out`` (P · ``hands``, half grid; zero but where written) whose
    unnormalised inverse real FFT is the correlation of the maps of rows ``first[p]`` and
    ``second[p]`` (|E|² e^{−i(φa ∓ φb)} from the stored conj G ``gc``, see
    :mod:`~xtalforge.phasing.start_pairs`): row p · hands the same hand, the next the other
    (with ``hands`` = 2). Writes Σ w |E|² per pair into ``norm``. The caller clears the
    entries at ``idx`` after use."""
    n_pairs = len(first)
    n_obs = idx.shape[1]
    for p in range(n_pairs):
        a, b = first[p], second[p]
        v = 0.0
        for j in range(n_obs):
            ga, gb = gc[a, idx[a, j]], gc[b, idx[a, j]]
            ua = ga / max(abs(ga), TINY)
            ub = gb / max(abs(gb), TINY)
            e2 = amp[a, j] * amp[a, j]
            v += w[a, j] * e2
            out[p * hands, idx[a, j]] = e2 * ua * ub.conjugate()
            if hands == 2:
                out[p * hands + 1, idx[a, j]] = e2 * ua * ub
        norm[p] = v


@njit(cache=True)
def clear_at(out: np.ndarray, idx: np.ndarray, rows: np.ndarray, hands: int) -> None:
    """Zero ``out[p · hands + k, idx[rows[p], j]]`` for every pair p, hand k and entry j."""
    for p in range(len(rows)):
        for k in range(hands):
            for j in range(idx.shape[1]):
                out[p * hands + k, idx[rows[p], j]] = 0
