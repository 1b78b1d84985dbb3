"""Powder patterns: peak lists (Bragg's law, multiplicities, |F|², Lorentz–polarisation) and
profiled patterns with background, scale, zero shift and Poisson noise. Angles in degrees 2θ."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.batch import structure_factors_batch
from xtalforge.diffraction.reflections import Reflections, reflections
from xtalforge.powder.instrument import Instrument, PowderError
from xtalforge.powder.profiles import fcj_nodes, pseudo_voigt, tch_parameters

__all__ = [
    "PeakList",
    "lorentz_polarization",
    "peak_list",
    "simulate",
    "simulate_batch",
    "simulate_mixture",
]


@dataclass(frozen=True)
class PeakList:
    """Stick pattern: one row per reflection and wavelength component.

    two_theta (degrees, before the zero shift), d (Å), hkl, multiplicity, f2 (|F|², e²),
    lp (Lorentz–polarisation factor), weight (of the wavelength component), intensity
    (= weight · multiplicity · |F|² · LP), wavelength (Å).
    """

    two_theta: np.ndarray
    d: np.ndarray
    hkl: np.ndarray
    multiplicity: np.ndarray
    f2: np.ndarray
    lp: np.ndarray
    weight: np.ndarray
    intensity: np.ndarray
    wavelength: np.ndarray


def lorentz_polarization(two_theta: np.ndarray, monochromator_2theta: float = 0.0) -> np.ndarray:
    """Bragg–Brentano LP = (1 + cos²2θ cos²2θ_M) / (sin²θ cosθ (1 + cos²2θ_M)); 2θ in degrees.

    With no monochromator (2θ_M = 0) this is (1 + cos²2θ)/(2 sin²θ cosθ)."""
    tt = np.radians(np.asarray(two_theta, dtype=np.float64))
    cm = math.cos(math.radians(monochromator_2theta)) ** 2
    return (1 + np.cos(tt) ** 2 * cm) / (np.sin(tt / 2) ** 2 * np.cos(tt / 2) * (1 + cm))


def _d_min(instrument: Instrument) -> float:
    lam = min(w for w, _ in instrument.components)
    top = min(instrument.two_theta_max + 1.0, 179.0)
    return lam / (2 * math.sin(math.radians(top / 2)))


def peak_list(
    crystal: Crystal,
    instrument: Instrument | None = None,
    f: np.ndarray | None = None,
    refl: Reflections | None = None,
) -> PeakList:
    """All reflections up to the grid's 2θ_max (plus 1°) for every wavelength component.

    ``f`` (complex structure factors aligned with ``refl``) can be passed to reuse a batched
    computation; otherwise they are computed here.
    """
    instrument = instrument or Instrument()
    if refl is None:
        refl = reflections(crystal, _d_min(instrument))
    sf = structure_factors_batch([crystal], [refl])[0] if f is None else f
    f2 = np.abs(sf) ** 2
    rows = []
    for lam_k, weight_k in instrument.components:
        s = lam_k / (2 * refl.d)
        ok = s < 1.0
        tt_k = 2 * np.degrees(np.arcsin(s[ok]))
        keep = tt_k <= instrument.two_theta_max + 1.0
        rows.append((tt_k[keep], np.nonzero(ok)[0][keep], lam_k, weight_k))
    tt = np.concatenate([r[0] for r in rows])
    idx = np.concatenate([r[1] for r in rows])
    lam = np.concatenate([np.full(len(r[0]), r[2]) for r in rows])
    weight = np.concatenate([np.full(len(r[0]), r[3]) for r in rows])
    lp = lorentz_polarization(tt, instrument.monochromator_2theta)
    mult = refl.multiplicity[idx].astype(np.float64)
    return PeakList(
        tt, refl.d[idx], refl.hkl[idx], mult, f2[idx], lp, weight, weight * mult * f2[idx] * lp, lam
    )


def background(
    two_theta: np.ndarray, coefficients: Sequence[float], lo: float, hi: float
) -> np.ndarray:
    """Chebyshev background Σ c_i T_i(x) with x = 2θ mapped linearly from [lo, hi] to [−1, 1]."""
    if not len(coefficients):
        return np.zeros_like(two_theta)
    x = (2 * np.asarray(two_theta) - (lo + hi)) / (hi - lo)
    return np.polynomial.chebyshev.chebval(x, np.asarray(coefficients, dtype=np.float64))


def simulate(
    crystal: Crystal | PeakList,
    instrument: Instrument | None = None,
    noise: bool = False,
    seed: int | None = None,
    f: np.ndarray | None = None,
    refl: Reflections | None = None,
    exact: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A profiled powder pattern: returns (2θ grid in degrees, counts).

    counts = scale · Σ_peaks I_k · P(2θ − 2θ_k − zero) + background, where P is the TCH
    pseudo-Voigt convolved with the FCJ axial-divergence function (each peak is split into
    Gauss–Legendre sub-peaks, each evaluated within ±``window_fwhm`` FWHM). With ``noise`` the
    counts are drawn from a Poisson distribution (seeded).

    The default (fast) evaluation tabulates the full profile (TCH ⊗ FCJ) at ``n_kernels`` nodes
    along 2θ, splits each peak linearly between its two neighbouring nodes and onto a 4×
    oversampled grid (preserving area and centroid), and convolves node by node with FFTs: the
    profile at any angle is the linear blend of the exact profiles at the neighbouring nodes.
    ``exact=True`` evaluates every sub-peak directly (≈ 10× slower; used to validate the fast path).
    """
    ins = instrument or Instrument()
    peaks = crystal if isinstance(crystal, PeakList) else peak_list(crystal, ins, f, refl)
    grid = np.linspace(ins.two_theta_min, ins.two_theta_max, ins.n_points)
    step = (grid[-1] - grid[0]) / (len(grid) - 1)
    y = np.zeros(len(grid))
    if len(peaks.two_theta):
        pos = peaks.two_theta + ins.zero
        if exact:
            y += _exact_profile(grid, step, pos, peaks.intensity, ins)
        else:
            y += _convolve_blended(grid, step, pos, peaks.intensity, ins)
    if ins.normalize and y.max() > 0:
        y = y / y.max()
    y = ins.scale * y + background(grid, ins.background, grid[0], grid[-1])
    if noise:
        rng = np.random.default_rng(seed)
        y = rng.poisson(np.clip(y, 0, None)).astype(np.float64)
    return grid, y


def _exact_profile(
    grid: np.ndarray, step: float, pos: np.ndarray, intensity: np.ndarray, ins: Instrument
) -> np.ndarray:
    """Every FCJ sub-peak of every peak evaluated directly (reference for the fast path)."""
    _, _, fwhm, eta = tch_parameters(pos, ins.U, ins.V, ins.W, ins.X, ins.Y, ins.Z)
    # sub-peaks closer than a quarter FWHM, so wide asymmetric tails are smooth (no comb)
    span = float(np.abs(fcj_nodes(pos, ins.shl, ins.hl, 8)[0]).max())
    n_fcj = int(np.clip(math.ceil(4 * span / fwhm.min()), ins.fcj_nodes, 512))
    off, w = fcj_nodes(pos, ins.shl, ins.hl, n_fcj)
    centre = (pos[:, None] + off).ravel()
    height = (intensity[:, None] * w).ravel()
    fw = np.repeat(fwhm, off.shape[1])
    et = np.repeat(eta, off.shape[1])
    use = (
        (height > 0)
        & (centre + ins.window_fwhm * fw >= grid[0])
        & (centre - ins.window_fwhm * fw <= grid[-1])
    )
    return _accumulate(grid, step, centre[use], height[use], fw[use], et[use], ins.window_fwhm)


def _accumulate(
    grid: np.ndarray,
    step: float,
    centre: np.ndarray,
    height: np.ndarray,
    fwhm: np.ndarray,
    eta: np.ndarray,
    window: float,
) -> np.ndarray:
    """Σ height · pV on the grid, each sub-peak within ±window·FWHM, grouped by window size so
    that narrow peaks do not pay for wide ones."""
    out = np.zeros(len(grid))
    half = np.ceil(window * fwhm / step).astype(np.int64)
    order = np.argsort(half)
    for part in np.array_split(order, max(1, min(8, len(order) // 256))):
        if not len(part):
            continue
        h = int(half[part].max())
        first = np.rint((centre[part] - grid[0]) / step).astype(np.int64) - h
        idx = first[:, None] + np.arange(2 * h + 1)[None, :]
        inside = (idx >= 0) & (idx < len(grid))
        idx = np.clip(idx, 0, len(grid) - 1)
        dx = grid[idx] - centre[part, None]
        vals = pseudo_voigt(dx, fwhm[part, None], eta[part, None]) * height[part, None]
        vals *= inside & (np.abs(dx) <= window * fwhm[part, None])
        out += np.bincount(idx.ravel(), weights=vals.ravel(), minlength=len(grid))
    return out


def _convolve_blended(
    grid: np.ndarray, step: float, pos: np.ndarray, intensity: np.ndarray, ins: Instrument
) -> np.ndarray:
    """Σ I_k P_k(2θ − 2θ_k) with P tabulated at nodes along 2θ and blended linearly (see
    :func:`simulate`)."""
    n_nodes = max(2, ins.n_kernels)
    # nodes uniform in log tan θ: the FCJ asymmetry changes fastest at low angle
    g = np.log(np.tan(np.radians(np.clip(pos, 0.05, 179.95)) / 2))
    lo, hi = float(g.min()), float(g.max())
    g_nodes = np.linspace(lo, hi, n_nodes) if hi > lo else np.array([lo, lo + 0.1])
    nodes = 2 * np.degrees(np.arctan(np.exp(g_nodes)))
    spacing = g_nodes[1] - g_nodes[0]
    _, _, fwhm, eta = tch_parameters(nodes, ins.U, ins.V, ins.W, ins.X, ins.Y, ins.Z)
    # at least 8 samples per FWHM on the internal grid (at most 4× the output grid)
    oversample = int(np.clip(math.ceil(8 * step / fwhm.min()), 1, 4))
    fine = step / oversample
    # FCJ quadrature dense enough that neighbouring sub-peaks are < 1 internal step apart
    span = float(np.abs(fcj_nodes(nodes, ins.shl, ins.hl, 8)[0]).max())
    n_fcj = 1 << int(np.clip(math.ceil(math.log2(max(span / fine, 1.0))), 3, 10))
    off, w = fcj_nodes(nodes, ins.shl, ins.hl, n_fcj)
    half = np.ceil(ins.window_fwhm * fwhm / fine).astype(np.int64)
    reach = np.ceil(np.abs(off).max(axis=1) / fine).astype(np.int64) + 1
    pad = int((half + reach).max()) + 2
    # kernel-node share of each peak (linear in 2θ) and its position on the fine grid
    u = np.clip((g - g_nodes[0]) / spacing, 0, n_nodes - 1)
    j0 = np.minimum(np.floor(u).astype(np.int64), n_nodes - 2)
    frac = u - j0
    origin = grid[0] - pad * fine
    n_fine = round((grid[-1] - origin) / fine) + pad + 2
    v = (pos - origin) / fine
    i0 = np.floor(v).astype(np.int64)
    a = v - i0
    out = np.zeros(n_fine + 1)
    for j in range(n_nodes):
        share = np.where(j0 == j, 1 - frac, 0.0) + np.where(j0 + 1 == j, frac, 0.0)
        sel = share > 0
        if not sel.any():
            continue
        pv, fcj = _node_kernel(off[j], w[j], fwhm[j], eta[j], int(half[j]), int(reach[j]), fine)
        h = (len(pv) - 1) // 2 + (len(fcj) - 1) // 2
        start = int(i0[sel].min())
        length = int(i0[sel].max()) - start + 2
        sticks = np.bincount(
            np.concatenate([i0[sel] - start, i0[sel] + 1 - start]),
            weights=np.concatenate(
                [intensity[sel] * share[sel] * (1 - a[sel]), intensity[sel] * share[sel] * a[sel]]
            ),
            minlength=length,
        )
        n = length + 2 * h
        size = 1 << math.ceil(math.log2(n))
        spec = np.fft.rfft(sticks, size) * np.fft.rfft(pv, size)
        if len(fcj) > 1:
            spec *= np.fft.rfft(fcj, size)
        conv = np.fft.irfft(spec, size)[:n]
        lo_i = start - h
        a_lo, a_hi = max(lo_i, 0), min(lo_i + n, len(out))
        out[a_lo:a_hi] += conv[a_lo - lo_i : a_hi - lo_i]
    idx = np.rint((grid - origin) / fine).astype(np.int64)
    return out[idx] / fine


def _node_kernel(
    off: np.ndarray, w: np.ndarray, fwhm: float, eta: float, half: int, reach: int, fine: float
) -> tuple[np.ndarray, np.ndarray]:
    """The profile at one node on the fine grid as two centred, odd-length factors to convolve:
    the pseudo-Voigt (× step, sums to ≈ 1) and the FCJ sub-peak weights split linearly onto
    the grid (sums to 1; ``[1.0]`` when there is no asymmetry)."""
    x = np.arange(-half, half + 1) * fine
    pv = pseudo_voigt(x, fwhm, eta) * fine
    if reach <= 1 or (len(off) == 1 and off[0] == 0.0):
        return pv, np.ones(1)
    # FCJ sticks on [−reach, reach] grid steps (offsets are ≤ 0 below 90°, ≥ 0 above)
    t = off / fine + reach
    k = np.floor(t).astype(np.int64)
    f = t - k
    sticks = np.bincount(
        np.concatenate([k, k + 1]),
        weights=np.concatenate([w * (1 - f), w * f]),
        minlength=2 * reach + 2,
    )[: 2 * reach + 1]
    return pv, sticks


def simulate_batch(
    crystals: Sequence[Crystal],
    instruments: Sequence[Instrument] | Instrument,
    noise: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Patterns of many crystals (structure factors computed in one batch): (n, n_points)."""
    if isinstance(instruments, Instrument):
        instruments = [instruments] * len(crystals)
    if len(instruments) != len(crystals):
        raise PowderError(f"{len(instruments)} instruments for {len(crystals)} crystals")
    refls = [reflections(c, _d_min(i)) for c, i in zip(crystals, instruments)]
    fs = structure_factors_batch(crystals, refls)
    out = []
    for k, (c, ins, r) in enumerate(zip(crystals, instruments, refls, strict=True)):
        f = np.asarray(fs[k])  # the CPU path gives numpy arrays
        out.append(simulate(c, ins, noise=noise, seed=seed + k, f=f, refl=r)[1])
    return np.stack(out)


def cell_mass(crystal: Crystal) -> float:
    """Mass of the unit-cell contents in atomic mass units (Σ occupancy × atomic weight)."""
    import gemmi

    return float(sum(n * gemmi.Element(el).weight for el, n in crystal.composition().items()))


def simulate_mixture(
    crystals: Sequence[Crystal],
    weight_fractions: Sequence[float],
    instrument: Instrument | None = None,
    noise: bool = False,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pattern of a multiphase mixture with the given weight fractions (normalised to 1).

    Each phase's diffraction part is scaled by w_i / (M_i V_i), with M_i the mass of its cell
    contents and V_i its cell volume (the Hill–Howard relation behind Rietveld quantitative
    phase analysis); the instrument's scale, background and noise apply once to the sum.
    """
    ins = instrument or Instrument()
    w = np.asarray(weight_fractions, dtype=np.float64)
    if len(w) != len(crystals) or (w < 0).any() or w.sum() <= 0:
        raise PowderError("need one non-negative weight fraction per phase, not all zero")
    w = w / w.sum()
    bare = ins.model_copy(update={"background": [], "scale": 1.0, "normalize": False})
    total = np.zeros(0)
    for k, (c, wi) in enumerate(zip(crystals, w, strict=True)):
        x, y = simulate(c, bare)
        part = wi / (cell_mass(c) * c.volume) * y
        total = part if k == 0 else total + part
    if ins.normalize and total.max() > 0:
        total = total / total.max()
    y = ins.scale * total + background(x, ins.background, x[0], x[-1])
    if noise:
        y = np.random.default_rng(seed).poisson(np.clip(y, 0, None)).astype(np.float64)
    return x, y


def write_xy(path: str | Path, two_theta: np.ndarray, counts: np.ndarray) -> None:
    """Write a pattern as two columns, 2θ (degrees) and counts, with a ``#`` header."""
    np.savetxt(path, np.column_stack([two_theta, counts]), fmt="%.4f %.3f", header="2theta counts")
