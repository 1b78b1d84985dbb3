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
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from xtalforge.diffraction.maps import grid_shape
from xtalforge.diffraction.reflections import D_SLACK, Reflections, below, reflections
from xtalforge.errors import ReflectionError
from xtalforge.phasing.density_modification import (
    check_map_model,
    dm_grid,
    half_positions,
    modify_maps,
)
from xtalforge.phasing.fft import flip_density, irfftn_into, rfftn_into
from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.start_pairs import PairCheck
from xtalforge.phasing.symmetry_check import SymmetryCheck, origin_index

__all__ = [
    "DEFAULT_DM_EVERY",
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
#: Cycles a structure runs on after one of its starts showed its symmetry (a phase transition
#: takes a while to settle); longer with free lunch, whose extrapolated amplitudes keep
#: improving after the transition.
GRACE, GRACE_COARSE, GRACE_FREE_LUNCH = 20, 40, 100
#: How far above random phases a start's symmetry agreement must rise to count as solved
#: (``agreement_noise`` by default): 2.5× for data to ``ATOMIC_D`` Å or finer, 3× for
#: near-atomic data (to ``NEAR_ATOMIC_D`` Å), 4× for coarser data. Calibrated on single starts
#: of the 77 COD development structures (300 cycles, never stopped): at 1.0 Å 2.5× confirms 51
#: of the 70 starts that solve and 2 of 6 that do not, at 1.5 Å 2.5× would stop 7 of 52
#: failing starts (4×: none), and a structure stopped on a failing start gets no second wave.
#: At 1.2 Å (78 structures, 4 solver seeds, all starts at once) 3× solved 70.8 % against
#: 71.5 % with 4× and stopped the median structure 1.4× sooner (BENCHMARKS.md).
NOISE_FACTOR, NOISE_FACTOR_NEAR, NOISE_FACTOR_COARSE = 2.5, 3.0, 4.0
ATOMIC_D, NEAR_ATOMIC_D = 1.1, 1.25
#: The least agreement that counts (``agreement_min`` by default), atomic and coarser data.
AGREEMENT_MIN, AGREEMENT_MIN_COARSE = 0.15, 0.25
#: Default cycles per start: in the waves at atomic resolution (one start there solves 92 % of
#: the development structures at 1.0 Å within 300 cycles) and for coarser data, where every
#: start runs at once (the transition comes later, and waves solved fewer: 30 % against 38 %
#: of 40 structures at 1.5 Å with the same starting phases).
ATOMIC_MAX_ITER, COARSE_MAX_ITER = 300, 500
#: Cycles between two learned density-modification steps (``dm_model``).
DEFAULT_DM_EVERY = 10
#: The second confirmation (``pair_min`` by default): a structure has been found when two of
#: its starts hold the same map, their correlation over every origin shift and (without a
#: centre of symmetry) both hands (:mod:`.start_pairs`) at least this at ``PAIR_CHECKS``
#: checks in a row. Used for near-atomic data only (coarser than ``ATOMIC_D``, to
#: ``NEAR_ATOMIC_D``), where the symmetry agreement alone confirms late, and not in P-1: there
#: starts of heavy-atom structures share false solutions (their maps correlate as well as
#: solved ones). Calibrated at 1.2 Å on the 78 COD development structures over four solver
#: seeds (BENCHMARKS.md, fourteenth session): pairs of solved starts correlate 0.42–0.58
#: (10–90 %), of unsolved ones 0.11–0.37; one check at 0.5, without the second, stops
#: starts that fell into a shared false solution.
PAIR_MIN_NEAR = 0.5
#: Checks in a row at which some pair of a structure's starts must reach ``pair_min``.
PAIR_CHECKS = 2
#: Cycles a structure runs on after its pair confirmation.
PAIR_GRACE = 20


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
    max_iter: int | None = None,
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
    agreement_min: float | None = None,
    agreement_noise: float | None = None,
    agreement_tol: float = 0.05,
    agreement_starts: int = 1,
    pair_min: float | None = None,
    grace: int | None = None,
    check_every: int = 10,
    double: bool = False,
    ext_prior: list[tuple[np.ndarray, np.ndarray]] | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    dm_model: Any = None,
    dm_every: int = DEFAULT_DM_EVERY,
    dm_trace: list[dict[str, Any]] | None = None,
    compiled: bool = True,
) -> list[FlipResult]:
    """Charge flipping of many structures at once, each with up to ``starts`` random starts.

    ``amplitudes``: |E| (recommended) or |F| per ASU reflection of each ``refls`` entry.
    Structures of similar grid sizes share one padded grid (at most 1.5× the points they
    need), all their starts in one tensor on ``device``; only half of reciprocal space is
    stored (rfft; on the CPU pocketfft, :mod:`.fft`). Each structure's random starting phases
    come from (``seed``, its position in the list).

    ``stop``: ``"first"`` (default) — for data to ``ATOMIC_D`` (1.1 Å) or finer the starts run
    in two waves (as smtbx does): one start (δ = ``delta_k`` σ) first, and the other ``starts``
    − 1 together (δ spread over ±``delta_spread``) only for the structures the first did not
    solve (coarser data: all starts at once, see :data:`COARSE_MAX_ITER`). Every ``check_every``
    cycles the symmetry agreement of each start's phases with its space group is measured
    (:class:`~.symmetry_check.SymmetryCheck`: 1 for symmetric phases, 0.05–0.2 for random); a
    start has solved its structure when at two checks in a row its agreement is at least
    ``agreement_min`` (0.15; coarser data 0.25) and ``agreement_noise`` × that of its random
    starting phases (default 2.5 for data to 1.1 Å or finer, 3 to 1.25 Å, 4 for coarser data;
    see :data:`NOISE_FACTOR`), changed by at most ``agreement_tol``; once ``agreement_starts``
    of its starts have (default 1; at most the starts of the wave) the structure runs
    ``grace`` cycles more (default 20, coarser data 40, free lunch 100) and leaves the batch;
    its other starts stop where they are and still compete for the best solution. A structure
    has also been found when the maps of two of its starts correlate by ``pair_min`` (over
    every origin shift and, without a centre of symmetry, both hands: :mod:`.start_pairs`) at
    :data:`PAIR_CHECKS` checks in a row, with ``agreement_starts`` ≤ 2; it then runs
    :data:`PAIR_GRACE` cycles more. ``pair_min`` defaults to :data:`PAIR_MIN_NEAR` for
    near-atomic data (coarser than 1.1 Å, to 1.25 Å) outside the triclinic groups, else
    ``math.inf`` (off). In P1 (nothing to check) a start whose R has converged (fallen
    ``r_drop`` below its running maximum, then within ``r_tol`` for ``patience`` cycles)
    solves its structure. ``"all"``: every start at
    once, each until its R converges or ``max_iter`` cycles per wave (300 in the atomic waves,
    else 500). ``double``: float64, not float32.

    ``ext_prior`` (with ``d_ext``): per structure, (ASU hkl, amplitudes on the scale of
    ``amplitudes``) of predicted amplitudes for reflections of the extension shell — e.g. a
    resolution-extension model's. They seed the shell (random phases, like the data) and then
    act as a soft restraint: every cycle a shell reflection with a prior takes the modulus
    ``prior_weight`` · prior + (1 − ``prior_weight``) · |G| with G's phase (1: the prediction
    is used as data; 0: plain free lunch after the seeded start). Shell reflections without a
    prior take G, as in free lunch.

    ``dm_model`` (a :class:`~xtalforge.phasing.density_modification.MapModel`, e.g. a trained
    ``density_modification`` checkpoint): every ``dm_every`` cycles the map of the measured
    amplitudes with each start's current phases goes through the model
    (:func:`~xtalforge.phasing.density_modification.modify_maps`, on its own grid of the model's
    spacing); the Fourier transform of its output gives the measured reflections their phases
    (the amplitudes stay measured at the next cycle) and the extension shell its amplitudes and
    phases: free lunch with a learned density. ``d_ext`` defaults to the model's d_high (when
    every structure fits the model). Structures whose data are finer than the model's
    ``d_low`` are flipped without it (a warning says so). ``dm_trace`` (a list): each step
    appends, per structure, ``structure`` and ``cell`` (its position in its group of
    similar grids, and its cell, Å and °), the model grid ``shape``, ``cycle``, the P1
    indices of the measured reflections (``hkl``) and of the shell (``ext_hkl``) and their
    coefficients (conj F, the running scale; rows = the structure's running starts) before
    (``before``) and after the step (``after``, ``ext_after``) — for diagnostics.
    """
    if dm_model is not None:
        d_ext = _dm_extension(refls, dm_model, d_ext, dm_every)
    _check_arguments(
        refls, amplitudes, starts, max_iter, stop, d_ext, ext_prior, prior_weight, agreement_starts
    )
    agreement = (agreement_noise, agreement_min, pair_min)
    p1, own = _expand(refls, amplitudes, d_ext, ext_prior, sample_rate, agreement)
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
        agreement_tol,
        agreement_starts,
        GRACE_FREE_LUNCH if grace is None and d_ext is not None else grace,
        check_every,
        None if ext_prior is None else prior_weight,
        dm_model,
        dm_every,
        dm_trace,
        compiled,
    )
    return _run_groups(refls, p1, own, seed, opts)


def _dm_extension(
    refls: list[Reflections], model: Any, d_ext: float | None, every: int
) -> float | None:
    """The extension of a run with a map model (its d_high unless given), after checking the
    model against the data; warns for the structures the model is not used on."""
    if every < 1:
        raise ReflectionError(f"dm_every must be ≥ 1, got {every}")
    check_map_model(model)
    if d_ext is not None and d_ext < model.d_high * (1 - 0.02):
        raise ReflectionError(
            f"d_ext {d_ext:g} Å is finer than the density-modification model's maps "
            f"({model.d_high:g} Å): it cannot fill that shell"
        )
    fine = [k for k, r in enumerate(refls) if not _dm_fits(model, r)]
    if fine:
        warnings.warn(
            f"{len(fine)} of {len(refls)} structures have data finer than the density-"
            f"modification model's d_low ({model.d_low:g} Å): flipped without the model "
            "(it was trained on coarser maps and does not help there)",
            stacklevel=3,
        )
    if d_ext is None and not fine:
        d_ext = float(model.d_high)
    return d_ext


def _dm_fits(model: Any, refl: Reflections) -> bool:
    """Whether the map model is used for data to ``refl.d_min``: not finer than its d_low."""
    return bool(refl.d_min >= model.d_low * (1 - 0.02))


def _with_thresholds(
    d: _P1Data, refl: Reflections, agreement: tuple[float | None, float | None, float | None]
) -> _P1Data:
    """``d`` with its ``agreement_noise``, ``agreement_min`` and ``pair_min``: as given, or by
    resolution."""
    atomic, near = refl.d_min <= ATOMIC_D, refl.d_min <= NEAR_ATOMIC_D
    factor, floor, pair = agreement
    if pair is None:
        triclinic = refl.spacegroup.crystal_system_str() == "triclinic"
        pair = PAIR_MIN_NEAR if near and not atomic and not triclinic else math.inf
    if factor is None:
        factor = NOISE_FACTOR if atomic else NOISE_FACTOR_NEAR if near else NOISE_FACTOR_COARSE
    if floor is None:
        floor = AGREEMENT_MIN if atomic else AGREEMENT_MIN_COARSE
    return d._replace(noise_factor=factor, floor=floor, pair_min=pair)


def _expand(
    refls: list[Reflections],
    amplitudes: list[np.ndarray],
    d_ext: float | None,
    ext_prior: list[tuple[np.ndarray, np.ndarray]] | None,
    sample_rate: float,
    agreement: tuple[float | None, float | None, float | None],
) -> tuple[list[_P1Data], list[tuple[int, int, int]]]:
    """Each structure's data expanded to P1 and the grid it needs on its own (``sample_rate``
    points per the finest d of the batch, data or extension)."""
    p1 = [
        _with_thresholds(
            _p1_data(refl, amp, d_ext, None if ext_prior is None else ext_prior[k]), refl, agreement
        )
        for k, (refl, amp) in enumerate(zip(refls, amplitudes, strict=True))
    ]
    d_all = min(r.d_min if d_ext is None else d_ext for r in refls)
    own = [
        grid_shape(
            r.cell,
            np.concatenate([d.hkl, *([] if d.ext is None else [d.ext[0]])]),
            d_all,
            sample_rate,
        )
        for d, r in zip(p1, refls, strict=True)
    ]
    return p1, own


def _check_arguments(
    refls: list[Reflections],
    amplitudes: list[np.ndarray],
    starts: int,
    max_iter: int | None,
    stop: str,
    d_ext: float | None,
    ext_prior: list[tuple[np.ndarray, np.ndarray]] | None,
    prior_weight: float,
    agreement_starts: int = 1,
) -> None:
    if stop not in ("first", "all"):
        raise ReflectionError(f"stop must be 'first' or 'all', got {stop!r}")
    if len(refls) != len(amplitudes) or not refls:
        raise ReflectionError("charge_flip_batch needs one amplitude array per Reflections")
    if starts < 1 or (max_iter is not None and max_iter < 1) or agreement_starts < 1:
        raise ReflectionError(
            "charge flipping needs starts ≥ 1, max_iter ≥ 1 and agreement_starts ≥ 1"
        )
    if ext_prior is not None and (d_ext is None or len(ext_prior) != len(refls)):
        raise ReflectionError("ext_prior needs d_ext and one (hkl, amplitudes) per structure")
    if not 0.0 <= prior_weight <= 1.0:
        raise ReflectionError(f"prior_weight must lie in [0, 1], got {prior_weight}")


def _run_groups(
    refls: list[Reflections],
    p1: list[_P1Data],
    own: list[tuple[int, int, int]],
    seed: int,
    opts: _Options,
) -> list[FlipResult]:
    """Flip each group of structures of similar grid sizes on its largest grid; structure i's
    random starts come from (``seed``, i)."""
    results: dict[int, FlipResult] = {}
    for members in _grid_groups(own):
        na, nb, nc = (int(n) for n in np.max([own[i] for i in members], axis=0))
        gens = [np.random.default_rng([seed, i]) for i in members]
        found = _flip_group(
            [refls[i] for i in members], [p1[i] for i in members], (na, nb, nc), gens, opts
        )
        results.update(zip(members, found, strict=True))
    return [results[i] for i in range(len(refls))]


@dataclass(frozen=True)
class _Options:
    starts: int
    max_iter: int | None  # None: ATOMIC_MAX_ITER in waves, else COARSE_MAX_ITER
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
    agreement_tol: float
    agreement_starts: int  # starts of a structure that must show its symmetry (at most all)
    grace: int | None  # None: GRACE at atomic resolution, else GRACE_COARSE
    check_every: int
    prior_weight: float | None = None  # set: the extension shell has priors (ext_prior)
    dm_model: Any = None  # a MapModel applied every dm_every cycles
    dm_every: int = DEFAULT_DM_EVERY
    dm_trace: list[dict[str, Any]] | None = None
    compiled: bool = True  # CPU cycles in compiled loops (False: the torch definition)


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


class _P1Data(NamedTuple):
    """One structure's data expanded to P1 (F(000) left out): indices and amplitudes, the
    extension shell's P1 indices and priors (NaN where none) with free lunch, and the shell's
    ASU indices."""

    hkl: np.ndarray
    amp: np.ndarray
    ext: tuple[np.ndarray, np.ndarray] | None
    outer_hkl: np.ndarray | None
    noise_factor: float = NOISE_FACTOR  # its ``agreement_noise``
    floor: float = AGREEMENT_MIN  # its ``agreement_min``
    pair_min: float = math.inf  # its ``pair_min`` (inf: no pair confirmation)


def _p1_data(
    refl: Reflections,
    amplitudes: np.ndarray,
    d_ext: float | None,
    prior: tuple[np.ndarray, np.ndarray] | None,
) -> _P1Data:
    amp = np.abs(np.asarray(amplitudes, np.float64))
    if amp.shape != (len(refl),) or not np.isfinite(amp).all():
        raise ReflectionError("amplitudes must be finite, one per reflection")
    hkl, vals = refl.expand_to_p1(amp)
    keep = hkl.any(axis=1)  # F(000) is the map's own
    if d_ext is None:
        return _P1Data(hkl[keep], vals[keep], None, None)
    if d_ext >= refl.d_min:
        raise ReflectionError(
            f"d_ext ({d_ext} Å) must be finer than the data's d_min ({refl.d_min:.3f} Å)"
        )
    outer = reflections(refl.cell, d_ext, refl.d_min * (1 - D_SLACK), spacegroup=refl.spacegroup)
    outer = outer.subset(below(outer.d, refl.d_min))
    priors = _prior_on(outer.hkl, prior) if prior is not None else np.zeros(len(outer))
    ext_hkl, ext_prior = outer.expand_to_p1(priors)
    return _P1Data(hkl[keep], vals[keep], (ext_hkl, ext_prior), outer.hkl)


def _padded(
    lists: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(padded rows, half-grid indices, weights) of per-structure :meth:`HalfGrid.select`
    results, one row per structure. Padding repeats the first entry (a scatter then writes the
    same value twice) with weight 0."""
    n_max = max(len(rows) for rows, _, _ in lists)
    pads = np.zeros((len(lists), n_max), np.int64)
    idx = np.zeros((len(lists), n_max), np.int64)
    wgt = np.zeros((len(lists), n_max))  # how often a reflection counts in the sphere
    for s, (rows, flat, w) in enumerate(lists):
        pad = np.r_[np.arange(len(rows)), np.zeros(n_max - len(rows), np.int64)]
        pads[s], idx[s], wgt[s, : len(rows)] = pad, flat[pad], w
    return pads, idx, wgt


class _Flipping:
    """The running state of one wave of charge flipping for structures sharing one grid: one
    row per (structure, start) in every tensor of ``st``; rows leave the batch as they finish
    (see :func:`charge_flip_batch`). ``members``: the structures (ids into ``p1``) flipped in
    this wave; ``ks``: the δ factor of each of their starts, numbered from ``first``."""

    def __init__(
        self,
        refls: list[Reflections],
        p1: list[_P1Data],
        half: HalfGrid,
        gens: list[np.random.Generator],
        o: _Options,
        checker: SymmetryCheck | None,
        wave: tuple[list[int], np.ndarray, int, tuple[int, int]],
    ) -> None:
        members, ks, first, (self.max_iter, self.grace) = wave
        self.refls, self.p1, self.half, self.o, self.checker = refls, p1, half, o, checker
        self.n_grid = int(np.prod(half.full))
        self.final: dict[tuple[int, int], _Start] = {}
        self.found: set[int] = set()  # structures one of whose starts showed its symmetry
        self.n_starts, self.first = len(ks), first
        rep = np.repeat(members, len(ks))
        self.st: dict[str, torch.Tensor] = {
            "row": self._put(np.arange(len(rep)), torch.int64),
            "struct": self._put(rep, torch.int64),
        }
        self._observed(members, ks, [gens[s] for s in members])
        self.watch = checker is not None and o.stop == "first"
        if self.watch:
            self._watch_symmetry()
        self.dm_plan = self._dm_plan(members) if o.dm_model is not None else {}
        #: whether :meth:`cycle` runs its compiled CPU loops (else the torch definition)
        self.compiled = o.compiled and o.device.type == "cpu" and not o.extrapolate
        self._views: dict[str, np.ndarray] | None = None
        self.pairs = PairCheck(half, self.compiled)
        #: per structure, the checks in a row at which two of its starts held the same map
        self.pair_streak: dict[int, int] = {}
        self.pair_checks = 0
        #: per structure, the hands its pairs are searched in (1 with a centre of symmetry)
        self.hands = {s: 1 if refls[s].spacegroup.is_centrosymmetric() else 2 for s in members}

    def _dm_plan(self, members: list[int]) -> dict[int, tuple]:
        """Per structure the map model is used on: its model grid, and where the observed and
        extension reflections of the batch's tensors (their first n entries; the rest is
        padding) sit on it."""
        model, plan = self.o.dm_model, {}
        for s in members:
            d = self.p1[s]
            if d.ext is None or not _dm_fits(model, self.refls[s]):
                continue
            obs = d.hkl[self.half.select(d.hkl)[0]]
            ext = d.ext[0][self.half.select(d.ext[0])[0]]
            shape = dm_grid(self.refls[s].cell, np.concatenate([obs, ext]), model.spacing)
            check_map_model(model, int(np.prod(shape)), f"structure {s + 1}")
            grid = HalfGrid(shape)
            obs_pos, ext_pos = half_positions(grid, obs), half_positions(grid, ext)
            read = (
                np.concatenate([obs_pos[0], ext_pos[0]]),
                np.concatenate([obs_pos[1], ext_pos[1]]),
            )
            plan[s] = (shape, obs_pos, ext_pos, read, obs, ext)
        return plan

    def modify(self, it: int) -> None:
        """One learned density-modification step of every running start after cycle ``it``
        (see ``dm_model`` in :func:`charge_flip_batch`)."""
        st = self.st
        structs = st["struct"].tolist()
        for s in sorted(set(structs) & set(self.dm_plan)):
            shape, obs_pos, ext_pos, read, obs_hkl, ext_hkl = self.dm_plan[s]
            n_obs, n_ext = len(obs_pos[0]), len(ext_pos[0])
            rows = torch.as_tensor([j for j, t in enumerate(structs) if t == s])
            idx, ext_idx = st["idx"][rows, :n_obs], st["ext_idx"][rows, :n_ext]
            gc = st["gc"][rows]
            g = torch.gather(gc, 1, idx)
            values = st["amp"][rows, :n_obs] * g / g.abs().clamp_min(1e-30)
            new = modify_maps(self.o.dm_model, values, obs_pos, shape, read)
            if self.o.dm_trace is not None:
                self.o.dm_trace.append(
                    {
                        "structure": s,
                        "cell": self.refls[s].cell,
                        "shape": shape,
                        "cycle": it,
                        "hkl": obs_hkl,
                        "ext_hkl": ext_hkl,
                        "before": values.cpu().numpy(),
                        "after": new[:, :n_obs].cpu().numpy(),
                        "ext_after": new[:, n_obs:].cpu().numpy(),
                    }
                )
            gc.scatter_(1, idx, new[:, :n_obs])
            gc.scatter_(1, ext_idx, new[:, n_obs:])
            st["gc"][rows] = gc
            g_obs = torch.gather(gc, 1, st["idx"][rows])
            st["g_obs"][rows], st["g_abs"][rows] = g_obs, g_obs.abs()

    def _put(self, a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(a, device=self.o.device).to(dtype or self.o.real)

    def _observed(
        self, members: list[int], ks: np.ndarray, gens: list[np.random.Generator]
    ) -> None:
        """The observed reflections' tensors, the extension shell's, and the random start."""
        o, st, put, n = self.o, self.st, self._put, len(ks)
        lists = [self.half.select(self.p1[s].hkl) for s in members]
        pads, idx, wgt = _padded(lists)
        n_max = idx.shape[1]
        amp_t, weak, sign = np.zeros(idx.shape), np.zeros(idx.shape, bool), np.zeros(idx.shape)
        for i, (s, (rows, _, _)) in enumerate(zip(members, lists, strict=True)):
            d = self.p1[s]
            cut = np.quantile(d.amp, o.weak_fraction) if o.weak_fraction > 0 else -np.inf
            amp_t[i] = d.amp[rows][pads[i]]
            weak[i], sign[i] = (d.amp[rows] <= cut)[pads[i]], _half_sign(d.hkl[rows])[pads[i]]
        rep = np.repeat(np.arange(len(members)), n)
        st.update(
            idx=put(idx[rep], torch.int64),
            amp=put(amp_t[rep]),
            w=put(wgt[rep]),
            weak=put(weak[rep], torch.bool),
            turn=put(-1j * sign[rep], o.real.to_complex()),
            k=put(np.tile(ks, len(members))),
        )
        ext_prior = None
        if o.extrapolate:
            ext_lists = [self.half.select(self.p1[s].ext[0]) for s in members]  # type: ignore[index]
            e_pads, e_idx, e_w = _padded(ext_lists)
            ext_prior = np.stack(
                [
                    self.p1[s].ext[1][rows][e_pads[i]]  # type: ignore[index]
                    for i, (s, (rows, _, _)) in enumerate(zip(members, ext_lists, strict=True))
                ]
            )
            st["ext_idx"], st["ext_w"] = put(e_idx[rep], torch.int64), put(e_w[rep])
        phase0 = put(
            np.concatenate(
                [
                    np.pad(
                        g.uniform(-np.pi, np.pi, (n, len(ol[0]))), ((0, 0), (0, n_max - len(ol[0])))
                    )
                    for g, ol in zip(gens, lists, strict=True)
                ]
            )
        )
        # the running state: conj G on the half grid, as rfftn gives it
        gc = torch.zeros(len(rep), self.half.size, dtype=o.real.to_complex(), device=o.device)
        if o.prior_weight is not None and ext_prior is not None:  # the shell starts from priors
            st["prior"] = put(np.nan_to_num(ext_prior)[rep])
            st["has_prior"] = put(np.isfinite(ext_prior)[rep], torch.bool)
            seed_phase = put(
                np.concatenate([g.uniform(-np.pi, np.pi, (n, ext_prior.shape[1])) for g in gens])
            )
            gc.scatter_(1, st["ext_idx"], torch.polar(st["prior"], -seed_phase))
        gc.scatter_(1, st["idx"], torch.polar(st["amp"], -phase0))
        n_rows, dev = len(rep), o.device
        g_obs = torch.gather(gc, 1, st["idx"])
        st.update(
            gc=gc,
            g_obs=g_obs,
            g_abs=g_obs.abs(),
            peak=torch.zeros(n_rows, dtype=o.real, device=dev),
            r_prev=torch.full((n_rows,), math.inf, dtype=o.real, device=dev),
            stable=torch.zeros(n_rows, dtype=torch.int64, device=dev),
        )

    def _watch_symmetry(self) -> None:
        """The agreement of the random start: each structure's noise level and threshold."""
        assert self.checker is not None
        o, st, n = self.o, self.st, len(self.st["row"])
        noise = self.checker.agreement(st["gc"], st["struct"])
        noise = noise.view(-1, self.n_starts).mean(1).repeat_interleave(self.n_starts)
        own = [self.p1[s] for s in self.st["struct"].tolist()]
        factor = self._put(np.array([d.noise_factor for d in own]))
        st["thr"] = torch.maximum(factor * noise, self._put(np.array([d.floor for d in own])))
        st["agree"] = torch.zeros(n, dtype=o.real, device=o.device)
        st["due"] = torch.full((n,), self.max_iter, dtype=torch.int64, device=o.device)
        st["seen"] = torch.full((n,), -1, dtype=torch.int64, device=o.device)  # found at

    @property
    def running(self) -> bool:
        return bool(len(self.st["row"]))

    def run(self) -> None:
        """Flip until every start has left the batch (at most ``max_iter`` cycles)."""
        o = self.o
        for it in range(self.max_iter):
            if not self.running:
                break
            self.cycle()
            if self.dm_plan and it % o.dm_every == o.dm_every - 1:
                self.modify(it)
            if it % o.check_every == o.check_every - 1:
                self.check(it)
        self.finish()

    def cycle(self) -> None:
        """One flipping cycle of every running start, and its R factor."""
        st, o = self.st, self.o
        if self.compiled:
            self._compiled_cycle()
            return
        # stored conj G of the observed reflections: strong ones take |E| with G's phase, weak
        # ones keep |G| with the phase shifted by sign·π/2 (conj G · e^{−i sign π/2})
        g_obs, g_abs = st["g_obs"], st["g_abs"]
        mag = torch.where(st["weak"], g_abs, st["amp"])
        var = (st["w"] * mag**2).sum(1)
        g_obs = g_obs * torch.where(st["weak"], st["turn"], st["amp"] / g_abs.clamp_min(1e-30))
        fc = torch.zeros_like(st["gc"])
        fc[:, 0] = st["gc"][:, 0]
        if o.extrapolate:
            g_ext = torch.gather(st["gc"], 1, st["ext_idx"])
            if "prior" in st:  # restrained towards the prior modulus, G's phase
                w = float(o.prior_weight)  # type: ignore[arg-type]
                e_abs = g_ext.abs()
                target = w * st["prior"] + (1 - w) * e_abs
                g_ext = torch.where(
                    st["has_prior"], g_ext * (target / e_abs.clamp_min(1e-30)), g_ext
                )
            fc.scatter_(1, st["ext_idx"], g_ext)
            var = var + (st["ext_w"] * g_ext.abs() ** 2).sum(1)
        fc.scatter_(1, st["idx"], g_obs)
        # ρ/N = irfftn(conj F); σ(ρ) = √(Σ_{h≠0} |F|²) by Parseval
        delta = st["k"] * var.sqrt() / self.n_grid
        flipped = flip_density(fc.view(-1, *self.half.shape), self.half.full, delta)
        st["gc"] = flipped.reshape(-1, self.half.size)
        # R between observed and calculated amplitudes (strong reflections, scaled)
        st["g_obs"] = torch.gather(st["gc"], 1, st["idx"])  # for R and the next cycle
        st["g_abs"] = g_abs = st["g_obs"].abs()
        strong = st["w"] * ~st["weak"]
        scale = (st["amp"] * g_abs * strong).sum(1) / (g_abs**2 * strong).sum(1).clamp_min(1e-30)
        misfit = ((st["amp"] - scale[:, None] * g_abs).abs() * strong).sum(1)
        r = misfit / (st["amp"] * strong).sum(1).clamp_min(1e-30)
        st["peak"] = torch.maximum(st["peak"], r)
        steady = ((st["r_prev"] - r).abs() < o.r_tol) & ((st["peak"] - r) > o.r_drop)
        st["stable"] = torch.where(steady, st["stable"] + 1, torch.zeros_like(st["stable"]))
        st["r_prev"] = r

    #: the state tensors the compiled cycle reads or updates in place
    _VIEWS = ("idx", "amp", "w", "weak", "turn", "k", "g_obs", "g_abs", "peak", "r_prev", "stable")

    def _compiled_cycle(self) -> None:
        """:meth:`cycle` on the CPU without free lunch: the steps around the two FFTs in
        compiled loops (:mod:`xtalforge.phasing._kernels`), on buffers that live as long as the
        batch's rows (the state's ``gc`` is a view of one of them)."""
        from xtalforge.phasing import _kernels

        st, o = self.st, self.o
        if self._views is None:  # the state's numpy views and the cycle's buffers
            self._views = v = {key: st[key].numpy() for key in self._VIEWS}
            n_rows = len(v["idx"])
            gc = np.array(st["gc"].numpy()).reshape(n_rows, *self.half.shape)
            st["gc"] = torch.from_numpy(gc).view(n_rows, self.half.size)
            v["gc"] = gc
            v["fc"] = np.zeros_like(gc)  # zero but where the observed reflections sit
            v["rho"] = np.empty((n_rows, *self.half.full), v["amp"].dtype)
            v["gc_flat"], v["fc_flat"] = gc.reshape(n_rows, -1), v["fc"].reshape(n_rows, -1)
            v["rho_flat"] = v["rho"].reshape(n_rows, -1)
            v["delta"] = np.empty(n_rows, v["amp"].dtype)
        v = self._views
        _kernels.observed_coefficients(
            v["gc_flat"], v["g_obs"], v["g_abs"], v["idx"], v["amp"], v["w"], v["weak"],
            v["turn"], v["fc_flat"], v["k"], self.n_grid, v["delta"],
        )  # fmt: skip
        irfftn_into(v["fc"], v["rho"])
        _kernels.flip_in_place(v["rho_flat"], v["delta"])
        rfftn_into(v["rho"], v["gc"])
        _kernels.observe(
            v["gc_flat"], v["idx"], v["amp"], v["w"], v["weak"], v["g_obs"], v["g_abs"],
            v["peak"], v["r_prev"], v["stable"], o.r_tol, o.r_drop,
        )  # fmt: skip

    def check(self, it: int) -> None:
        """After cycle ``it``: retire the starts whose R has converged and, watching symmetry,
        every start of a structure ``grace`` cycles after one of them showed its symmetry."""
        st, o = self.st, self.o
        at = torch.where(st["stable"] >= o.patience, it - o.patience, -1)
        done = at >= 0
        if self.watch:
            assert self.checker is not None
            struct = st["struct"]
            agree = self.checker.agreement(st["gc"], struct)
            found = (
                (agree >= st["thr"])
                & (st["agree"] >= st["thr"])
                & ((agree - st["agree"]).abs() <= o.agreement_tol)
            )
            st["agree"] = agree
            st["seen"] = torch.where(found & (st["seen"] < 0), it, st["seen"])
            shown = self._shown(struct, st["seen"] >= 0)
            self.found.update(shown.tolist())
            paired = self._paired(it)
            at = torch.where(at < 0, st["seen"], at)
            # the structure runs ``grace`` more cycles (a transition takes a while to settle)
            due = torch.isin(struct, shown) & (st["due"] > it + self.grace)
            st["due"] = torch.where(due, it + self.grace, st["due"])
            if paired:
                due = torch.isin(struct, self._put(np.array(paired), torch.int64))
                st["due"] = torch.where(due, torch.clamp(st["due"], max=it + PAIR_GRACE), st["due"])
            done = done | (st["due"] <= it)
        if bool(done.any()):
            self.retire(done, at, it + 1)

    def _paired(self, it: int) -> list[int]:
        """The structures not yet found two of whose starts hold the same map at cycle ``it``
        (pair correlation ≥ their ``pair_min``); those starts count as found there."""
        st = self.st
        # the first check's maps are nearly random; more than two starts asked for: theirs
        if it < 2 * self.o.check_every or self.o.agreement_starts > 2:
            return []
        streak = self.pair_streak
        self.pair_checks += 1
        # every other check, and the next one after a pair reached the bar (half the cost)
        open_ = {
            s
            for s in st["struct"].tolist()
            if s not in self.found
            and math.isfinite(self.p1[s].pair_min)
            and (self.pair_checks % 2 == 0 or streak.get(s, 0) > 0)
        }
        if not open_:
            return []
        hands = {s: self.hands[s] for s in open_}
        best = self.pairs.best(st["gc"], st["idx"], st["amp"], st["w"], st["struct"], hands)
        for s, (c, _, _) in best.items():
            streak[s] = streak.get(s, 0) + 1 if c >= self.p1[s].pair_min else 0
        paired = [s for s in best if streak[s] >= PAIR_CHECKS]
        for s in paired:
            _, a, b = best[s]
            for row in (a, b):
                if st["seen"][row] < 0:
                    st["seen"][row] = it
        self.found.update(paired)
        return paired

    def _shown(self, struct: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """The structures at least ``agreement_starts`` of whose starts (at most all of this
        wave's) have shown their symmetry."""
        need = min(self.o.agreement_starts, self.n_starts)
        if need <= 1:
            return torch.unique(struct[seen])
        counts = torch.bincount(struct[seen], minlength=int(struct.max()) + 1)
        return torch.nonzero(counts >= need).reshape(-1)

    def finish(self) -> None:
        """Retire every start still running after ``max_iter`` cycles."""
        st, o = self.st, self.o
        if not self.running:
            return
        last = torch.where(st["stable"] >= o.patience, self.max_iter - 1 - o.patience, -1)
        if "seen" in st:
            last = torch.where(last < 0, st["seen"], last)
        self.retire(torch.ones_like(st["stable"], dtype=torch.bool), last, self.max_iter)

    def retire(self, done: torch.Tensor, at: torch.Tensor, cycles: int) -> None:
        """Store the retiring rows' observed-amplitude models (``at``: per row of the batch,
        the cycle it converged at, −1 for never) and drop them from the batch."""
        st = self.st
        rows = st["row"][done].tolist()
        structs = st["struct"][done].tolist()
        conv = at[done].tolist()
        gc = st["gc"][done]
        ph = -torch.angle(torch.gather(gc, 1, st["idx"][done])).cpu().numpy()
        ext = None
        if self.o.extrapolate:
            ext = torch.gather(gc, 1, st["ext_idx"][done]).abs().cpu().numpy()
        r = st["r_prev"][done].cpu().numpy()
        agree = np.full(len(rows), np.nan)
        if self.checker is not None:
            agree = self.checker.agreement(gc, st["struct"][done], every_op=True).cpu().numpy()
        for j, (row, s) in enumerate(zip(rows, structs, strict=True)):
            start = self.first + row % self.n_starts
            self.final[s, start] = _Start(
                ph[j],
                None if ext is None else ext[j],
                float(r[j]),
                conv[j],
                float(agree[j]),
                cycles,
            )
        for key in list(st):
            st[key] = st[key][~done]
        self._views = None


def _result(
    refl: Reflections, d: _P1Data, half: HalfGrid, own: list[_Start], cycles: int
) -> FlipResult:
    """One structure's best start as its solution, origin located and symmetry averaged
    (``cycles``: the cycles it ran, over all its waves)."""
    rows, flat, _ = half.select(d.hkl)
    # the start kept: the best agreement with every operation (P1: the lowest R)
    best = max(
        own, key=lambda c: (-math.inf if math.isnan(c.agreement) else c.agreement, -c.r_factor)
    )
    # observed amplitudes with its phases on the full grid (mates by Friedel)
    unit = np.zeros(half.size, complex)
    unit[flat] = np.exp(1j * best.phases[: len(rows)])
    grid = np.zeros(half.full, complex)
    grid.reshape(-1)[half.flat(d.hkl)] = d.amp * half.values_at(unit, d.hkl)
    phases, origin, agreement = locate_origin(grid, refl)
    extrap = None
    if d.outer_hkl is not None and d.ext is not None and best.extrapolated is not None:
        _, ext_flat, _ = half.select(d.ext[0])
        lookup = np.zeros(half.size)
        lookup[ext_flat] = best.extrapolated[: len(ext_flat)]
        extrap = (d.outer_hkl, half.values_at(lookup, d.outer_hkl))
    return FlipResult(
        phases,
        _asu_phases(grid, refl.hkl, half.full),
        best.r_factor,
        int(best.converged_at),
        origin,
        agreement,
        extrap,
        cycles,
    )


def _waves(o: _Options, atomic: bool) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The δ factors of the starts of each wave and its (cycles, grace): with ``stop="first"`` at
    atomic resolution one start at δ_k first and the rest together only for the structures it
    did not solve; otherwise every start at once, δ spread over ±``delta_spread``."""
    spread = lambda n: o.delta_k * (1 + o.delta_spread * np.linspace(-1, 1, n))  # noqa: E731
    if o.stop == "all" or o.starts == 1 or not atomic:
        ks = spread(o.starts) if o.starts > 1 else np.array([o.delta_k])
        return [(ks, (o.max_iter or COARSE_MAX_ITER, _grace(o, GRACE_COARSE)))]
    rest = o.starts - 1
    limits = (o.max_iter or ATOMIC_MAX_ITER, _grace(o, GRACE))
    return [
        (np.array([o.delta_k]), limits),
        (spread(rest) if rest > 1 else np.array([o.delta_k * (1 - o.delta_spread)]), limits),
    ]


def _flip_group(
    refls: list[Reflections],
    p1: list[_P1Data],
    shape: tuple[int, int, int],
    gens: list[np.random.Generator],
    o: _Options,
) -> list[FlipResult]:
    """Charge flipping of structures sharing one grid ``shape`` (see :func:`charge_flip_batch`),
    wave by wave: a structure takes part in a wave only while no start has solved it (one
    that showed its symmetry, or in P1 one whose R converged)."""
    half = HalfGrid(shape)
    checker: SymmetryCheck | None = SymmetryCheck(
        half,
        [
            (r.spacegroup.hall, r.symmetry.rotations, r.symmetry.translations, d.hkl, d.amp)
            for r, d in zip(refls, p1, strict=True)
        ],
        o.device,
        o.real,
        o.compiled,
    )
    if checker is not None and not checker.active:
        checker = None
    final: dict[tuple[int, int], _Start] = {}
    cycles = np.zeros(len(refls), int)
    for atomic in (True, False):
        todo = [s for s, r in enumerate(refls) if (r.d_min <= ATOMIC_D) == atomic]
        first = 0
        for ks, limits in _waves(o, atomic):  # limits: (max cycles, grace)
            if not todo:
                break
            run = _Flipping(refls, p1, half, gens, o, checker, (todo, ks, first, limits))
            run.run()
            final.update(run.final)
            _count_cycles(run.final, cycles)
            solved = run.found | {
                s
                for (s, _), c in run.final.items()
                if c.converged_at >= 0 and not _checks(checker, s)
            }
            todo, first = [s for s in todo if s not in solved], first + len(ks)
    return [
        _result(r, d, half, [c for (t, _), c in sorted(final.items()) if t == s], int(cycles[s]))
        for s, (r, d) in enumerate(zip(refls, p1, strict=True))
    ]


def _grace(o: _Options, default: int) -> int:
    return o.grace if o.grace is not None else default


def _count_cycles(final: dict[tuple[int, int], _Start], cycles: np.ndarray) -> None:
    """Add one wave's cycles per structure (its starts run side by side: the longest)."""
    longest: dict[int, int] = {}
    for (s, _), c in final.items():
        longest[s] = max(longest.get(s, 0), c.cycles)
    for s, n in longest.items():
        cycles[s] += n


def _checks(checker: SymmetryCheck | None, s: int) -> bool:
    """Whether structure ``s`` has symmetry operations to check (not P1)."""
    return checker is not None and s in checker.checked


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
    f_flat = grid.reshape(-1)
    nz = np.flatnonzero(f_flat)  # A(h) vanishes where F'(h) does
    h = np.stack(np.unravel_index(nz, shape), -1)
    n = np.array(shape)
    h = np.where(h >= (n + 1) // 2, h - n, h)  # the signed index, as np.fft.fftfreq
    total = np.zeros(f_flat.shape)
    for rot, t in zip(rots_i, trans, strict=True):
        if (rot == np.eye(3, dtype=np.int64)).all() and not np.any(t):
            continue
        hr = h @ rot
        f_hr = grid[tuple(hr[:, i] % shape[i] for i in range(3))]
        a = np.zeros(f_flat.shape, complex)
        a[nz] = f_hr * np.conj(f_flat[nz]) * np.exp(2j * np.pi * (h @ t))
        s_g = np.fft.fftn(a.reshape(shape)).real.reshape(-1)  # Σ_h A(h) e^{−2πi h·s}
        total += s_g[origin_index(shape, rot)]
    best = int(np.argmax(total))
    k = np.unravel_index(best, shape)
    x0 = np.array([k[i] / shape[i] for i in range(3)])
    n_other = len(rots_i) - 1
    # agreement: mean over the non-identity operations of the correlation between F'(hR)
    # shifted and F'(h) (1 for a solution with the group's symmetry)
    agreement = float(total[best] / (n_other * (np.abs(f_flat) ** 2).sum())) if n_other else 1.0
    hkl = refl.hkl.astype(np.int64)
    acc = np.zeros(len(hkl), complex)
    for rot, t in zip(rots_i, trans, strict=True):
        hr = hkl @ rot
        f_hr = grid[tuple(hr[:, i] % shape[i] for i in range(3))] * np.exp(
            2j * np.pi * (hr @ x0)
        )  # shifted solution F(hR) = F'(hR) e^{2πi hR·x0}
        acc += f_hr * np.exp(2j * np.pi * (hkl @ t))  # F(h) = F(hR) e^{2πi h·t}
    return np.angle(acc), tuple(float(v) for v in x0), agreement
