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
``patience`` cycles; every start runs at most ``max_iter`` cycles. A start that has found the
structure shows its space group's symmetry while the others do not (a low R alone also marks
false "uranium atom" solutions), so every ten cycles the symmetry agreement of each start is
measured in the batch (:mod:`xtalforge.phasing.symmetry_check`), and a structure leaves the
batch once one of its starts has clearly shown it (``stop="first"``). The start kept per
structure has the best symmetry agreement (P1: the lowest R); its origin is located from the
space-group symmetry of its phases and its phases averaged over the group (see
:func:`locate_origin`). Structures share a grid only with others of a similar size (padding
costs FFT time), so a batch runs as a few groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from xtalforge.diffraction.maps import grid_shape
from xtalforge.diffraction.reflections import D_SLACK, Reflections, below, reflections
from xtalforge.errors import ReflectionError
from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.symmetry_check import SymmetryCheck

__all__ = [
    "DEFAULT_PRIOR_WEIGHT",
    "FlipResult",
    "charge_flip",
    "charge_flip_batch",
    "locate_origin",
]

#: Weight of a predicted amplitude against the flipped map's in a restrained extension shell
#: (``ext_prior``). On 25 real COD structures at 1.5 Å (BENCHMARKS.md, three seeds) weights
#: 0.5 / 0.8 / 1 solved 76 / 75 / 77 % with a 1.5 → 1.0 Å model and 67 / 59 / 65 % with a
#: 1.5 → 0.8 Å model: 0.5 is the best or level at both depths.
DEFAULT_PRIOR_WEIGHT = 0.5


@dataclass(frozen=True)
class FlipResult:
    """One structure's solution: ASU phases (radians) after origin location and symmetry
    averaging, the raw P1 phases of the same reflections, the final R of the best start, the
    cycle at which it converged (−1: never), the free-lunch amplitudes when used, and the
    number of cycles run."""

    phases: np.ndarray
    p1_phases: np.ndarray
    r_factor: float
    converged_at: int
    origin: tuple[float, float, float]
    symmetry_agreement: float
    extrapolated: tuple[np.ndarray, np.ndarray] | None = None  # (hkl, |F|) beyond the data
    cycles: int = 0  # flipping cycles the structure ran (its longest start)


def _half_sign(hkl: np.ndarray) -> np.ndarray:
    """+1 for indices in one half of reciprocal space, −1 for their Friedel mates."""
    first = np.where(hkl[:, 0] != 0, hkl[:, 0], np.where(hkl[:, 1] != 0, hkl[:, 1], hkl[:, 2]))
    return np.sign(first).astype(np.float64)


def charge_flip(refl: Reflections, amplitudes: np.ndarray, **kwargs) -> FlipResult:
    """Charge flipping of one structure (see :func:`charge_flip_batch` for the options)."""
    return charge_flip_batch([refl], [amplitudes], **kwargs)[0]


def charge_flip_batch(
    refls: list[Reflections],
    amplitudes: list[np.ndarray],
    starts: int = 4,
    max_iter: int = 500,
    weak_fraction: float = 0.2,
    delta_k: float = 1.1,
    delta_spread: float = 0.15,
    sample_rate: float = 2.5,
    d_ext: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    r_drop: float = 0.06,
    r_tol: float = 0.01,
    patience: int = 30,
    stop: str = "first",
    agreement_min: float = 0.25,
    agreement_noise: float = 4.0,
    agreement_tol: float = 0.05,
    grace: int | None = None,
    check_every: int = 10,
    double: bool = False,
    ext_prior: list[tuple[np.ndarray, np.ndarray]] | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> list[FlipResult]:
    """Charge flipping of many structures at once, each with ``starts`` random starts.

    ``amplitudes``: |E| (recommended) or |F| per ASU reflection of each ``refls`` entry.
    Structures of similar grid sizes run together, all their starts in one tensor on
    ``device`` on one padded grid (a finer grid than a structure needs only samples its
    density more finely; at most 1.5× the points they need); the density is real, so only
    half of reciprocal space is stored (rfft). Each structure's random starting phases come
    from (``seed``, its position in the list). A start whose R has
    converged leaves the batch. ``stop``: ``"first"`` (default) — every ``check_every`` cycles
    the symmetry agreement of each start's phases with its space group is measured
    (:class:`~xtalforge.phasing.symmetry_check.SymmetryCheck`: 1 for symmetric phases, about
    0.1–0.2 for random ones, higher at low resolution), and a structure leaves the batch as
    soon as one start has shown its symmetry at two checks in a row — agreement at least
    ``agreement_min`` and ``agreement_noise`` × the agreement of the structure's random starting
    phases, changed by at most ``agreement_tol`` — and then ``grace`` cycles more (a phase
    transition takes a while to settle; default 40, and 100 with ``d_ext``, whose extrapolated
    amplitudes keep improving after the transition); its other starts stop where they are and still
    compete for the best solution. Structures in P1 have nothing to check and run as with
    ``"all"``: every start runs until its R converges or ``max_iter``.
    ``double``: float64 instead of float32.

    ``ext_prior`` (with ``d_ext``): per structure, (ASU hkl, amplitudes on the scale of
    ``amplitudes``) of predicted amplitudes for reflections of the extension shell — e.g. a
    resolution-extension model's. They seed the shell (random phases, like the data) and then
    act as a soft restraint: every cycle a shell reflection with a prior takes the modulus
    ``prior_weight`` · prior + (1 − ``prior_weight``) · |G| with G's phase (1: the prediction
    is used as data; 0: plain free lunch after the seeded start). Shell reflections without a
    prior take G, as in free lunch.
    """
    if stop not in ("first", "all"):
        raise ReflectionError(f"stop must be 'first' or 'all', got {stop!r}")
    if len(refls) != len(amplitudes) or not refls:
        raise ReflectionError("charge_flip_batch needs one amplitude array per Reflections")
    if starts < 1 or max_iter < 1:
        raise ReflectionError("charge flipping needs starts ≥ 1 and max_iter ≥ 1")
    if ext_prior is not None and (d_ext is None or len(ext_prior) != len(refls)):
        raise ReflectionError("ext_prior needs d_ext and one (hkl, amplitudes) per structure")
    if not 0.0 <= prior_weight <= 1.0:
        raise ReflectionError(f"prior_weight must lie in [0, 1], got {prior_weight}")
    p1 = []
    for k, (refl, amp) in enumerate(zip(refls, amplitudes, strict=True)):
        amp = np.abs(np.asarray(amp, np.float64))
        if amp.shape != (len(refl),) or not np.isfinite(amp).all():
            raise ReflectionError("amplitudes must be finite, one per reflection")
        hkl, vals = refl.expand_to_p1(amp)
        keep = hkl.any(axis=1)  # F(000) is the map's own
        ext = outer_hkl = None
        if d_ext is not None:
            if d_ext >= refl.d_min:
                raise ReflectionError(
                    f"d_ext ({d_ext} Å) must be finer than the data's d_min ({refl.d_min:.3f} Å)"
                )
            outer = reflections(
                refl.cell, d_ext, refl.d_min * (1 - D_SLACK), spacegroup=refl.spacegroup
            )
            outer = outer.subset(below(outer.d, refl.d_min))
            ext, prior = outer.expand_to_p1(
                _prior_on(outer.hkl, ext_prior[k])
                if ext_prior is not None
                else np.zeros(len(outer))
            )
            outer_hkl = outer.hkl
            ext = (ext, prior)
        p1.append((hkl[keep], vals[keep], ext, outer_hkl))
    d_all = min(r.d_min if d_ext is None else d_ext for r in refls)
    own = [
        grid_shape(
            r.cell, np.concatenate([h] + ([e[0]] if e is not None else [])), d_all, sample_rate
        )
        for (h, _, e, _), r in zip(p1, refls, strict=True)
    ]
    opts = _Options(
        starts,
        max_iter,
        weak_fraction,
        delta_k,
        delta_spread,
        d_ext is not None,
        torch.device(device),
        torch.float64 if double else torch.float32,
        r_drop,
        r_tol,
        patience,
        stop,
        agreement_min,
        agreement_noise,
        agreement_tol,
        (40 if d_ext is None else 100) if grace is None else grace,
        check_every,
        None if ext_prior is None else prior_weight,
    )
    results: list[FlipResult | None] = [None] * len(refls)
    for members in _grid_groups(own):
        shape = tuple(int(n) for n in np.max([own[i] for i in members], axis=0))
        gens = [np.random.default_rng([seed, i]) for i in members]
        for i, res in zip(
            members,
            _flip_group([refls[i] for i in members], [p1[i] for i in members], shape, gens, opts),
            strict=True,
        ):
            results[i] = res
    return results  # type: ignore[return-value]


@dataclass(frozen=True)
class _Options:
    starts: int
    max_iter: int
    weak_fraction: float
    delta_k: float
    delta_spread: float
    extrapolate: bool
    device: torch.device
    real: torch.dtype
    r_drop: float
    r_tol: float
    patience: int
    stop: str
    agreement_min: float
    agreement_noise: float
    agreement_tol: float
    grace: int
    check_every: int
    prior_weight: float | None = None  # set: the extension shell has priors (ext_prior)


def _prior_on(shell_hkl: np.ndarray, prior: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The prior amplitudes of the extension shell's ASU reflections (NaN where none)."""
    hkl, amp = prior
    lookup = {
        tuple(h): float(a)
        for h, a in zip(np.asarray(hkl).tolist(), np.abs(np.asarray(amp, float)), strict=True)
    }
    return np.array([lookup.get(tuple(h), np.nan) for h in shell_hkl.tolist()])


class _Start(NamedTuple):
    """One start's state when it left the batch."""

    phases: np.ndarray  # of the observed reflections stored in the half grid (radians)
    extrapolated: np.ndarray | None  # free-lunch |G| of the extension shell
    r_factor: float
    converged_at: int  # −1: never
    agreement: float  # with every operation of the group; NaN in P1
    cycles: int


def _grid_groups(own: list[tuple[int, int, int]], waste: float = 1.5) -> list[list[int]]:
    """Structures grouped to share a grid (the largest of each axis): sorted by grid size, a
    group grows while its padded grids hold at most ``waste`` × the points they need."""
    size = [int(np.prod(s)) for s in own]
    groups: list[list[int]] = []
    need, box = 0, np.zeros(3, int)
    for i in np.argsort(size, kind="stable"):
        i = int(i)
        grown = np.maximum(box, own[i])
        if groups and np.prod(grown) * (len(groups[-1]) + 1) <= waste * (need + size[i]):
            groups[-1].append(i)
            need, box = need + size[i], grown
        else:
            groups.append([i])
            need, box = size[i], np.array(own[i])
    return groups


def _flip_group(
    refls: list[Reflections],
    p1: list[tuple],
    shape: tuple[int, int, int],
    gens: list[np.random.Generator],
    o: _Options,
) -> list[FlipResult]:
    """Charge flipping of structures sharing one grid ``shape`` (see :func:`charge_flip_batch`)."""
    starts, max_iter, patience, check_every = o.starts, o.max_iter, o.patience, o.check_every
    real, dev = o.real, o.device
    half = HalfGrid(shape)
    n_struct = len(refls)
    obs_lists = [half.select(h) for h, _, _, _ in p1]  # (rows into the P1 list, flat, weight)
    n_max = max(len(o[0]) for o in obs_lists)
    idx = np.zeros((n_struct, n_max), np.int64)
    amp_t = np.zeros((n_struct, n_max))
    wgt = np.zeros((n_struct, n_max))  # 0 for padding, else how often it counts in the sphere
    weak = np.zeros((n_struct, n_max), bool)
    sign = np.zeros((n_struct, n_max))
    for s, ((hkl, vals, _, _), (rows, flat, w)) in enumerate(zip(p1, obs_lists, strict=True)):
        m = len(rows)
        cut = np.quantile(vals, o.weak_fraction) if o.weak_fraction > 0 else -np.inf
        # padding repeats the first reflection (a scatter then writes the same value twice)
        pad = np.r_[np.arange(m), np.zeros(n_max - m, np.int64)]
        idx[s], amp_t[s] = flat[pad], vals[rows][pad]
        wgt[s, :m] = w
        weak[s], sign[s] = (vals[rows] <= cut)[pad], _half_sign(hkl[rows])[pad]
    ext_idx = ext_w = ext_prior = None
    if o.extrapolate:
        ext_lists = [half.select(e[0]) for _, _, e, _ in p1]
        e_max = max(len(e[0]) for e in ext_lists)
        ext_idx = np.zeros((n_struct, e_max), np.int64)
        ext_w = np.zeros((n_struct, e_max))
        ext_prior = np.full((n_struct, e_max), np.nan)
        for s, (rows, flat, w) in enumerate(ext_lists):
            pad = np.r_[np.arange(len(rows)), np.zeros(e_max - len(rows), np.int64)]
            ext_idx[s], ext_w[s, : len(rows)] = flat[pad], w
            ext_prior[s] = p1[s][2][1][rows][pad]
    ks = (
        o.delta_k * (1 + o.delta_spread * np.linspace(-1, 1, starts))
        if starts > 1
        else np.array([o.delta_k])
    )
    rep = np.repeat(np.arange(n_struct), starts)

    def put(a: np.ndarray, dtype: torch.dtype = real) -> torch.Tensor:
        return torch.as_tensor(a, device=dev).to(dtype)

    st = {
        "row": put(np.arange(n_struct * starts), torch.int64),
        "struct": put(rep, torch.int64),
        "idx": put(idx[rep], torch.int64),
        "amp": put(amp_t[rep]),
        "w": put(wgt[rep]),
        "weak": put(weak[rep], torch.bool),
        "turn": put(-1j * sign[rep], real.to_complex()),
        "k": put(np.tile(ks, n_struct)[:, None]),
    }
    if ext_idx is not None:
        st["ext_idx"], st["ext_w"] = put(ext_idx[rep], torch.int64), put(ext_w[rep])
    phase0 = put(
        np.concatenate(
            [
                np.pad(
                    g.uniform(-np.pi, np.pi, (starts, len(o_[0]))),
                    ((0, 0), (0, n_max - len(o_[0]))),
                )
                for g, o_ in zip(gens, obs_lists, strict=True)
            ]
        )
    )
    n_half, n_grid = half.size, int(np.prod(shape))
    # the running state: conj G on the half grid, as rfftn gives it
    gc = torch.zeros(len(rep), n_half, dtype=real.to_complex(), device=dev)
    prior_w = o.prior_weight
    if prior_w is not None and ext_prior is not None:  # the shell starts from its priors
        has = np.isfinite(ext_prior)
        st["prior"], st["has_prior"] = put(np.nan_to_num(ext_prior)[rep]), put(has[rep], torch.bool)
        seed_phase = put(
            np.concatenate([g.uniform(-np.pi, np.pi, (starts, ext_prior.shape[1])) for g in gens])
        )
        gc.scatter_(1, st["ext_idx"], torch.polar(st["prior"], -seed_phase))
    gc.scatter_(1, st["idx"], torch.polar(st["amp"], -phase0))
    st["gc"] = gc
    st["peak"] = torch.zeros(len(rep), dtype=real, device=dev)
    st["r_prev"] = torch.full((len(rep),), math.inf, dtype=real, device=dev)
    st["stable"] = torch.zeros(len(rep), dtype=torch.int64, device=dev)
    final: dict[int, _Start] = {}
    checker: SymmetryCheck | None = SymmetryCheck(
        half,
        [
            (r.spacegroup.hall, r.symmetry.rotations, r.symmetry.translations, h, v)
            for r, (h, v, _, _) in zip(refls, p1, strict=True)
        ],
        dev,
        real,
    )
    if not checker.active:
        checker = None
    watch = checker is not None and o.stop == "first"
    if watch:  # the agreement of random phases: this structure's noise level
        noise = checker.agreement(st["gc"], st["struct"]).view(n_struct, starts).mean(1)
        st["thr"] = (o.agreement_noise * noise[st["struct"]]).clamp_min(o.agreement_min)
        st["agree"] = torch.zeros(len(rep), dtype=real, device=dev)
        st["due"] = torch.full((len(rep),), max_iter, dtype=torch.int64, device=dev)
        st["seen"] = torch.full((len(rep),), -1, dtype=torch.int64, device=dev)  # found at

    def retire(done: torch.Tensor, at: torch.Tensor, cycles: int) -> None:
        """Store the retiring rows' observed-amplitude models (``at``: per row of the batch,
        the cycle it converged at, −1 for never) and drop them from the batch."""
        rows = st["row"][done].tolist()
        conv = at[done].tolist()
        ph = -torch.angle(torch.gather(st["gc"][done], 1, st["idx"][done])).cpu().numpy()
        ext = None
        if ext_idx is not None:
            ext = torch.gather(st["gc"][done], 1, st["ext_idx"][done]).abs().cpu().numpy()
        r = st["r_prev"][done].cpu().numpy()
        agree = np.full(len(rows), np.nan)
        if checker is not None:
            agree = (
                checker.agreement(st["gc"][done], st["struct"][done], every_op=True).cpu().numpy()
            )
        for j, row in enumerate(rows):
            final[row] = _Start(
                ph[j],
                None if ext is None else ext[j],
                float(r[j]),
                conv[j],
                float(agree[j]),
                cycles,
            )
        for key in list(st):
            st[key] = st[key][~done]

    for it in range(max_iter):
        if not len(st["row"]):
            break
        # stored conj G of the observed reflections: strong ones take |E| with G's phase, weak
        # ones keep |G| with the phase shifted by sign·π/2 (conj G · e^{−i sign π/2})
        g_obs = torch.gather(st["gc"], 1, st["idx"])
        g_abs = g_obs.abs()
        mag = torch.where(st["weak"], g_abs, st["amp"])
        var = (st["w"] * mag**2).sum(1, keepdim=True)
        g_obs = g_obs * torch.where(st["weak"], st["turn"], st["amp"] / g_abs.clamp_min(1e-30))
        fc = torch.zeros_like(st["gc"])
        fc[:, 0] = st["gc"][:, 0]
        if ext_idx is not None:
            g_ext = torch.gather(st["gc"], 1, st["ext_idx"])
            if "prior" in st:  # restrained towards the prior modulus, G's phase
                e_abs = g_ext.abs()
                target = prior_w * st["prior"] + (1 - prior_w) * e_abs
                g_ext = torch.where(
                    st["has_prior"], g_ext * (target / e_abs.clamp_min(1e-30)), g_ext
                )
            fc.scatter_(1, st["ext_idx"], g_ext)
            var = var + (st["ext_w"] * g_ext.abs() ** 2).sum(1, keepdim=True)
        fc.scatter_(1, st["idx"], g_obs)
        # ρ/N = irfftn(conj F); σ(ρ) = √(Σ_{h≠0} |F|²) by Parseval
        rho = torch.fft.irfftn(fc.view(-1, *half.shape), s=shape, dim=(1, 2, 3))
        delta = (st["k"] * var.sqrt() / n_grid).view(-1, 1, 1, 1)
        rho = torch.where(rho > delta, rho, -rho)
        st["gc"] = torch.fft.rfftn(rho, dim=(1, 2, 3)).reshape(-1, n_half)
        # R between observed and calculated amplitudes (strong reflections, scaled)
        g_abs = torch.gather(st["gc"], 1, st["idx"]).abs()
        strong = st["w"] * ~st["weak"]
        scale = (st["amp"] * g_abs * strong).sum(1) / (g_abs**2 * strong).sum(1).clamp_min(1e-30)
        r = ((st["amp"] - scale[:, None] * g_abs).abs() * strong).sum(1) / (st["amp"] * strong).sum(
            1
        ).clamp_min(1e-30)
        st["peak"] = torch.maximum(st["peak"], r)
        steady = ((st["r_prev"] - r).abs() < o.r_tol) & ((st["peak"] - r) > o.r_drop)
        st["stable"] = torch.where(steady, st["stable"] + 1, torch.zeros_like(st["stable"]))
        st["r_prev"] = r
        if it % check_every == check_every - 1:
            at = torch.where(st["stable"] >= patience, it - patience, -1)
            done = at >= 0
            if watch:  # a structure with a start showing its symmetry is done
                struct = st["struct"]
                agree = checker.agreement(st["gc"], struct)
                found = (
                    (agree >= st["thr"])
                    & (st["agree"] >= st["thr"])
                    & ((agree - st["agree"]).abs() <= o.agreement_tol)
                )
                st["agree"] = agree
                st["seen"] = torch.where(found & (st["seen"] < 0), it, st["seen"])
                at = torch.where(at < 0, st["seen"], at)
                # the structure runs ``grace`` more cycles (a transition takes a while to settle)
                due = torch.isin(struct, struct[found]) & (st["due"] > it + o.grace)
                st["due"] = torch.where(due, it + o.grace, st["due"])
                done = done | (st["due"] <= it)
            if bool(done.any()):
                retire(done, at, it + 1)
    if len(st["row"]):
        last = torch.where(st["stable"] >= patience, max_iter - 1 - patience, -1)
        if "seen" in st:
            last = torch.where(last < 0, st["seen"], last)
        retire(torch.ones_like(st["stable"], dtype=torch.bool), last, max_iter)
    results = []
    for s, (refl, (full_hkl, full_amp, _, outer_hkl), (rows, flat, _)) in enumerate(
        zip(refls, p1, obs_lists, strict=True)
    ):
        m = len(rows)
        own = [final[s * starts + j] for j in range(starts)]
        # the start kept: the best agreement with every operation (P1: the lowest R)
        best = max(
            own, key=lambda c: (-math.inf if math.isnan(c.agreement) else c.agreement, -c.r_factor)
        )
        # observed amplitudes with its phases on the full grid (mates by Friedel)
        unit = np.zeros(half.size, complex)
        unit[flat] = np.exp(1j * best.phases[:m])
        grid = np.zeros(shape, complex)
        grid.reshape(-1)[half.flat(full_hkl)] = full_amp * half.values_at(unit, full_hkl)
        phases, origin, agreement = locate_origin(grid, refl)
        extrap = None
        if outer_hkl is not None:
            _, ext_flat, _ = half.select(p1[s][2][0])
            lookup = np.zeros(half.size)
            lookup[ext_flat] = best.extrapolated[: len(ext_flat)]
            extrap = (outer_hkl, half.values_at(lookup, outer_hkl))
        results.append(
            FlipResult(
                phases,
                _asu_phases(grid, refl.hkl, shape),
                best.r_factor,
                int(best.converged_at),
                origin,
                agreement,
                extrap,
                max(c.cycles for c in own),
            )
        )
    return results


def _asu_phases(grid: np.ndarray, hkl: np.ndarray, shape: tuple) -> np.ndarray:
    return np.angle(grid[tuple(hkl[:, i] % shape[i] for i in range(3))])


def locate_origin(grid: np.ndarray, refl: Reflections) -> tuple[np.ndarray, tuple, float]:
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
    n_other = len(rots_i) - 1
    # agreement: mean over the non-identity operations of the correlation between F'(hR)
    # shifted and F'(h) (1 for a solution with the group's symmetry)
    agreement = float(total[k] / (n_other * (np.abs(f_flat) ** 2).sum())) if n_other else 1.0
    hkl = refl.hkl.astype(np.int64)
    acc = np.zeros(len(hkl), complex)
    for rot, t in zip(rots_i, trans, strict=True):
        hr = hkl @ rot
        f_hr = grid[tuple(hr[:, i] % shape[i] for i in range(3))] * np.exp(
            2j * np.pi * (hr @ x0)
        )  # shifted solution F(hR) = F'(hR) e^{2πi hR·x0}
        acc += f_hr * np.exp(2j * np.pi * (hkl @ t))  # F(h) = F(hR) e^{2πi h·t}
    return np.angle(acc), tuple(float(v) for v in x0), agreement
