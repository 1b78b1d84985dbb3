"""From density peaks to atoms with elements, and the chemistry that checks them.

Elements come from the composition (the expected non-H atoms of the cell). First the peaks are
typed by height, heaviest element first, each element taking atoms until its count in the cell
is used up (:func:`type_by_rank`). After a refinement every site is re-typed by likelihood —
the χ² of the model with the site given each element at its best U
(:func:`~xtalforge.phasing.refine.element_costs`) — held near the composition's counts by the
cheapest moves (:func:`type_by_likelihood`). :func:`element_groups` groups elements less than
:data:`GROUP_GAP` apart in Z (which only counts tell apart). Chemistry: bonds are contacts
shorter than the sum of covalent radii + :data:`BOND_TOLERANCE` Å; atoms closer than
:data:`MIN_CONTACT` Å cannot both be real.
"""

from __future__ import annotations

import numpy as np

from xtalforge.crystal.elements import atomic_number, covalent_radius, symbol
from xtalforge.crystal.model import Crystal

__all__ = [
    "BOND_TOLERANCE",
    "MAJOR_OCCUPANCY",
    "MIN_CONTACT",
    "bonds",
    "cell_counts",
    "contacts",
    "element_groups",
    "element_names",
    "fragments",
    "light_bonds",
    "match_atoms",
    "multiplicities",
    "snap_to_special_positions",
    "type_by_likelihood",
    "type_by_rank",
]

#: Å added to the sum of covalent radii for a contact to count as a bond.
BOND_TOLERANCE = 0.45
#: Å: no two atoms of a structure are closer than this.
MIN_CONTACT = 0.9
#: Occupancy from which an atom of the truth counts in :func:`match_atoms`.
MAJOR_OCCUPANCY = 0.5
#: Elements closer than this in atomic number form one group (see :func:`element_groups`).
GROUP_GAP = 4


def cell_counts(composition: dict[str, float]) -> dict[int, float]:
    """Expected non-H atoms in the unit cell {Z: count} from the unit-cell content."""
    out: dict[int, float] = {}
    for el, n in composition.items():
        z = atomic_number(el)
        if z > 1 and n > 0:
            out[z] = out.get(z, 0.0) + float(n)
    return out


def type_by_rank(
    scores: np.ndarray, counts: dict[int, float], multiplicity: np.ndarray | None = None
) -> np.ndarray:
    """Atomic numbers for atoms ranked by ``scores`` (highest first gets the heaviest): each
    element takes atoms until its expected count in the cell is used up (an atom counts its
    ``multiplicity``, the copies it has in the cell: fewer on a special position); the
    lightest element takes the rest."""
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    mult = np.ones(len(order)) if multiplicity is None else np.asarray(multiplicity, float)
    elements = sorted(counts, reverse=True) or [6]
    z = np.full(len(order), elements[-1], np.int16)
    budget = {el: counts.get(el, 0.0) for el in elements}
    k = 0
    for i in order:
        while k < len(elements) - 1 and budget[elements[k]] < 0.5 * mult[i]:
            k += 1
        z[i] = elements[k]
        budget[elements[k]] -= mult[i]
    return z


def multiplicities(crystal: Crystal) -> np.ndarray:
    """Atoms each asymmetric-unit site puts in the unit cell: its copies (|G| / site-symmetry
    order) × its occupancy (the two parts of a split site count as one atom)."""
    return len(crystal.symmetry.all_ops()[0]) / crystal.site_symmetry_order() * crystal.occ


def snap_to_special_positions(crystal: Crystal, tolerance: float = 0.3) -> Crystal:
    """Atoms within ``tolerance`` Å of a symmetry image of themselves moved onto the special
    position (the mean of those images), as peaks of a map near a symmetry element are."""
    rots, trans = crystal.symmetry.all_ops()
    orth = crystal.orthogonalization_matrix
    frac = crystal.frac.copy()
    for _ in range(2):
        for j, x in enumerate(frac):
            diff = rots @ x + trans - x
            diff -= np.rint(diff)
            close = np.linalg.norm(diff @ orth.T, axis=1) < tolerance
            frac[j] = x + diff[close].mean(axis=0)
    return crystal.copy(frac=frac)


def element_groups(counts: dict[int, float], gap: int = GROUP_GAP) -> list[list[int]]:
    """The composition's elements in groups of neighbours (atomic numbers less than ``gap``
    apart, as C, N, O): scattering tells groups apart, within a group it barely does."""
    groups: list[list[int]] = []
    for z in sorted(counts):
        if groups and z - groups[-1][-1] < gap:
            groups[-1].append(z)
        else:
            groups.append([z])
    return groups


def type_by_likelihood(
    costs: np.ndarray, elements: list[int], counts: dict[int, float], multiplicity: np.ndarray
) -> np.ndarray:
    """Atomic numbers from per-site costs (N, E) of each element (χ², lower is likelier: see
    :func:`~xtalforge.phasing.refine.element_costs`), held near the composition: every atom
    takes its likeliest element, then, while one element has at least half an atom more than
    its count in the cell and another as much less, the cheapest move between them is made.
    When the model holds fewer atoms than the composition, the counts of the light elements
    (Z ≤ 10) are scaled down to match (missing atoms are light: heavy ones are found first)."""
    mult = np.asarray(multiplicity, float)
    pick = np.asarray(costs).argmin(axis=1)
    budget = np.array([counts.get(el, 0.0) for el in elements])
    light = np.array(elements) <= 10
    deficit = budget.sum() - mult.sum()
    if deficit > 0 and budget[light].sum() > 0:  # atoms missing: most likely light ones
        budget[light] *= max(0.0, 1 - deficit / budget[light].sum())
    for _ in range(len(pick) * len(elements)):
        have = np.array([mult[pick == m].sum() for m in range(len(elements))])
        over = np.flatnonzero(have - budget >= 0.5 * mult.min())
        under = np.flatnonzero(budget - have >= 0.5 * mult.min())
        if not len(over) or not len(under):
            break
        best, move = np.inf, None
        for j in np.flatnonzero(np.isin(pick, over)):
            for m in under:
                penalty = costs[j, m] - costs[j, pick[j]]
                if penalty < best:
                    best, move = penalty, (j, m)
        if move is None:
            break
        pick[move[0]] = move[1]
    return np.array(elements, np.int16)[pick]


def contacts(crystal: Crystal, cutoff: float = 3.2) -> list[list[tuple[int, float]]]:
    """For each asymmetric-unit atom, (other atom, distance Å) of every contact shorter than
    ``cutoff`` Å to any symmetry and lattice image (an atom's own images included, itself
    excluded)."""
    rots, trans = crystal.symmetry.all_ops()
    images = np.einsum("sij,nj->nsi", rots, crystal.frac) + trans[None]  # (N, S, 3)
    orth = crystal.orthogonalization_matrix
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    out: list[list[tuple[int, float]]] = []
    for x in crystal.frac:
        diff = images - x
        diff -= np.round(diff)
        d = np.linalg.norm((diff[:, :, None, :] + shifts) @ orth.T, axis=-1)  # (N, S, 27)
        mask = (d < cutoff) & (d > 1e-3)
        pairs = {(int(j), round(float(v), 4)) for j, v in zip(np.nonzero(mask)[0], d[mask])}
        out.append(sorted(pairs))
    return out


def _bonded(zi: int, zj: int, dist: float) -> bool:
    return dist <= covalent_radius(zi) + covalent_radius(zj) + BOND_TOLERANCE


def bonds(crystal: Crystal) -> list[list[tuple[int, float]]]:
    """For each asymmetric-unit atom, (other atom, distance Å) of its covalent bonds (covalent
    radii + :data:`BOND_TOLERANCE`, at least :data:`MIN_CONTACT`) to any symmetry and lattice
    image, as :func:`contacts` lists them."""
    z = crystal.z
    return [
        [(j, d) for j, d in row if d >= MIN_CONTACT and _bonded(int(z[i]), int(z[j]), d)]
        for i, row in enumerate(contacts(crystal))
    ]


def fragments(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """(bonds per atom, size of the bonded fragment each atom belongs to) counting bonds to
    symmetry images (so a molecule on an inversion centre is one fragment)."""
    n = crystal.n_atoms
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    count = np.zeros(n, int)
    for i, row in enumerate(bonds(crystal)):
        for j, _ in row:
            count[i] += 1
            parent[root(i)] = root(j)
    roots = np.array([root(i) for i in range(n)])
    sizes = np.array([(roots == r).sum() for r in roots]) if n else np.zeros(0, int)
    return count, sizes


def light_bonds(crystal: Crystal) -> np.ndarray:
    """Bonds of each atom to atoms no heavier than Ne (C, N, O …), images included."""
    return np.array(
        [sum(int(crystal.z[j]) <= 10 for j, _ in row) for row in bonds(crystal)], dtype=int
    )


def element_names(z: np.ndarray) -> list[str]:
    """Element symbols of atomic numbers."""
    return [symbol(int(v)) for v in z]


def match_atoms(
    model: Crystal,
    truth: Crystal,
    shift: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
    inverted: bool = False,
    tolerance: float = 0.3,
) -> tuple[float, float]:
    """(fraction of the truth's non-H atoms within ``tolerance`` Å of a symmetry image of a
    model atom, fraction that also has the right element), after moving the model onto the
    truth's origin and hand: x → ±x + ``shift`` (as found by the phase scorer). Atoms of a
    disordered truth count when their occupancy is at least :data:`MAJOR_OCCUPANCY` (the
    major component, which is what a solution can find); the model's H atoms take no part."""
    from xtalforge.diffraction.reflections import reflections_from_hkl
    from xtalforge.phasing.peaks import min_image_distances

    heavy = (truth.z > 1) & (truth.occ >= MAJOR_OCCUPANCY)
    if not heavy.any():
        return float("nan"), float("nan")
    model = model.copy(
        z=model.z[model.z > 1],
        frac=model.frac[model.z > 1],
        u_iso=model.u_iso[model.z > 1],
        occ=model.occ[model.z > 1],
        labels=None,
    )
    if model.n_atoms == 0:
        return 0.0, 0.0
    frac = (-model.frac if inverted else model.frac) + np.asarray(shift, float)
    probe = reflections_from_hkl(np.zeros((0, 3), int), model.cell, model.spacegroup)
    d = min_image_distances(truth.frac[heavy], frac, truth.cell, probe)
    nearest = d.argmin(axis=1)
    close = d.min(axis=1) <= tolerance
    right = close & (model.z[nearest] == truth.z[heavy])
    return float(close.mean()), float(right.mean())
