"""Powder patterns: peak lists (Bragg's law, multiplicities, |F|², Lorentz–polarisation) and
profiled patterns with background, scale, zero shift and Poisson noise. Angles in degrees 2θ."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

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


#: Kernel nodes whose transform lengths lie within this ratio share one batched FFT (≤ 25 %
#: padding wasted; a dozen batched transforms per pattern instead of four per node).
_SIZE_RATIO = 1.25


def _convolve_blended(
    grid: np.ndarray, step: float, pos: np.ndarray, intensity: np.ndarray, ins: Instrument
) -> np.ndarray:
    """Σ I_k P_k(2θ − 2θ_k) with P tabulated at nodes along 2θ and blended linearly (see
    :func:`simulate`). Each node's sticks are convolved with its profile by FFT, nodes of similar
    transform length batched into one 2-D transform."""
    n_nodes = max(2, ins.n_kernels)
    # nodes uniform in log tan θ: the FCJ asymmetry changes fastest at low angle
    g = np.log(np.tan(np.radians(np.clip(pos, 0.05, 179.95)) / 2))
    lo, hi = float(g.min()), float(g.max())
    g_nodes = np.linspace(lo, hi, n_nodes) if hi > lo else np.array([lo, lo + 0.1])
    n_nodes = len(g_nodes)
    nodes = 2 * np.degrees(np.arctan(np.exp(g_nodes)))
    spacing = g_nodes[1] - g_nodes[0]
    _, _, fwhm, eta = tch_parameters(nodes, ins.U, ins.V, ins.W, ins.X, ins.Y, ins.Z)
    # at least 8 samples per FWHM on the internal grid (at most 4× the output grid)
    oversample = int(np.clip(math.ceil(8 * step / fwhm.min()), 1, 4))
    fine = step / oversample
    profile = _NodeProfiles(fine, *_fcj_on_grid(nodes, ins, fine), fwhm, eta, ins)
    pad = int(max(profile.left.max(), profile.right.max())) + 2
    # each peak: two kernel nodes (linear in log tan θ) × two fine-grid points (linear in 2θ),
    # which keeps its area and centroid
    u = np.clip((g - g_nodes[0]) / spacing, 0, n_nodes - 1)
    j0 = np.minimum(np.floor(u).astype(np.int64), n_nodes - 2)
    frac = u - j0
    origin = grid[0] - pad * fine
    n_fine = round((grid[-1] - origin) / fine) + pad + 2
    v = (pos - origin) / fine
    i0 = np.floor(v).astype(np.int64)
    a = v - i0
    node = np.concatenate([j0, j0, j0 + 1, j0 + 1])
    col = np.concatenate([i0, i0 + 1, i0, i0 + 1])
    share = np.concatenate([(1 - frac) * (1 - a), (1 - frac) * a, frac * (1 - a), frac * a])
    weight = np.tile(intensity, 4) * share
    keep = weight != 0
    node, col, weight = node[keep], col[keep], weight[keep]
    first = np.full(n_nodes, np.iinfo(np.int64).max)
    last = np.full(n_nodes, -1)
    np.minimum.at(first, node, col)
    np.maximum.at(last, node, col)
    used = np.nonzero(last >= 0)[0]
    need = last[used] - first[used] + 1 + profile.left[used] + profile.right[used]
    by_need = np.argsort(need, kind="stable")
    order, need = used[by_need], need[by_need]
    out = np.zeros(n_fine + 1 + int(_SIZE_RATIO * need[-1]) + 64)  # room for padded rows
    start = 0
    while start < len(order):
        stop = int(np.searchsorted(need, need[start] * _SIZE_RATIO, side="right"))
        size = int(scipy.fft.next_fast_len(int(need[stop - 1]), real=True))
        js = order[start:stop]
        sel = np.isin(node, js)
        base, conv = profile.convolve(js, size, first[js], node[sel], col[sel], weight[sel])
        for b, row in zip(base.tolist(), conv):  # overlap-add, one slice per node
            out[b : b + size] += row
        start = stop
    idx = np.rint((grid - origin) / fine).astype(np.int64)
    return out[idx] / fine


def _fcj_on_grid(
    nodes: np.ndarray, ins: Instrument, fine: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FCJ sub-peaks (offsets, weights; rows padded with zeros; count per row) at each node, with a
    quadrature dense enough there that neighbouring sub-peaks are < 1 internal step apart:
    the axial tail spans degrees at low angle and hundredths near 90°, so each node gets its
    own order (a power of two)."""
    span = np.abs(fcj_nodes(nodes, ins.shl, ins.hl, 8)[0]).max(axis=1)
    order = 1 << np.clip(np.ceil(np.log2(np.maximum(span / fine, 1.0))), 3, 10).astype(np.int64)
    parts = [(n, np.nonzero(order == n)[0]) for n in np.unique(order)]
    got = [(rows, *fcj_nodes(nodes[rows], ins.shl, ins.hl, int(n))) for n, rows in parts]
    width = max(o.shape[1] for _, o, _ in got)
    off = np.zeros((len(nodes), width))
    w = np.zeros((len(nodes), width))
    count = np.zeros(len(nodes), dtype=np.int64)
    for rows, o, wt in got:
        off[rows, : o.shape[1]] = o
        w[rows, : o.shape[1]] = wt
        count[rows] = o.shape[1]
    return off, w, count


class _NodeProfiles:
    """The profile at each kernel node on the fine grid as two factors to convolve: the
    pseudo-Voigt within ±``window_fwhm`` FWHM (× step, sums to ≈ 1) and the FCJ sub-peak
    weights split linearly onto the grid (sums to 1). ``left``/``right``: how far each node's
    profile reaches (fine steps)."""

    def __init__(
        self,
        fine: float,
        off: np.ndarray,
        w: np.ndarray,
        count: np.ndarray,
        fwhm: np.ndarray,
        eta: np.ndarray,
        ins: Instrument,
    ) -> None:
        self.fine, self.off, self.w, self.count, self.fwhm, self.eta = (
            fine,
            off,
            w,
            count,
            fwhm,
            eta,
        )
        self.half = np.ceil(ins.window_fwhm * fwhm / fine).astype(np.int64)
        self.left = self.half + np.ceil(np.maximum(-off.min(axis=1), 0) / fine).astype(np.int64)
        self.right = self.half + np.ceil(np.maximum(off.max(axis=1), 0) / fine).astype(np.int64)
        self.left, self.right = self.left + 1, self.right + 1
        self.symmetric = off.shape[1] == 1 and not off.any()

    def convolve(
        self,
        js: np.ndarray,
        size: int,
        first: np.ndarray,
        node: np.ndarray,
        col: np.ndarray,
        weight: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sticks (``node``, fine index ``col``, ``weight``) of nodes ``js`` convolved with their
        profiles in one batch of length-``size`` transforms (kernels circular, centred at
        column 0); returns each row's first fine index and the rows."""
        r = len(js)
        row_of = np.zeros(int(js.max()) + 1, dtype=np.int64)
        row_of[js] = np.arange(r)
        base = first - self.left[js]  # fine index of each row's column 0
        rows = row_of[node]
        sticks = np.bincount(
            rows * size + (col - base[rows]), weights=weight, minlength=r * size
        ).reshape(r, size)
        h = int(self.half[js].max())
        k = np.arange(h + 1)  # the pseudo-Voigt is even: evaluated on k ≥ 0, mirrored
        pv = pseudo_voigt(k[None, :] * self.fine, self.fwhm[js, None], self.eta[js, None])
        pv *= self.fine * (k[None, :] <= self.half[js, None])
        kernel = np.zeros((r, size))
        kernel[:, : h + 1] = pv
        kernel[:, size - h :] = pv[:, :0:-1]
        spec = scipy.fft.rfft(sticks, axis=1) * scipy.fft.rfft(kernel, axis=1)
        if not self.symmetric:
            width = int(self.count[js].max())
            t = self.off[js, :width] / self.fine
            kk = np.floor(t).astype(np.int64)
            f = (t - kk).ravel()
            cell = np.repeat(np.arange(r) * size, width)
            wj = self.w[js, :width].ravel()
            fcj = np.bincount(
                np.concatenate([cell + kk.ravel() % size, cell + (kk.ravel() + 1) % size]),
                weights=np.concatenate([wj * (1 - f), wj * f]),
                minlength=r * size,
            ).reshape(r, size)
            spec *= scipy.fft.rfft(fcj, axis=1)
        return base, scipy.fft.irfft(spec, size, axis=1)


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
