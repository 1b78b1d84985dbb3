"""Solving one data set from a file (``xtalforge solve``), and writing it for SHELXT
(``xtalforge export-shelx``)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xtalforge import __version__
from xtalforge.crystal import CellSymmetry
from xtalforge.crystal.formula import (
    DENSE_VOLUME_PER_ATOM,
    VOLUME_PER_ATOM,
    cell_content_from_formula,
    parse_formula,
    plausible_volume_per_atom,
)
from xtalforge.crystal.model import Crystal, cell_volume
from xtalforge.data.solve_data import load_solve_data
from xtalforge.errors import XtalforgeError
from xtalforge.io import read_reflections, write_cif, write_hkl, write_ins, write_res
from xtalforge.outputs import writable_file
from xtalforge.phasing.charge_flipping import DEFAULT_PRIOR_WEIGHT
from xtalforge.phasing.complete import CompletedStructure, complete, match_to_truth
from xtalforge.phasing.solve import (
    Solution,
    SolveData,
    cell_content,
    measured_part,
    score_solution,
    solve_batch,
    write_map,
)
from xtalforge.phasing.space_group import Candidate, rank_space_groups
from xtalforge.workflows.routes import Route, ai_route, route_for_models

__all__ = [
    "SolveOutcome",
    "check_laue",
    "checked_content",
    "export_shelx",
    "output_paths",
    "phase_and_build",
    "solve_file",
    "space_group_candidates",
    "tied",
    "write_structure",
]

#: σ(I) written for calculated intensities by ``export-shelx``: this fraction of I (at least
#: :data:`MIN_SIGMA`), so that SHELX weights them like good measured data.
SIGMA_FRACTION, MIN_SIGMA = 0.02, 1e-3


@dataclass
class SolveOutcome:
    """A solved data set: the data phased (the measured part with priors), the solution, the
    completed and refined structure (None when the solver found no phases), where the .res,
    CIF and map went, and the scores when the truth is known (else None)."""

    data: SolveData
    solution: Solution
    structure: CompletedStructure | None
    paths: dict[str, Path]
    score: dict[str, Any] | None
    candidates: list[Candidate] = field(default_factory=list)
    route: Route | None = None  # the models used (solve --model / --ai)

    @property
    def solved(self) -> bool:
        """The verdict: the refined structure passes :func:`~xtalforge.phasing.complete.complete`'s
        tests."""
        return self.structure is not None and self.structure.solved

    def summary(self) -> list[tuple[str, str]]:
        """(quantity, value) rows: reflections, time, figure of merit, the refinement (R1, wR2,
        GooF, atoms), the verdict with its reasons and, with the truth, map CC, phase error and
        the atoms matched."""
        sol, sc, st = self.solution, self.score, self.structure
        fom = sol.figure_of_merit
        rows = [
            ("reflections", str(len(self.data.refl))),
            ("space group", self.data.refl.spacegroup.xhm()),
            ("seconds", f"{sol.seconds:.2f}"),
            ("figure of merit (no truth)", "–" if fom is None else f"{fom:.3f}"),
        ]
        if self.route is not None:
            used = f" ({', '.join(self.route.models)})" if self.route.models else ""
            rows.insert(0, ("route", f"{self.route.name}{used}: {self.route.reason}"))
        if st is not None:
            a = st.refinement.agreement
            rows += [
                ("atoms (non-H)", _formula(st.crystal)),
                ("riding H", str(int((st.crystal.z == 1).sum()))),
                ("R1 (Fo > 4σ)", f"{a.r1_gt:.4f} ({a.n_gt} reflections)"),
                ("R1 (all)", f"{a.r1_all:.4f} ({a.n_all})"),
                ("wR2", f"{a.wr2:.4f}"),
                ("GooF", f"{a.goof:.3f}"),
            ]
        if sc is not None:
            rows += [
                ("CC (final map)", f"{sc['cc']:.3f}"),
                ("phase error (°)", f"{sc['phase_error']:.1f}"),
                ("CC (raw P1 map)", f"{sc['cc_p1']:.3f}"),
                ("atom recovery (0.5 Å)", f"{sc['atom_recovery']:.2f}"),
                ("solved (CC ≥ 0.8)", "yes" if sc["solved"] else "no"),
            ]
            if "atoms_matched" in sc:
                rows.append(("atoms matched (0.3 Å, element)", f"{sc['atoms_matched']:.2f}"))
        if st is not None and st.notes:
            rows.append(("notes", "; ".join(st.notes)))
        verdict = "solved" if self.solved else "not solved"
        reasons = "; ".join(st.reasons) if st is not None else "the solver found no phases"
        rows.append(("verdict", f"{verdict}: {reasons}"))
        return rows


def _formula(crystal: Crystal) -> str:
    """The non-H atoms of the asymmetric unit by element, each site weighed by its occupancy
    (the two parts of a split group count once), and how many sites are split."""
    counts: dict[str, float] = {}
    for el, occ in zip(crystal.elements, crystal.occ):
        if el != "H":
            counts[el] = counts.get(el, 0.0) + float(occ)
    text = " ".join(f"{el}{round(n, 2):g}" for el, n in sorted(counts.items()))
    text = f"{round(sum(counts.values()), 2):g}: {text}"
    split = int(((crystal.z > 1) & (crystal.occ < 1)).sum())
    return f"{text} ({split} sites of partial occupancy)" if split else text


def output_paths(out: Path) -> dict[str, Path]:
    """Where ``solve --out NAME.res`` (or NAME.cif) writes: NAME.res, NAME.cif, NAME.ccp4."""
    stem = out.with_suffix("") if out.suffix.lower() in (".res", ".cif", ".ins") else out
    return {kind: stem.with_suffix(f".{kind}") for kind in ("res", "cif", "ccp4")}


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
    formula: str | None = None,
    models: list[str] | list[Path] | list[str | Path] | None = None,
    ai: bool = False,
) -> SolveOutcome:
    """Phase the data set at ``data`` (see :func:`~xtalforge.data.solve_data.load_solve_data`)
    with ``method`` (with ``cell`` and no ``spacegroup``, the group is found from the data:
    :func:`space_group_candidates`; ``formula``: the chemical formula, Z found from the
    volume), build and refine the structure (``peaks``: non-H atoms expected per
    asymmetric unit, default from the composition), and write it as a SHELX .res and a CIF with
    the map beside them (:func:`output_paths`). ``prior_below``/``prior_weight``: reflections
    finer than ``prior_below`` Å are predictions, a restrained shell (see
    :func:`~xtalforge.phasing.solve.solve_batch`). ``models`` (checkpoints or shipped names: a
    density-modification model, an amplitude model) join charge flipping; ``ai``: the best
    shipped route for the data's resolution (:func:`~xtalforge.workflows.routes.ai_route`);
    the outcome says which route ran."""
    if prior_weight is not None and prior_below is None:
        raise XtalforgeError(
            "--prior-weight needs --prior-below (which reflections are predictions)"
        )
    if (models or ai) and (method != "cf" or prior_below is not None or d_ext is not None):
        raise XtalforgeError(
            "--model/--ai run charge flipping with the models' own extension: not with "
            "--method smtbx, --prior-below or --d-ext"
        )
    paths = output_paths(out)
    for path in paths.values():  # refused before any work
        writable_file(path)
    candidates: list[Candidate] = []
    groups = [spacegroup]
    if cell is not None and spacegroup is None:
        candidates = space_group_candidates(data, cell)
        groups = [c.spacegroup.xhm() for c in tied(candidates)]
    opts: dict[str, Any] = {"starts": starts, "seed": seed, "d_ext": d_ext}
    if prior_below is not None:
        weight = DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight
        opts.update(prior_below=prior_below, prior_weight=weight)
    tries = []
    route: Route | None = None
    for group in groups:
        sd = load_solve_data(data, structure, cell, group, d_min, entry)
        if not candidates and sd.intensities is not None:
            check_laue(data, structure, sd.refl.spacegroup)
        if formula is not None:
            n_ops = len(sd.refl.symmetry.all_ops()[0])
            volume = cell_volume(*sd.refl.cell)
            sd.composition, _ = cell_content_from_formula(
                parse_formula(formula), volume, n_ops, len(sd.refl.symmetry.centrings)
            )
        if route is None and (models or ai):
            d = float(sd.refl.d_min)
            route = ai_route(d) if ai and not models else route_for_models(list(models or []), d)
        solve_sd, solve_opts = route.prepare(sd, opts) if route is not None else (sd, opts)
        tries.append(phase_and_build(solve_sd, method, peaks, solve_opts))
    # the SHELXT way: of groups the data cannot tell apart, the one whose structure refines best
    sd, sol, built = best_try(tries)
    if built is not None and sol.phases is not None:
        write_structure(paths, sd, built, Path(data).name)
        write_map(paths["ccp4"], sd, sol.phases)
    score = _score(sd, sol, built) if sd.true_phases is not None else None
    return SolveOutcome(sd, sol, built, paths, score, candidates, route)


#: Space groups that tie on the evidence of the data that are each solved (at most).
MAX_TIED_GROUPS = 3


def tied(candidates: list[Candidate]) -> list[Candidate]:
    """The best candidate and those the data cannot tell from it (same Laue order and the same
    absences explained), at most :data:`MAX_TIED_GROUPS`."""
    top = candidates[0].score[:3]
    return [c for c in candidates if c.score[:3] == top][:MAX_TIED_GROUPS]


#: R1 by which a lower-symmetry solution must beat a higher one to be kept (more parameters
#: always lower R1 a little).
R1_SYMMETRY_MARGIN = 0.03


def best_try(
    tries: list[tuple[SolveData, Solution, CompletedStructure | None]],
) -> tuple[SolveData, Solution, CompletedStructure | None]:
    """Of one data set solved in several groups: among the solved, the highest symmetry whose
    R1 is within :data:`R1_SYMMETRY_MARGIN` of the best (as ADDSYM would), else the lowest R1."""

    solved = [t for t in tries if t[2] is not None and t[2].solved]
    pool = solved or tries
    best = min(_r1(t) for t in pool)
    near = [t for t in pool if _r1(t) <= best + R1_SYMMETRY_MARGIN]
    return max(near, key=lambda t: (len(t[0].refl.symmetry.all_ops()[0]), -_r1(t)))


#: Phasing attempts, each with new random starts, while the built structure is not solved
#: (as SHELXT tries again): a start can pass the symmetry test and still be wrong (NaCl: of
#: eight starts, the lowest-R one correlates −0.02 with the truth, five others 0.91–1.00).
ATTEMPTS = 3


def phase_and_build(
    sd: SolveData, method: str, peaks: int | None, opts: dict[str, Any]
) -> tuple[SolveData, Solution, CompletedStructure | None]:
    """Phase one data set and build its structure, again with other random starts while it is
    not solved (at most :data:`ATTEMPTS`); the solved one, else the lowest R1 (the structure is
    None when the solver found no phases)."""
    tries = []
    for attempt in range(ATTEMPTS):
        seed = int(opts.get("seed", 0)) + 7919 * attempt
        tries.append(_phase_and_build_once(sd, method, peaks, {**opts, "seed": seed}))
        if tries[-1][2] is None or tries[-1][2].solved:
            break

    def rank(t: tuple) -> tuple[bool, float]:
        return (t[2] is None or not t[2].solved, _r1(t))

    return min(tries, key=rank)


def _r1(t: tuple) -> float:
    return t[2].refinement.agreement.r1_gt if t[2] is not None else math.inf


def _phase_and_build_once(
    sd: SolveData, method: str, peaks: int | None, opts: dict[str, Any]
) -> tuple[SolveData, Solution, CompletedStructure | None]:
    """Phase one data set and build its structure (None when the solver found no phases)."""
    prior_below = opts.get("prior_below")
    sol = solve_batch([sd], method, **opts)[0]
    if prior_below is not None:
        sd, sol = measured_part(sd, sol, prior_below)
    if sol.phases is None:
        return sd, sol, None
    i_obs, sigma = sd.refinement_data()
    built = complete(sd.refl, sd.amplitudes, sol.phases, i_obs, sigma, checked_content(sd), peaks)
    if not sd.composition and sd.z is None:
        built.notes.insert(
            0, "no composition given (--formula or SFAC/UNIT): every atom typed as carbon"
        )
    return sd, sol, built


def check_laue(data: Path, structure: Path | None, spacegroup: Any) -> float:
    """Warn when the measured intensities contradict the Laue symmetry of the group they are
    solved in (CC of equivalents < LAUE_CC_MIN); returns that CC (NaN: no pairs to compare)."""
    from xtalforge.io.merge import structure_for
    from xtalforge.phasing.space_group import LAUE_CC_MIN, laue_agreement

    hklf = structure_for(Path(data), structure)[4] if structure is not None else None
    refl = read_reflections(data, hklf=hklf or 4)
    if refl.sigmas is None:
        return float("nan")
    cc, pairs = laue_agreement(refl.hkl, refl.values, refl.sigmas, spacegroup)
    if cc == cc and cc < LAUE_CC_MIN:
        warnings.warn(
            f"{data}: the intensities contradict the Laue symmetry of {spacegroup.xhm()} "
            f"(equivalent reflections correlate {cc:.2f} over {pairs} pairs, expected ≥ "
            f"{LAUE_CC_MIN}): check the space group, or give --cell alone to find it",
            stacklevel=2,
        )
    return cc


def checked_content(data: SolveData) -> dict[str, float]:
    """The unit-cell content to type atoms with: as given when it fits the cell (9–36 Å³ per
    non-H atom, or down to 4.5 Å³ for a dense inorganic cell: ``plausible_volume_per_atom``);
    else the model's own atoms when a model came with the data (a placeholder
    UNIT line, said in a warning); else a clear error."""
    content = cell_content(data)
    heavy = sum(n for el, n in content.items() if el not in ("H", "D"))
    per_atom = cell_volume(*data.refl.cell) / heavy if heavy else float("inf")
    if plausible_volume_per_atom(per_atom):
        return content
    what = f"the cell content {_content_text(content)} gives {per_atom:.1f} Å³ per non-H atom"
    if data.truth is not None:
        warnings.warn(f"{data.source}: {what}; the model's atoms are used instead", stacklevel=3)
        return data.truth.composition()
    raise XtalforgeError(
        f"{data.source}: {what}, not {DENSE_VOLUME_PER_ATOM:g}–{VOLUME_PER_ATOM * 2:g}: "
        "check SFAC/UNIT or give --formula"
    )


def _content_text(content: dict[str, float]) -> str:
    return " ".join(f"{el}{n:g}" for el, n in content.items())


def space_group_candidates(data: Path, cell: tuple[float, ...]) -> list[Candidate]:
    """Space groups for the reflections of ``data`` in ``cell``, best first (see
    :func:`~xtalforge.phasing.space_group.rank_space_groups`)."""
    refl = read_reflections(data)
    if refl.kind != "intensity" or refl.sigmas is None:
        raise XtalforgeError(f"{data}: finding the space group needs intensities with σ(I)")
    ranked, _ = rank_space_groups(refl.hkl, refl.values, refl.sigmas, tuple(cell))
    if not ranked or not ranked[0].consistent:
        raise XtalforgeError(f"{data}: no space group is consistent with the data in this cell")
    higher = [c for c in ranked if c.consistent and len(c.spacegroup.operations().sym_ops) > 2]
    if higher and all(c.laue_pairs == 0 for c in higher):
        warnings.warn(
            f"{data}: no symmetry-equivalent reflections were measured (the file holds one "
            f"asymmetric unit, or was merged), so the Laue class above -1 cannot be checked: "
            f"{ranked[0].symbol} rests on absences and statistics alone",
            stacklevel=2,
        )
    return ranked


def _score(data: SolveData, sol: Solution, built: CompletedStructure | None) -> dict[str, Any]:
    score = score_solution(data, sol)
    if built is None or data.truth is None or sol.phases is None or data.true_phases is None:
        return score
    close, right = match_to_truth(
        built.crystal, data.truth, data.refl, data.amplitudes, data.true_phases
    )
    score.update(atoms_close=close, atoms_matched=right)
    return score


def write_structure(
    paths: dict[str, Path], data: SolveData, built: CompletedStructure, hkl_name: str
) -> None:
    """The refined model as a SHELXL .res (with R1 and the verdict as REM lines) and a CIF."""
    a = built.refinement.agreement
    remarks = [
        f"xtalforge {__version__} solution of {hkl_name}",
        f"R1 = {a.r1_gt:.4f} for {a.n_gt} Fo > 4sig(Fo) and {a.r1_all:.4f} for all {a.n_all}",
        f"wR2 = {a.wr2:.4f}, GooF = {a.goof:.3f}; " + "; ".join(built.notes),
        ("solved: " if built.solved else "not solved: ") + "; ".join(built.reasons),
    ]
    crystal = built.crystal
    write_res(
        paths["res"],
        crystal,
        title=Path(data.source).stem,
        remarks=remarks,
        composition=cell_content(data),
        u_aniso=built.refinement.u_aniso,
        riding=built.riding(),
    )
    write_cif(crystal, paths["cif"], name=Path(data.source).stem)


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
