"""Solving one data set from a file (``xtalforge solve``), and writing it for SHELXT
(``xtalforge export-shelx``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xtalforge.crystal import CellSymmetry
from xtalforge.data.solve_data import load_solve_data
from xtalforge.errors import XtalforgeError
from xtalforge.io import write_hkl, write_ins
from xtalforge.phasing.charge_flipping import DEFAULT_PRIOR_WEIGHT
from xtalforge.phasing.solve import (
    Solution,
    SolveData,
    cell_content,
    default_peak_count,
    measured_part,
    score_solution,
    solve_batch,
    write_map,
    write_peaks,
)

__all__ = ["SolveOutcome", "export_shelx", "solve_file"]

#: σ(I) written for calculated intensities by ``export-shelx``: this fraction of I (at least
#: :data:`MIN_SIGMA`), so that SHELX weights them like good measured data.
SIGMA_FRACTION, MIN_SIGMA = 0.02, 1e-3


@dataclass
class SolveOutcome:
    """A solved data set: the data phased (the measured part with priors), the solution, the
    number of peaks written, where the peaks and the map went, and the score when the truth is
    known (else None)."""

    data: SolveData
    solution: Solution
    n_peaks: int
    peaks_path: Path
    map_path: Path
    score: dict[str, Any] | None

    def summary(self) -> list[tuple[str, str]]:
        """(quantity, value) rows: reflections, time, figure of merit and, with the truth,
        map CC, phase error, raw P1 CC, atom recovery and the verdict."""
        sol, sc = self.solution, self.score
        fom = sol.figure_of_merit
        rows = [
            ("reflections", str(len(self.data.refl))),
            ("seconds", f"{sol.seconds:.2f}"),
            ("figure of merit (no truth)", "–" if fom is None else f"{fom:.3f}"),
        ]
        if sc is not None:
            rows += [
                ("CC (final map)", f"{sc['cc']:.3f}"),
                ("phase error (°)", f"{sc['phase_error']:.1f}"),
                ("CC (raw P1 map)", f"{sc['cc_p1']:.3f}"),
                ("atom recovery (0.5 Å)", f"{sc['atom_recovery']:.2f}"),
                ("solved (CC ≥ 0.8)", "yes" if sc["solved"] else "no"),
            ]
        return rows


def solve_file(
    data: Path,
    out: Path,
    method: str = "cf",
    structure: Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
    d_min: float | None = None,
    entry: int | None = None,
    starts: int = 4,
    peaks: int | None = None,
    d_ext: float | None = None,
    prior_below: float | None = None,
    prior_weight: float | None = None,
    seed: int = 0,
) -> SolveOutcome:
    """Phase the data set at ``data`` (see :func:`~xtalforge.data.solve_data.load_solve_data`)
    with ``method``; write the ``peaks`` highest peaks as atoms to ``out`` (CIF) and the map
    beside it (``.ccp4``). ``prior_below``/``prior_weight``: reflections finer than
    ``prior_below`` Å are predictions, a restrained shell (see
    :func:`~xtalforge.phasing.solve.solve_batch`)."""
    if prior_weight is not None and prior_below is None:
        raise XtalforgeError(
            "--prior-weight needs --prior-below (which reflections are predictions)"
        )
    sd = load_solve_data(data, structure, cell, spacegroup, d_min, entry)
    opts: dict[str, Any] = {}
    if prior_below is not None:
        opts = {
            "prior_below": prior_below,
            "prior_weight": DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight,
        }
    sol = solve_batch([sd], method, starts=starts, seed=seed, d_ext=d_ext, **opts)[0]
    if prior_below is not None:
        sd, sol = measured_part(sd, sol, prior_below)
    if sol.phases is None:
        raise XtalforgeError(
            f"{method} found no solution ({sol.info.get('error') or 'no phase transition'})"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    n = write_peaks(out, sd, sol.phases, peaks or default_peak_count(sd))
    map_path = out.with_suffix(".ccp4")
    write_map(map_path, sd, sol.phases)
    score = score_solution(sd, sol) if sd.true_phases is not None else None
    return SolveOutcome(sd, sol, n, out, map_path, score)


def export_shelx(
    data: Path,
    out: Path,
    structure: Path | None = None,
    d_min: float | None = None,
    entry: int | None = None,
) -> SolveData:
    """Write ``out``.ins (cell, symmetry, cell content) and ``out``.hkl (HKLF 4) of a data set,
    for users who run SHELXT on it. Returns the data written."""
    sd = load_solve_data(data, structure, None, None, d_min, entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_ins(
        out.with_suffix(".ins"),
        CellSymmetry(sd.refl.cell, sd.refl.spacegroup),
        title=Path(sd.source).name,
        composition=cell_content(sd),
    )
    intensity = sd.amplitudes**2
    write_hkl(
        out.with_suffix(".hkl"),
        sd.refl.hkl,
        intensity,
        np.maximum(SIGMA_FRACTION * intensity, MIN_SIGMA),
        hklf=4,
    )
    return sd
