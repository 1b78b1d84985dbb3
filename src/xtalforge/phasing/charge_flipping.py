"""Charge flipping (Oszlányi & Sütő 2004, 2005), batched over structures and random starts in
torch (CPU or GPU).

P1 flipping on the full FFT grid: ρ = FFT(F); ρ' = ρ where ρ > δ, −ρ elsewhere; G = FFT⁻¹(ρ');
observed reflections take |E_obs| with the phase of G, except the weakest ``weak_fraction`` whose
phases are shifted by π/2 (their |G| kept; the shift has opposite signs on Friedel mates so
the density stays real); unobserved reflections are 0 — or, with ``d_ext`` ("free lunch",
Caliandro et al. 2005), reflections between the data's d_min and d_ext take G itself; F(000)
takes G(000). δ = ``delta_k`` σ(ρ) every cycle (σ over the grid; starts spread δ over
``delta_spread``). Convergence: the R factor between |E_obs| and |G| (scaled) drops — a start is
converged once its R has fallen ``r_drop`` below its running maximum and stays within ``r_tol`` for
``patience`` cycles; every start runs at most ``max_iter`` cycles. The best start per structure
(lowest final R) is kept, its origin located from the space-group symmetry of its phases, and its
phases averaged over the group (see :func:`locate_origin`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from xtalforge.diffraction.maps import _good_size
from xtalforge.diffraction.reflections import Reflections, reflections
from xtalforge.errors import ReflectionError

__all__ = ["FlipResult", "charge_flip", "charge_flip_batch", "locate_origin"]


@dataclass(frozen=True)
class FlipResult:
    """One structure's solution: ASU phases (radians) after origin location and symmetry
    averaging, the raw P1 phases of the same reflections, the final R of the best start, the
    cycle at which it converged (−1: never), and the free-lunch amplitudes when used."""

    phases: np.ndarray
    p1_phases: np.ndarray
    r_factor: float
    converged_at: int
    origin: tuple[float, float, float]
    extrapolated: tuple[np.ndarray, np.ndarray] | None = None  # (hkl, |F|) beyond the data


def _grid_shape(hkl: np.ndarray, sample_rate: float, cell: tuple, d_min: float,
                factors: list[int]) -> tuple[int, int, int]:
    return tuple(_good_size(max(math.ceil(sample_rate * cell[i] / d_min),
                                2 * int(np.abs(hkl[:, i]).max()) + 1), int(factors[i]))
                 for i in range(3))


def _half_sign(hkl: np.ndarray) -> np.ndarray:
    """+1 for indices in one half of reciprocal space, −1 for their Friedel mates."""
    first = np.where(hkl[:, 0] != 0, hkl[:, 0], np.where(hkl[:, 1] != 0, hkl[:, 1], hkl[:, 2]))
    return np.sign(first).astype(np.float64)


def charge_flip(refl: Reflections, amplitudes: np.ndarray, **kwargs) -> FlipResult:
    """Charge flipping of one structure (see :func:`charge_flip_batch` for the options)."""
    return charge_flip_batch([refl], [amplitudes], **kwargs)[0]


def charge_flip_batch(refls: list[Reflections], amplitudes: list[np.ndarray], starts: int = 4,
                      max_iter: int = 600, weak_fraction: float = 0.2, delta_k: float = 1.1,
                      delta_spread: float = 0.15, sample_rate: float = 2.5,
                      d_ext: float | None = None, seed: int = 0, device: str = "cpu",
                      r_drop: float = 0.06, r_tol: float = 0.01, patience: int = 30
                      ) -> list[FlipResult]:
    """Charge flipping of many structures at once, each with ``starts`` random starts.

    ``amplitudes``: |E| (recommended) or |F| per ASU reflection of each ``refls`` entry.
    All starts of all structures share one padded grid (a finer grid than a structure needs
    only samples its density more finely), so a batch is one tensor on ``device``.
    """
    if len(refls) != len(amplitudes) or not refls:
        raise ReflectionError("charge_flip_batch needs one amplitude array per Reflections")
    gen = np.random.default_rng(seed)
    p1 = []
    for refl, amp in zip(refls, amplitudes, strict=True):
        amp = np.abs(np.asarray(amp, np.float64))
        if amp.shape != (len(refl),) or not np.isfinite(amp).all():
            raise ReflectionError("amplitudes must be finite, one per reflection")
        hkl, vals = refl.expand_to_p1(amp)
        ext = outer_hkl = None
        if d_ext is not None:
            if d_ext >= refl.d_min:
                raise ReflectionError(f"d_ext ({d_ext} Å) must be finer than the data's d_min "
                                      f"({refl.d_min:.3f} Å)")
            outer = reflections(refl.cell, d_ext, refl.d_min * (1 - 1e-9),
                                spacegroup=refl.spacegroup)
            outer = outer.subset(outer.d < refl.d_min * (1 - 1e-9))
            ext, _ = outer.expand_to_p1(np.zeros(len(outer)))
            outer_hkl = outer.hkl
        p1.append((hkl, vals, ext, outer_hkl))
    d_all = min(r.d_min if d_ext is None else d_ext for r in refls)
    shape = np.max([_grid_shape(np.concatenate([h] + ([e] if e is not None else [])),
                                sample_rate, r.cell, d_all, [1, 1, 1])
                    for (h, _, e, _), r in zip(p1, refls, strict=True)], axis=0)
    shape = tuple(_good_size(int(n)) for n in shape)
    n_struct, n_total = len(refls), len(refls) * starts
    n_max = max(len(h) for h, _, _, _ in p1)
    idx = np.zeros((n_struct, n_max), np.int64)
    amp_t = np.zeros((n_struct, n_max))
    obs = np.zeros((n_struct, n_max), bool)
    weak = np.zeros((n_struct, n_max), bool)
    sign = np.zeros((n_struct, n_max))
    ext_mask = np.zeros((n_struct, int(np.prod(shape))), bool)
    for s, (hkl, vals, ext, _) in enumerate(p1):
        flat = np.ravel_multi_index(tuple(hkl[:, i] % shape[i] for i in range(3)), shape)
        m = len(hkl)
        idx[s, :m], amp_t[s, :m], obs[s, :m] = flat, vals, True
        sign[s, :m] = _half_sign(hkl)
        cut = np.quantile(vals, weak_fraction) if weak_fraction > 0 else -np.inf
        weak[s, :m] = vals <= cut
        if ext is not None:
            ext_mask[s, np.ravel_multi_index(tuple(ext[:, i] % shape[i] for i in range(3)),
                                             shape)] = True
    dev = torch.device(device)
    rep = np.repeat(np.arange(n_struct), starts)
    t_idx = torch.from_numpy(idx[rep]).to(dev)
    t_amp = torch.from_numpy(amp_t[rep]).to(dev)
    t_obs = torch.from_numpy(obs[rep]).to(dev)
    t_weak = torch.from_numpy(weak[rep] & obs[rep]).to(dev)
    t_sign = torch.from_numpy(sign[rep]).to(dev)
    t_ext = torch.from_numpy(ext_mask[rep]).to(dev) if d_ext is not None else None
    ks = delta_k * (1 + delta_spread * np.linspace(-1, 1, starts)) if starts > 1 else \
        np.array([delta_k])
    t_k = torch.from_numpy(np.tile(ks, n_struct)).to(dev).view(-1, 1)
    n_grid = int(np.prod(shape))
    phase0 = torch.from_numpy(gen.uniform(-np.pi, np.pi, (n_total, n_max))).to(dev)
    f = torch.zeros(n_total, n_grid, dtype=torch.complex128, device=dev)
    f.scatter_(1, t_idx, torch.polar(t_amp, phase0) * t_obs)
    # make the start Friedel-consistent: the real part of its density
    rho = torch.fft.fftn(f.view(n_total, *shape), dim=(1, 2, 3)).real
    g = torch.fft.ifftn(rho.to(torch.complex128), dim=(1, 2, 3)).reshape(n_total, n_grid)
    r_hist: list[torch.Tensor] = []
    peak = torch.zeros(n_total, dtype=torch.float64, device=dev)
    conv_at = torch.full((n_total,), -1, dtype=torch.int64, device=dev)
    stable = torch.zeros(n_total, dtype=torch.int64, device=dev)
    half_pi = torch.as_tensor(math.pi / 2, dtype=torch.float64, device=dev)
    for it in range(max_iter):
        g_obs = torch.gather(g, 1, t_idx)
        ph = torch.angle(g_obs) + torch.where(t_weak, half_pi * t_sign, 0.0)
        mag = torch.where(t_weak, g_obs.abs(), t_amp)
        f = torch.zeros_like(g) if t_ext is None else torch.where(t_ext, g, 0)
        f[:, 0] = g[:, 0]
        f.scatter_(1, t_idx, torch.polar(mag, ph) * t_obs)
        rho = torch.fft.fftn(f.view(n_total, *shape), dim=(1, 2, 3)).real
        delta = t_k * rho.reshape(n_total, -1).std(dim=1, keepdim=True)
        flipped = torch.where(rho.reshape(n_total, -1) > delta, rho.reshape(n_total, -1),
                              -rho.reshape(n_total, -1))
        g = torch.fft.ifftn(flipped.view(n_total, *shape).to(torch.complex128),
                            dim=(1, 2, 3)).reshape(n_total, n_grid)
        # R between observed and calculated amplitudes (strong reflections, scaled)
        g_abs = torch.gather(g, 1, t_idx).abs()
        strong = t_obs & ~t_weak
        scale = (t_amp * g_abs * strong).sum(1) / (g_abs**2 * strong).sum(1).clamp_min(1e-30)
        r = ((t_amp - scale[:, None] * g_abs).abs() * strong).sum(1) / \
            (t_amp * strong).sum(1).clamp_min(1e-30)
        r_hist.append(r)
        peak = torch.maximum(peak, r)
        dropped = (peak - r) > r_drop
        if it > 0:
            steady = (r_hist[-2] - r).abs() < r_tol
            stable = torch.where(dropped & steady, stable + 1, torch.zeros_like(stable))
        newly = (stable >= patience) & (conv_at < 0)
        conv_at = torch.where(newly, torch.full_like(conv_at, it - patience), conv_at)
        if bool((conv_at >= 0).all()):
            break
    # the final model of each start: observed amplitudes with G's phases
    g_obs = torch.gather(g, 1, t_idx)
    final_r = r_hist[-1].view(n_struct, starts)
    best = final_r.argmin(dim=1)
    results = []
    for s, (refl, (_, _, _, outer_hkl)) in enumerate(zip(refls, p1, strict=True)):
        row = s * starts + int(best[s])
        grid = g[row].view(*shape).cpu().numpy()
        phases_p1 = _asu_phases(grid, refl.hkl, shape)
        phases, origin = locate_origin(grid, refl)
        extrap = None
        if outer_hkl is not None:
            extrap = (outer_hkl, np.abs(grid[tuple(outer_hkl[:, i] % shape[i]
                                                   for i in range(3))]))
        results.append(FlipResult(phases, phases_p1, float(final_r[s, best[s]]),
                                  int(conv_at[row]), origin, extrap))
    return results


def _asu_phases(grid: np.ndarray, hkl: np.ndarray, shape: tuple) -> np.ndarray:
    return np.angle(grid[tuple(hkl[:, i] % shape[i] for i in range(3))])


def locate_origin(grid: np.ndarray, refl: Reflections) -> tuple[np.ndarray, tuple]:
    """Origin location and symmetry averaging of a P1 solution.

    ``grid``: the solution's structure factors F'(h) on the FFT grid (index h mod shape). The
    shift x0 maximises Σ_g Re S_g((I − R_g) x0) with S_g(s) = Σ_h F'(hR) F'(h)* e^{2πi h·t}
    e^{−2πi h·s} (one FFT per operation): for the right origin F(hR) = F(h) e^{−2πi h·t}.
    Returns the ASU phases (radians) of the shifted, group-averaged solution and x0.
    """
    shape = grid.shape
    rots, trans = refl.symmetry.all_ops()
    rots_i = np.rint(rots).astype(np.int64)
    axes = [np.fft.fftfreq(n, 1 / n).astype(np.int64) for n in shape]
    h = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)  # every grid index
    f_flat = grid.reshape(-1)
    total = np.zeros(shape)
    j = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    for rot, t in zip(rots_i, trans, strict=True):
        if (rot == np.eye(3, dtype=np.int64)).all() and not np.any(t):
            continue
        hr = h @ rot
        f_hr = grid[tuple(hr[:, i] % shape[i] for i in range(3))]
        a = (f_hr * np.conj(f_flat) * np.exp(2j * np.pi * (h @ t))).reshape(shape)
        s_g = np.fft.fftn(a).real  # Σ_h A(h) e^{−2πi h·s}
        # (I − R) x0 on the grid: x0 = j / shape → s index (I − R) j (equal sizes where R mixes)
        idx = ((j * (1 / np.array(shape))) @ (np.eye(3) - rot).T) * np.array(shape)
        idx = np.rint(idx).astype(np.int64) % np.array(shape)
        total += s_g[tuple(idx[:, i] for i in range(3))].reshape(shape)
    k = np.unravel_index(int(np.argmax(total)), shape)
    x0 = np.array([k[i] / shape[i] for i in range(3)])
    hkl = refl.hkl.astype(np.int64)
    acc = np.zeros(len(hkl), complex)
    for rot, t in zip(rots_i, trans, strict=True):
        hr = hkl @ rot
        f_hr = grid[tuple(hr[:, i] % shape[i] for i in range(3))] * \
            np.exp(2j * np.pi * (hr @ x0))  # shifted solution F(hR) = F'(hR) e^{2πi hR·x0}
        acc += f_hr * np.exp(2j * np.pi * (hkl @ t))  # F(h) = F(hR) e^{2πi h·t}
    return np.angle(acc), tuple(float(v) for v in x0)
