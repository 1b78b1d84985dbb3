"""Solving a structure end to end: load amplitudes (measured hkl + cell/symmetry, a structure
CIF, or a dataset entry), phase them (charge flipping here, or smtbx), score against the truth
when it is known, and write the peaks as atoms (CIF) and the map (CCP4/MRC)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from xtalforge.crystal.model import Crystal, cell_volume
from xtalforge.diffraction.maps import density_map, shell_mean
from xtalforge.diffraction.reflections import Reflections, at_or_above
from xtalforge.errors import XtalforgeError
from xtalforge.phasing.charge_flipping import DEFAULT_PRIOR_WEIGHT, charge_flip_batch
from xtalforge.phasing.peaks import atom_recovery, find_peaks
from xtalforge.phasing.score import Score, score_phases

__all__ = [
    "Solution",
    "SolveData",
    "aligned_phases",
    "calculated_sigmas",
    "measured_part",
    "quasi_e",
    "score_solution",
    "solve_batch",
    "write_map",
]

METHODS = ("cf", "smtbx")


@dataclass
class SolveData:
    """Amplitudes |F| of unique reflections, and the truth when known: phases (radians) and
    the ASU non-H atoms' fractional positions."""

    refl: Reflections
    amplitudes: np.ndarray
    source: str
    true_phases: np.ndarray | None = None
    true_frac: np.ndarray | None = None
    composition: dict[str, float] = field(default_factory=dict)
    z: np.ndarray | None = None  # atomic numbers of the ASU atoms, when known (Wilson scale)
    intensities: np.ndarray | None = None  # Fo² and σ(Fo²), for refinement
    sigmas: np.ndarray | None = None
    truth: Crystal | None = None  # the model the truth comes from, when known

    def subset(self, mask: np.ndarray) -> SolveData:
        return SolveData(
            self.refl.subset(mask),
            self.amplitudes[mask],
            self.source,
            None if self.true_phases is None else self.true_phases[mask],
            self.true_frac,
            self.composition,
            self.z,
            None if self.intensities is None else self.intensities[mask],
            None if self.sigmas is None else self.sigmas[mask],
            self.truth,
        )

    def refinement_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(Fo², σ(Fo²)) to refine against: as measured, or from |F| with σ from counting
        statistics (σ² = Fo² + (0.02 Fo²)², on a scale where the mean Fo² is 1000 counts)."""
        if self.intensities is not None and self.sigmas is not None:
            return self.intensities, self.sigmas
        return calculated_sigmas(self.amplitudes**2)

    def with_amplitudes(self, refl: Reflections, amplitudes: np.ndarray) -> SolveData:
        """The same structure with other reflections/amplitudes (the truth's phases dropped)."""
        return SolveData(
            refl,
            np.asarray(amplitudes, float),
            self.source,
            None,
            self.true_frac,
            self.composition,
            self.z,
            truth=self.truth,
        )

    def cut(self, d_min: float) -> SolveData:
        """The reflections with d ≥ ``d_min`` Å."""
        return self.subset(at_or_above(self.refl.d, d_min))


@dataclass(frozen=True)
class Solution:
    """A solver's answer: ASU phases (radians) after origin location and symmetry averaging,
    the raw P1 map's phases of the same reflections, wall time (s), and the solver's own figure
    of merit (symmetry agreement for ``cf``, correlation-peak height for ``smtbx``; no truth)."""

    method: str
    phases: np.ndarray | None
    p1_phases: np.ndarray
    seconds: float
    figure_of_merit: float | None
    info: dict[str, Any] = field(default_factory=dict)


def quasi_e(amplitudes: np.ndarray, refl: Reflections, n_bins: int = 20) -> np.ndarray:
    """Quasi-normalised |E|: |F| / √(ε ⟨|F|²/ε⟩) with the mean over equal-count resolution
    shells (no composition needed)."""
    amp = np.abs(np.asarray(amplitudes, float))
    mean = shell_mean(amp**2 / refl.epsilon, refl, n_bins)
    return amp / np.sqrt(refl.epsilon * np.where(mean > 0, mean, 1.0))


def solve_batch(
    data: list[SolveData],
    method: str = "cf",
    starts: int = 4,
    seed: int = 0,
    d_ext: float | None = None,
    device: str = "cpu",
    prior_below: float | None = None,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
    **options: Any,
) -> list[Solution]:
    """Phase every structure. ``cf``: one batched charge-flipping run on quasi-normalised E
    (``d_ext``: free-lunch extrapolation to that resolution); ``smtbx``: cctbx's solver in a
    subprocess on |F| with its own quasi-normalisation, best of ``starts`` random starts by its
    correlation-peak height.

    ``prior_below`` (Å, cf only): the reflections with d < ``prior_below`` are predictions (a
    model's extension), not data: the structure is flipped on the rest, with free-lunch
    extrapolation over the predicted shell restrained towards the predictions by
    ``prior_weight`` (see ``ext_prior`` in :func:`charge_flip_batch`). E values come from one
    quasi-normalisation of data and predictions together. The predicted reflections get NaN
    phases in the solution (they are not part of the data it phases)."""
    if method not in METHODS:
        raise XtalforgeError(f"unknown solver {method!r}; choose one of {', '.join(METHODS)}")
    if not data:
        return []
    if prior_below is not None:
        if method != "cf" or d_ext is not None:
            raise XtalforgeError("prior_below is a charge-flipping option and sets its own d_ext")
        return _solve_with_priors(data, prior_below, prior_weight, starts, seed, device, **options)
    if method == "cf":
        t0 = time.perf_counter()
        res = charge_flip_batch(
            [d.refl for d in data],
            [quasi_e(d.amplitudes, d.refl) for d in data],
            starts=starts,
            seed=seed,
            d_ext=d_ext,
            device=device,
            **options,
        )
        seconds = (time.perf_counter() - t0) / len(data)
        return [_cf_solution(r, seconds, r.phases, r.p1_phases) for r in res]
    if d_ext is not None:
        raise XtalforgeError("free-lunch extrapolation (d_ext) is a charge-flipping option")
    from xtalforge.phasing.smtbx import smtbx_solve_batch

    out = []
    runs = smtbx_solve_batch(
        [d.refl for d in data],
        [d.amplitudes for d in data],
        starts=starts,
        seed=seed,
        amplitude_type="quasi-E",
        **options,
    )
    for per in runs:
        good = [r for r in per if r.phases is not None and not np.isnan(r.phases).any()]
        best = max(good, key=lambda r: r.cc_peak_height or 0.0) if good else per[0]
        out.append(
            Solution(
                "smtbx",
                best.phases if good else None,
                np.nan_to_num(best.p1_phases),
                sum(r.seconds for r in per),
                best.cc_peak_height,
                {"phase_transition": best.phase_transition, "error": best.error},
            )
        )
    return out


def _cf_solution(
    r: Any, seconds: float, phases: np.ndarray, p1_phases: np.ndarray, **info: Any
) -> Solution:
    """A charge-flipping :class:`FlipResult` as a :class:`Solution` (phases as given)."""
    return Solution(
        "cf",
        phases,
        p1_phases,
        seconds,
        r.symmetry_agreement,
        {
            "r_factor": r.r_factor,
            "converged_at": r.converged_at,
            "cycles": r.cycles,
            "origin": r.origin,
            "extrapolated": r.extrapolated,
            **info,
        },
    )


def _measured(refl: Reflections, prior_below: float) -> np.ndarray:
    """The reflections that are data, not predictions: d ≥ ``prior_below`` (Å)."""
    return at_or_above(refl.d, prior_below)


def _solve_with_priors(
    data: list[SolveData],
    prior_below: float,
    prior_weight: float,
    starts: int,
    seed: int,
    device: str,
    **options: Any,
) -> list[Solution]:
    """See ``prior_below`` in :func:`solve_batch`."""
    obs_refl, obs_e, priors, rows = [], [], [], []
    d_ext = math.inf
    for d in data:
        e = quasi_e(d.amplitudes, d.refl)
        obs = _measured(d.refl, prior_below)
        if obs.all() or not obs.any():
            raise XtalforgeError(
                f"{d.source}: prior_below {prior_below} Å must split the data "
                f"(they reach {d.refl.d.max():.3f}–{d.refl.d_min:.3f} Å)"
            )
        obs_refl.append(d.refl.subset(obs))
        obs_e.append(e[obs])
        priors.append((d.refl.hkl[~obs], e[~obs]))
        rows.append(np.flatnonzero(obs))
        d_ext = min(d_ext, float(d.refl.d_min))
    t0 = time.perf_counter()
    res = charge_flip_batch(
        obs_refl,
        obs_e,
        starts=starts,
        seed=seed,
        device=device,
        d_ext=d_ext * (1 - 1e-6),
        ext_prior=priors,
        prior_weight=prior_weight,
        **options,
    )
    seconds = (time.perf_counter() - t0) / len(data)
    out = []
    for d, r, keep in zip(data, res, rows, strict=True):
        phases, p1 = np.full(len(d.refl), np.nan), np.full(len(d.refl), np.nan)
        phases[keep], p1[keep] = r.phases, r.p1_phases
        out.append(_cf_solution(r, seconds, phases, p1, prior_weight=prior_weight))
    return out


def measured_part(data: SolveData, sol: Solution, prior_below: float) -> tuple[SolveData, Solution]:
    """The data (d ≥ ``prior_below`` Å) and their phases of a solution found with predicted
    reflections as priors (``prior_below`` in :func:`solve_batch`): what maps, peaks and
    scores are computed from."""
    keep = _measured(data.refl, prior_below)
    return data.subset(keep), replace(
        sol, phases=None if sol.phases is None else sol.phases[keep], p1_phases=sol.p1_phases[keep]
    )


def aligned_phases(refl: Reflections, phases: np.ndarray, score: Score) -> np.ndarray:
    """``phases`` moved onto the truth's origin and hand, as found by the scorer."""
    sol = -np.asarray(phases, float) if score.inverted else np.asarray(phases, float)
    return sol + 2 * np.pi * (refl.hkl @ np.array(score.shift))


def score_solution(data: SolveData, sol: Solution, n_peaks: int | None = None) -> dict[str, Any]:
    """CC, phase error (degrees) and solved for the final (symmetrised) and the raw P1 map,
    and atom recovery (fraction of true atoms within 0.5 Å of one of the ``n_peaks`` highest
    peaks; default as many peaks as true atoms; NaN without true atoms). When the solver
    returned no solution (smtbx gives up) the final map scores CC 0, 90° and no atoms, so
    medians are over all structures."""
    if data.true_phases is None:
        raise XtalforgeError(f"{data.source}: the true phases are unknown; nothing to score")
    amp, truth = data.amplitudes, data.true_phases
    raw = score_phases(data.refl, amp, truth, sol.p1_phases, p1=True)
    out: dict[str, Any] = {
        "cc_p1": raw.cc,
        "phase_error_p1": raw.phase_error,
        "solved_p1": raw.solved,
    }
    if sol.phases is None:  # the solver gave up: scored as no information at all
        out.update(cc=0.0, phase_error=90.0, solved=False, atom_recovery=0.0)
        return out
    s = score_phases(data.refl, amp, truth, sol.phases)
    out.update(cc=s.cc, phase_error=s.phase_error, solved=s.solved)
    recovery = float("nan")
    if data.true_frac is not None and len(data.true_frac):
        n = n_peaks or len(data.true_frac)
        f = amp * np.exp(1j * aligned_phases(data.refl, sol.phases, s))
        peaks, _ = find_peaks(data.refl, f, n)
        recovery = atom_recovery(data.true_frac, peaks, data.refl)
    out["atom_recovery"] = recovery
    return out


def calculated_solve_data(crystal: Crystal, d_min: float, source: str) -> SolveData:
    """Calculated |F| of ``crystal`` to ``d_min`` Å, with the truth kept for scoring (phases in
    radians, non-H ASU positions)."""
    from xtalforge.diffraction import reflections, structure_factors

    refl = reflections(crystal, d_min)
    f = structure_factors(crystal, refl)
    heavy = np.asarray(crystal.z) > 1
    return SolveData(
        refl,
        np.abs(f),
        source,
        np.angle(f),
        crystal.frac[heavy],
        crystal.composition(),
        np.asarray(crystal.z),
        truth=crystal,
    )


def calculated_sigmas(i_calc: np.ndarray, counts: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """(Fo², σ) for noise-free intensities: σ² of counting statistics on a scale where the mean
    intensity is ``counts``, plus 2 % of Fo² (the usual instability term)."""
    scale = counts / max(float(np.mean(i_calc)), 1e-30)
    i = np.asarray(i_calc, float) * scale
    return i, np.sqrt(np.maximum(i, 1.0) + (0.02 * i) ** 2)


def cell_content(data: SolveData) -> dict[str, float]:
    """The unit-cell content {element: count} of a data set: as given (structure, .ins UNIT),
    else its ASU atoms times the symmetry operations, else carbon at 18 Å³ per atom (the usual
    guess for organic crystals)."""
    from collections import Counter

    from xtalforge.crystal.elements import symbol
    from xtalforge.crystal.symmetry import symmetry_info

    if data.composition:
        return dict(data.composition)
    if data.z is not None and len(data.z):
        n_ops = symmetry_info(data.refl.spacegroup).n_ops
        return {symbol(int(z)): float(k * n_ops) for z, k in Counter(data.z.tolist()).items()}
    return {"C": float(max(1, round(cell_volume(*data.refl.cell) / 18.0)))}


def write_map(
    path: str | Path, data: SolveData, phases: np.ndarray, sample_rate: float = 3.0
) -> tuple[int, int, int]:
    """Write the solution's density (|F| with the solved phases, whole cell) as CCP4/MRC."""
    import gemmi

    f = data.amplitudes * np.exp(1j * np.asarray(phases, float))
    rho = density_map(data.refl, f, sample_rate=sample_rate).astype(np.float32)
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = gemmi.FloatGrid(rho, gemmi.UnitCell(*data.refl.cell), gemmi.SpaceGroup("P 1"))
    ccp4.update_ccp4_header()
    ccp4.write_ccp4_map(str(path))
    return rho.shape
