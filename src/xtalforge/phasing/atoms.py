"""From density peaks to atoms with elements, and the chemistry that checks them.

Elements come from the composition: the expected non-H atoms of the asymmetric unit, heaviest
first, are given to the peaks in order of height (a peak's height grows with the atom's
electrons). After a refinement the order is revised with the refined U: an atom typed too light
refines to a small U, one typed too heavy to a large U, so the effective number of electrons
Z·[(Ū + U₀)/(U + U₀)]^{3/2} (the peak height of a Gaussian atom of width U + U₀ for the same
integrated charge) ranks the atoms again. Chemistry: bonds are contacts shorter than the sum of
covalent radii + :data:`BOND_TOLERANCE` Å; atoms closer than :data:`MIN_CONTACT` Å cannot both
be real.
"""

from __future__ import annotations

import numpy as np

from xtalforge.crystal.elements import atomic_number, covalent_radius, symbol
from xtalforge.crystal.model import Crystal

__all__ = [
    "BOND_TOLERANCE",
    "MIN_CONTACT",
    "cell_counts",
    "contacts",
    "effective_z",
    "element_names",
    "fragments",
    "match_atoms",
    "multiplicities",
    "snap_to_special_positions",
    "type_by_rank",
]

#: Å added to the sum of covalent radii for a contact to count as a bond.
BOND_TOLERANCE = 0.45
#: Å: no two atoms of a structure are closer than this.
MIN_CONTACT = 0.9
#: Å²: the width a form factor adds to an atom's U in the effective-Z estimate.
U_FORM = 0.02


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
    """Copies of each asymmetric-unit atom in the unit cell (|G| / site-symmetry order)."""
    return len(crystal.symmetry.all_ops()[0]) / crystal.site_symmetry_order()


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


def effective_z(crystal: Crystal) -> np.ndarray:
    """Electrons each atom would need to give its peak at the median U (see the module
    docstring): above its Z when its U refined small, below when large."""
    u = np.maximum(crystal.u_iso, 1e-4)
    ref = float(np.median(u[crystal.z > 1])) if (crystal.z > 1).any() else float(np.median(u))
    return crystal.z * ((ref + U_FORM) / (u + U_FORM)) ** 1.5


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


def fragments(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """(bonds per atom, size of the bonded fragment each atom belongs to) counting bonds to
    symmetry images (so a molecule on an inversion centre is one fragment)."""
    near = contacts(crystal)
    n = crystal.n_atoms
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    bonds = np.zeros(n, int)
    for i, row in enumerate(near):
        for j, dist in row:
            if _bonded(int(crystal.z[i]), int(crystal.z[j]), dist) and dist >= MIN_CONTACT:
                bonds[i] += 1
                parent[root(i)] = root(j)
    roots = np.array([root(i) for i in range(n)])
    sizes = np.array([(roots == r).sum() for r in roots]) if n else np.zeros(0, int)
    return bonds, sizes


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
    truth's origin and hand: x → ±x + ``shift`` (as found by the phase scorer)."""
    from xtalforge.diffraction.reflections import reflections_from_hkl
    from xtalforge.phasing.peaks import min_image_distances

    heavy = truth.z > 1
    if not heavy.any():
        return float("nan"), float("nan")
    if model.n_atoms == 0:
        return 0.0, 0.0
    frac = (-model.frac if inverted else model.frac) + np.asarray(shift, float)
    probe = reflections_from_hkl(np.zeros((0, 3), int), model.cell, model.spacegroup)
    d = min_image_distances(truth.frac[heavy], frac, truth.cell, probe)
    nearest = d.argmin(axis=1)
    close = d.min(axis=1) <= tolerance
    right = close & (model.z[nearest] == truth.z[heavy])
    return float(close.mean()), float(right.mean())
