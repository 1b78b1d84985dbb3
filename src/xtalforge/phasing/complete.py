"""A phased map turned into a refined structure with a verdict, as SHELXT ends its run.

1. The highest peaks of the map become atoms, typed from the composition by height
   (:func:`~xtalforge.phasing.atoms.type_by_rank`); with no composition every atom is carbon
   (said in the notes).
2. Rounds of: isotropic refinement (:func:`~xtalforge.phasing.refine.refine`); atoms that
   refine to U > :data:`U_SPURIOUS` Å², come closer than 0.9 Å to a better atom, or have no
   bond while the expected count is already reached are dropped; the rest are re-typed by
   likelihood; missing atoms are added from the peaks of the difference map with the model's
   phases that lie at bonding distance of the model. One round more when the last prune left
   the cell short of its expected content.
3. The verdict: ``solved`` when R1 (Fo > 4σ) ≤ :data:`R1_SOLVED` (:data:`R1_SOLVED_ATOMIC`
   for data that reach :data:`R1_ATOMIC_D` Å), at least
   :data:`SENSIBLE_SOLVED` of the atoms sit in bonded fragments of three or more atoms (or are
   heavier than Ne, ions and metals, or O/N with hydrogen-bond contacts: water), and the
   model holds at least half the expected atoms of the cell (an atom on a special position
   counts its copies in the cell).
   Data at atomic resolution end with an anisotropic refinement. The finished model is then
   typed again by its own likelihood (its U no longer moving, its anisotropy in the fit) and
   refined again, kept while wR2 drops (at most :data:`FINAL_RETYPES` times). A CF₃ group
   whose F atoms look smeared is offered a second orientation (:mod:`.disorder`, occupancies
   :data:`SPLIT_MAJORS`), kept when wR2 and R1 drop, and the model typed again. Riding H atoms
   (:mod:`~xtalforge.phasing.hydrogens`) are placed on C, N and O before every refinement,
   held fixed in it, and weighed with each element in the typing (``hydrogens=False``: none).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.reflections import Reflections
from xtalforge.phasing.atoms import (
    MIN_CONTACT,
    cell_counts,
    contacts,
    element_names,
    fragments,
    light_bonds,
    match_atoms,
    multiplicities,
    snap_to_special_positions,
    type_by_likelihood,
    type_by_rank,
)
from xtalforge.phasing.disorder import cf3_rotors, split_rotor
from xtalforge.phasing.hydrogens import RidingHydrogens, hydrogen_factors, place_hydrogens
from xtalforge.phasing.peaks import find_peaks, min_image_distances
from xtalforge.phasing.refine import Refinement, element_costs, refine

__all__ = [
    "R1_ATOMIC_D",
    "R1_SOLVED",
    "R1_SOLVED_ATOMIC",
    "SENSIBLE_SOLVED",
    "U_SPURIOUS",
    "U_SPURIOUS_STRICT",
    "CompletedStructure",
    "complete",
    "match_to_truth",
    "r1_solved_limit",
]

#: R1 (Fo > 4σ) of the isotropic model at or below which a structure counts as solved.
R1_SOLVED = 0.20
#: … and of data to d ≤ :data:`R1_ATOMIC_D` Å, where a right model with riding H refines far
#: lower: on calculated 1.0 Å data of 77 COD structures every model with R1 between 0.15 and
#: 0.20 was wrong (a pseudo-symmetric Co complex at 0.18, a half-built As/B salt at 0.16), and
#: every right one refined below 0.14; at 1.2 Å (78 structures, 3 seeds) the 169 right models
#: refined to ≤ 0.122 and all 7 between 0.15 and 0.20 were partial or wrong. Such a model then
#: counts as not solved, and `solve` phases again.
R1_SOLVED_ATOMIC = 0.15
#: Å: the finest d_min up to which :data:`R1_SOLVED_ATOMIC` applies (coarser: :data:`R1_SOLVED`).
R1_ATOMIC_D = 1.25
#: Fraction of atoms in chemically sensible fragments needed for a ``solved`` verdict.
SENSIBLE_SOLVED = 0.7
#: Å²: an atom refining to a larger U is a spurious peak.
U_SPURIOUS = 0.35
#: Å²: atoms between this and :data:`U_SPURIOUS` are real in disordered groups and solvent
#: (they refine to 0.15–0.3 Å² in an isotropic model without H) but are ripples beside heavy
#: atoms as often; a model that kept any is built again without them and the lower R1 is
#: kept. On calculated 1.0 Å data of 77 COD structures, keeping them always (0.35) turned 9
#: of the 25 cases whose models missed atoms into solved ones but lost Cu/I structures whose
#: ripples took the place of light atoms.
U_SPURIOUS_STRICT = 0.15
#: Å²: the least limit for atoms heavier than Ne (few, budgeted by the composition: real even
#: when their U is large, as for a metal on a disordered site).
U_SPURIOUS_HEAVY = 0.3
#: Start value of U (Å²) of a new atom.
U_START = 0.03
#: Å: data at least this fine get a last anisotropic refinement (by default) …
ANISO_D_MIN = 1.1
#: … when they hold this many reflections per parameter.
ANISO_DATA_PER_PARAM = 5.0
#: Re-typings of the finished model at most (each kept only when its refinement fits better).
FINAL_RETYPES = 3
#: Occupancies of the major orientation tried for a disordered CF₃ group (:mod:`.disorder`;
#: above ½, so that the .res writes the major part as PART 1 and the minor as PART 2).
SPLIT_MAJORS = (0.6, 0.75)
#: Peaks searched beyond the expected count (fraction), to have spares after chemistry.
SPARE_PEAKS = 0.3
#: Å: re-typing by likelihood counts only reflections with d ≤ this (the low-angle data carry
#: the hydrogen atoms the model lacks). On calculated 1.0 Å data of 77 COD structures it
#: raised the atom-level solved fraction from 57 % (all data) to 64 % (2.0 Å: 62 %, 3.0 Å:
#: 64 %, 1.6 Å: 57 %).
TYPING_D_MAX = 2.5


@dataclass
class CompletedStructure:
    """The refined model, its refinement, the verdict with its reasons, the fraction of atoms
    in sensible fragments, the non-H atoms expected in the unit cell, and notes on what was
    done."""

    crystal: Crystal
    refinement: Refinement
    solved: bool
    reasons: list[str]
    sensible_fraction: float
    expected_in_cell: float
    notes: list[str] = field(default_factory=list)
    hydrogens: RidingHydrogens | None = None

    def riding(self) -> tuple[np.ndarray, np.ndarray]:
        """(parent index, AFIX code) of every atom of :attr:`crystal` (−1, 0 for atoms that
        do not ride), as :func:`~xtalforge.io.write_res` takes them."""
        n = self.crystal.n_atoms
        parent, code = np.full(n, -1), np.zeros(n, int)
        h = self.hydrogens
        if h is not None and len(h):
            parent[n - len(h) :], code[n - len(h) :] = h.parent, h.afix
        return parent, code


def _sensible(crystal: Crystal) -> np.ndarray:
    """Atoms in bonded fragments of ≥ 3 atoms, heavier than Ne (ions, metals), or O/N with a
    hydrogen-bond contact (2.5–3.2 Å) to another O/N (water and ions, whose H are not
    placed)."""
    _, sizes = fragments(crystal)
    ok = (sizes >= 3) | (crystal.z > 10)
    polar = np.isin(crystal.z, (7, 8))
    for i, row in enumerate(contacts(crystal)):
        if not ok[i] and polar[i]:
            ok[i] = any(polar[j] and 2.5 <= d <= 3.2 for j, d in row)
    return ok


def _atoms(refl: Reflections, frac: np.ndarray, z: np.ndarray | int = 6) -> Crystal:
    n = len(frac)
    zz = np.broadcast_to(np.asarray(z), (n,)).copy()
    crystal = Crystal(refl.cell, refl.spacegroup, zz, frac, np.full(n, U_START))
    return snap_to_special_positions(crystal)


def _initial(refl: Reflections, f: np.ndarray, counts: dict[int, float], total: float) -> Crystal:
    """The highest peaks, as many as fill the expected cell content, typed by height."""
    n_ops = len(refl.symmetry.all_ops()[0])
    n = max(4, int(np.ceil(total / n_ops * (1 + SPARE_PEAKS))) + 4)
    frac, heights = find_peaks(refl, f, n, min_distance=MIN_CONTACT)
    peaks = _atoms(refl, frac)
    filled = np.cumsum(multiplicities(peaks))
    keep = max(1, int(np.searchsorted(filled, total * (1 + 1e-6), side="right")))
    peaks = _subset(peaks, np.arange(peaks.n_atoms) < keep)
    z = type_by_rank(heights[:keep], counts, multiplicities(peaks)) if counts else 6
    return peaks.copy(z=np.broadcast_to(z, (keep,)).copy(), labels=_labels(np.full(keep, 6)))


def _labels(z: np.ndarray) -> list[str]:
    counts: dict[str, int] = {}
    out = []
    for el in element_names(z):
        counts[el] = counts.get(el, 0) + 1
        out.append(f"{el}{counts[el]}")
    return out


def _prune(crystal: Crystal, total: float, u_max: float = U_SPURIOUS) -> Crystal:
    """Drop atoms with U > ``u_max`` (Å²; at least U_SPURIOUS_HEAVY for Z > 10), the worse
    of two atoms closer than MIN_CONTACT, and unbonded light atoms beyond the expected count."""
    keep = crystal.u_iso <= np.where(crystal.z > 10, max(u_max, U_SPURIOUS_HEAVY), u_max)
    near = contacts(crystal, cutoff=MIN_CONTACT)
    for i, row in enumerate(near):
        for j, _ in row:
            if j != i and keep[i] and keep[j]:
                worse = i if crystal.u_iso[i] > crystal.u_iso[j] else j
                keep[worse] = False
    bonds, _ = fragments(crystal)
    lonely = np.flatnonzero(keep & (bonds == 0) & (crystal.z <= 10))
    mult = multiplicities(crystal)
    surplus = float(mult[keep].sum()) - total
    for i in lonely[np.argsort(-crystal.u_iso[lonely])]:
        if surplus < 0.5 * mult[i]:
            break
        keep[i] = False
        surplus -= mult[i]
    if not keep.any():
        keep[np.argmin(crystal.u_iso)] = True
    return _subset(crystal, keep)


def _subset(crystal: Crystal, keep: np.ndarray) -> Crystal:
    return Crystal(
        crystal.cell,
        crystal.spacegroup,
        crystal.z[keep],
        crystal.frac[keep],
        crystal.u_iso[keep],
        crystal.occ[keep],
    )


def _retype(
    crystal: Crystal,
    counts: dict[int, float],
    refl: Reflections,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    riding: RidingHydrogens | None = None,
) -> Crystal:
    """The refined model re-typed site by site by likelihood, held near the composition (see
    :func:`~xtalforge.phasing.atoms.type_by_likelihood`); no oxygen where an atom has three or
    more bonds to light atoms, and none of C or N within :data:`OXO_BOND` Å of P or S; no
    fluorine with two or more bonds to light atoms or within :data:`SULFONYL_BOND` Å of P or
    S. With ``riding`` H, each element is weighed with the H atoms it
    would carry at the site (a CH₂ against an O)."""
    if not counts or len(counts) == 1:
        return crystal
    elements = sorted(counts)
    d_max = TYPING_D_MAX if refl.d_min < TYPING_D_MAX / 2 else None  # keep data enough to type
    h_f = hydrogen_factors(crystal, refl, riding) if riding is not None else None
    costs = element_costs(crystal, refl, i_obs, sigma, elements, d_max=d_max, hydrogen_f=h_f)
    if 8 in elements:  # chemistry: an oxygen has at most two bonds to C, N or O
        crowded = light_bonds(crystal) >= 3
        costs[crowded, elements.index(8)] = np.inf
        # … and an atom this close to P or S is an O (P–N, S–N ≥ 1.58 Å, P–C, S–C ≥ 1.75)
        oxo = _oxo_sites(crystal)
        for el in (6, 7):
            if el in elements:
                costs[oxo, elements.index(el)] = np.inf
    if 9 in elements:  # fluorine is terminal, and S=O / P=O are shorter than S–F / P–F
        f = elements.index(9)
        costs[light_bonds(crystal) >= 2, f] = np.inf
        costs[_oxo_sites(crystal, SULFONYL_BOND), f] = np.inf
    # the sites of a split group (partial occupancy, :mod:`.disorder`) keep their element
    for j in np.flatnonzero(crystal.occ < 1):
        if int(crystal.z[j]) in elements:
            keep = elements.index(int(crystal.z[j]))
            costs[j] = np.inf  # (the chemistry above counts the other part's atoms as bonds)
            costs[j, keep] = 0.0
    z = type_by_likelihood(costs, elements, counts, multiplicities(crystal))
    return crystal.copy(z=z, labels=None)


#: Å: an atom closer than this to P or S is typed O (phosphates, sulfates, sulfones).
OXO_BOND = 1.56
#: Å: … and not F closer than this (S=O 1.42–1.46, P=O 1.45–1.49; S–F, P–F ≥ 1.52 Å).
SULFONYL_BOND = 1.50


def _oxo_sites(crystal: Crystal, cutoff: float = OXO_BOND) -> np.ndarray:
    """Mask of the atoms within ``cutoff`` Å of a P or S atom."""
    anchors = np.isin(crystal.z, (15, 16))
    mask = np.zeros(crystal.n_atoms, bool)
    if not anchors.any():
        return mask
    for j, near in enumerate(contacts(crystal, cutoff=cutoff)):
        mask[j] = any(anchors[k] for k, _ in near)
    return mask


def _add_missing(
    crystal: Crystal,
    refl: Reflections,
    f_obs: np.ndarray,
    total: float,
    counts: dict,
    riding: RidingHydrogens | None = None,
) -> Crystal:
    """Peaks of the difference map (Fo − k|Fc|)·exp(iφc) at bonding distance (1.1–1.9 Å) of
    the model and ≥ 1.1 Å from every atom, as the lightest expected element, until the expected
    content is filled (k: the least-squares scale of |Fc| to Fo). The difference map shows
    what the model lacks without the model's own atoms (an Fo map's highest peaks are the
    atoms already placed, and its weak missing atoms sit among their ripples)."""
    missing = total - float(multiplicities(crystal).sum())
    n_ops = len(refl.symmetry.all_ops()[0])
    if missing < 0.5:
        return crystal
    from xtalforge.diffraction.structure_factors import structure_factors

    fc = structure_factors(riding.attached(crystal) if riding else crystal, refl)
    k = float((f_obs * np.abs(fc)).sum() / max(float((np.abs(fc) ** 2).sum()), 1e-30))
    n = 2 * int(np.ceil(missing / n_ops)) + 5
    frac, _ = find_peaks(refl, (f_obs - k * np.abs(fc)) * np.exp(1j * np.angle(fc)), n)
    dist = min_image_distances(frac, crystal.frac, crystal.cell, refl).min(axis=1)
    new = _atoms(refl, frac[(dist >= 1.1) & (dist <= 1.9)], min(counts) if counts else 6)
    if not new.n_atoms:
        return crystal
    filled = np.cumsum(multiplicities(new))
    take = int(np.searchsorted(filled, missing + 0.5 * n_ops, side="right"))
    if take == 0:
        return crystal
    return Crystal(
        crystal.cell,
        crystal.spacegroup,
        np.concatenate([crystal.z, new.z[:take]]),
        np.concatenate([crystal.frac, new.frac[:take]]),
        np.concatenate([crystal.u_iso, new.u_iso[:take]]),
    )


def complete(
    refl: Reflections,
    amplitudes: np.ndarray,
    phases: np.ndarray,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    composition: dict[str, float] | None = None,
    n_expected: int | None = None,
    rounds: int = 4,
    anisotropic: bool | None = None,
    hydrogens: bool = True,
) -> CompletedStructure:
    """Build, refine and judge a model from phases (radians) of the reflections ``refl`` with
    measured |F| ``amplitudes`` and intensities Fo² ``i_obs`` (σ ``sigma``).
    ``composition``: the unit-cell content {element: count}; ``n_expected``: non-H atoms per
    asymmetric unit on general positions (default: from the composition). ``anisotropic``: a
    last refinement with anisotropic U (default: when the data reach :data:`ANISO_D_MIN` Å
    with :data:`ANISO_DATA_PER_PARAM` reflections per parameter); kept only if R1 drops.
    ``hydrogens``: riding H atoms on C, N and O (:mod:`~xtalforge.phasing.hydrogens`) in every
    refinement and in the typing; they are in the model returned, after its other atoms."""
    notes: list[str] = []
    counts = cell_counts(composition or {})
    n_ops = len(refl.symmetry.all_ops()[0])
    if not counts:
        notes.append("no composition given: every atom typed as carbon")
    if n_expected is not None:
        total = float(n_expected * n_ops)
    elif counts:
        total = sum(counts.values())
    else:
        from xtalforge.crystal.model import cell_volume

        total = float(max(1, round(cell_volume(*refl.cell) / 18.0)))
        notes.append(f"{total:.0f} non-H atoms in the cell assumed (18 Å³ per atom)")
    f = np.asarray(amplitudes) * np.exp(1j * np.asarray(phases))
    f_obs = np.asarray(amplitudes)
    first = refine(_initial(refl, f, counts, total), refl, i_obs, sigma, cycles=4).crystal

    def riding(model: Crystal) -> RidingHydrogens | None:
        return place_hydrogens(model, refl, i_obs, sigma) if hydrogens else None

    def refined(model: Crystal, cycles: int, h: RidingHydrogens | None = None) -> Refinement:
        """``model`` refined with its riding H (placed now unless given) held fixed."""
        h = riding(model) if h is None else h
        if not h:
            return refine(model, refl, i_obs, sigma, cycles=cycles)
        full = h.attached(model)
        fixed = np.arange(full.n_atoms) >= model.n_atoms
        return refine(full, refl, i_obs, sigma, cycles=cycles, fixed=fixed)

    def heavy(result: Refinement) -> Crystal:
        return _subset(result.crystal, result.crystal.z > 1)

    def build(u_max: float) -> tuple[Refinement, bool, RidingHydrogens | None]:
        """Refined isotropic model with atoms up to U = u_max kept; whether any atom above
        :data:`U_SPURIOUS_STRICT` was kept on the way."""
        high = False

        def prune(model: Crystal) -> Crystal:
            nonlocal high
            out = _prune(model, total, u_max)
            high |= bool((out.u_iso > U_SPURIOUS_STRICT).any())
            return out

        def one_round(model: Crystal) -> Crystal:
            model = _add_missing(model, refl, f_obs, total, counts, riding(model))
            model = heavy(refined(model, 4))
            model = _retype(model, counts, refl, i_obs, sigma, riding(model))
            return prune(heavy(refined(model, 4)))

        model = prune(first)
        for _ in range(rounds):
            model = one_round(model)
        if float(multiplicities(model).sum()) < total - 0.5:  # the last prune left a gap
            model = one_round(model)
        h = riding(model)
        final = refined(model, 8, h)
        labelled = final.crystal.copy(labels=_labels(final.crystal.z))
        return replace(final, crystal=labelled), high, h

    result, kept_high, h = build(U_SPURIOUS)
    if kept_high:  # were the high-U atoms real? Build again without them; the lower R1 wins
        strict, _, h_strict = build(U_SPURIOUS_STRICT)
        if strict.agreement.r1_gt <= result.agreement.r1_gt:
            result, h = strict, h_strict
        else:
            notes.append(f"atoms with U above {U_SPURIOUS_STRICT} Å² kept: they lower R1")
    if anisotropic is None:
        anisotropic = refl.d_min <= ANISO_D_MIN and len(refl) >= ANISO_DATA_PER_PARAM * (
            1 + 9 * int((result.crystal.z > 1).sum())
        )

    def finished(iso: Refinement) -> tuple[Refinement, bool]:
        """The anisotropic refinement of ``iso`` when asked for and better; whether it was."""
        if not anisotropic:
            return iso, False
        h_mask = iso.crystal.z == 1
        aniso = refine(
            iso.crystal,
            refl,
            i_obs,
            sigma,
            cycles=10,
            anisotropic=True,
            fixed=h_mask if h_mask.any() else None,
        )
        if aniso.agreement.r1_gt > iso.agreement.r1_gt:  # no better: keep the isotropic model
            return iso, False
        return aniso, True

    result, was_aniso = finished(result)

    # the typing again, by the likelihood of the finished model (refined further than the
    # model of the last round was): kept when the refinement of the new types fits better
    def retyped(result: Refinement, was_aniso: bool, h: RidingHydrogens | None) -> tuple:
        changed = 0
        for _ in range(FINAL_RETYPES):
            model = heavy(result)
            new = _retype(model, counts, refl, i_obs, sigma, riding(model))
            moved = int((new.z != model.z).sum())
            if not moved:
                break
            h_new = riding(new)
            again, again_aniso = finished(refined(new, 8, h_new))
            if again.agreement.wr2 >= result.agreement.wr2:
                break
            result, was_aniso, h = again, again_aniso, h_new
            changed += moved
        return result, was_aniso, h, changed

    result, was_aniso, h, changed = retyped(result, was_aniso, h)
    # CF3 groups in two orientations (disorder.py): kept when the split model fits better
    tried: set[int] = set()
    split = 0
    while True:
        model = heavy(result)
        rotors = [r for r in cf3_rotors(model) if r.carbon not in tried]
        if not rotors:
            break
        tried.add(rotors[0].carbon)
        trials = []
        for major in SPLIT_MAJORS:
            new, _ = split_rotor(model, rotors[0], major)
            h_new = riding(new)
            trials.append((*finished(refined(new, 8, h_new)), h_new))
        best = min(trials, key=lambda t: t[0].agreement.wr2)
        if (
            best[0].agreement.wr2 < result.agreement.wr2
            and best[0].agreement.r1_gt <= result.agreement.r1_gt
        ):
            result, was_aniso, h = best
            split += 1
    if split:
        notes.append(
            f"{split} CF3 group(s) in two orientations 60° apart, occupancies fixed at the "
            f"better of {' / '.join(f'{a:g}' for a in SPLIT_MAJORS)} (refine them as a free "
            "variable in SHELXL, with PART 1 / PART 2)"
        )
        result, was_aniso, h, more = retyped(result, was_aniso, h)
        changed += more
    if changed:
        notes.append(f"{changed} atom(s) re-typed by the likelihood of the refined model")
    if was_aniso:
        notes.append("anisotropic displacement parameters refined")
    n_h = int((result.crystal.z == 1).sum())
    notes.append(
        f"{n_h} hydrogen atoms riding on C, N and O (geometry; rotating groups by the data)"
        if hydrogens
        else "hydrogen atoms are not placed"
    )
    return _verdict(result, total, notes, h, r1_solved_limit(refl.d_min))


def r1_solved_limit(d_min: float) -> float:
    """The R1 (Fo > 4σ) a model of data to ``d_min`` Å must reach to count as solved:
    :data:`R1_SOLVED_ATOMIC` to :data:`R1_ATOMIC_D` Å, :data:`R1_SOLVED` for coarser data."""
    return R1_SOLVED_ATOMIC if d_min <= R1_ATOMIC_D * (1 + 1e-9) else R1_SOLVED


def _verdict(
    result: Refinement,
    total: float,
    notes: list[str],
    h: RidingHydrogens | None = None,
    r1_max: float = R1_SOLVED,
) -> CompletedStructure:
    crystal = _subset(result.crystal, result.crystal.z > 1)  # the judged atoms: not the H
    in_cell = float(multiplicities(crystal).sum()) if crystal.n_atoms else 0.0
    sensible = float(_sensible(crystal).mean()) if crystal.n_atoms else 0.0
    r1 = result.agreement.r1_gt
    reasons = [
        f"R1 {r1:.3f} ({'≤' if r1 <= r1_max else '>'} {r1_max})",
        f"{sensible:.0%} of atoms in bonded fragments "
        f"({'≥' if sensible >= SENSIBLE_SOLVED else '<'} {SENSIBLE_SOLVED:.0%})",
        f"{in_cell:.0f} of {total:.0f} expected non-H atoms in the cell",
    ]
    solved = r1 <= r1_max and sensible >= SENSIBLE_SOLVED and in_cell >= 0.5 * total
    return CompletedStructure(result.crystal, result, solved, reasons, sensible, total, notes, h)


def match_to_truth(
    model: Crystal,
    truth: Crystal,
    refl: Reflections,
    amplitudes: np.ndarray,
    true_phases: np.ndarray,
) -> tuple[float, float]:
    """(fraction of the truth's non-H atoms matched within 0.3 Å, fraction matched with the
    right element) of a built model, aligned to the truth's origin and hand by the phases of
    the model itself (:func:`~xtalforge.phasing.score.score_phases`), so that a model refined
    from a rough map is aligned as well as its atoms allow."""
    from xtalforge.diffraction.structure_factors import structure_factors
    from xtalforge.phasing.score import score_phases

    phases = np.angle(structure_factors(model, refl))
    s = score_phases(refl, amplitudes, true_phases, phases)
    return match_atoms(model, truth, s.shift, s.inverted)
