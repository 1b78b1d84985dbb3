"""Rotational disorder of CF₃ groups: a second, staggered set of F sites.

A CF₃ group spins about its C–X bond; in most crystals it sits in two orientations 60° apart,
and one set of three F atoms then refines to large U (the density smeared round the axis),
often looking lighter than F, so that the typing may take one for an O. SHELXL users model it
with two PARTs; here the finished model is offered the same: each CF₃ whose F atoms have U
larger than :data:`SMEARED_U_RATIO` × its carbon's gets three more F atoms, its own F turned
60° about the X→C axis, the two sets at occupancies ``major`` and 1 − ``major``; the caller
refines that and keeps it only when it fits better.

A group counts as CF₃ when its carbon has exactly one neighbour that is bonded to other atoms
(X) and three terminal ones (bonded to this carbon alone) within :data:`CF_BOND_MAX` Å, at
least two of them typed F: the third is made F as well (a smeared F typed O is the case seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.phasing.atoms import bonds

__all__ = ["CF_BOND_MAX", "SMEARED_U_RATIO", "Rotor", "cf3_rotors", "split_rotor"]

#: Å: the longest C–F (or smeared C–F) bond of a CF₃ group.
CF_BOND_MAX = 1.45
#: A CF₃ group is offered a second orientation when the mean U of its F atoms exceeds this
#: many times its carbon's U (an ordered CF₃ has F atoms about 1.5–2× as mobile as its C).
SMEARED_U_RATIO = 2.0
#: Radians: the turn from one staggered orientation of a CF₃ group to the other.
STAGGER = np.pi / 3


@dataclass(frozen=True)
class Rotor:
    """A CF₃ group: its carbon, the axis atom X bonded to it, its three terminal atoms (their
    positions as the images nearest the carbon, fractional), and the X image's position."""

    carbon: int
    axis_atom: int
    terminal: tuple[int, int, int]
    terminal_frac: np.ndarray  # (3, 3)
    axis_frac: np.ndarray  # (3,)


def _nearest_image(crystal: Crystal, x0: np.ndarray, j: int) -> np.ndarray:
    """Fractional position of the symmetry and lattice image of atom ``j`` nearest ``x0``."""
    rots, trans = crystal.symmetry.all_ops()
    images = np.einsum("sij,j->si", rots, crystal.frac[j]) + trans
    diff = images - x0
    diff -= np.round(diff)
    k = int(np.linalg.norm(diff @ crystal.orthogonalization_matrix.T, axis=1).argmin())
    return x0 + diff[k]


def cf3_rotors(crystal: Crystal) -> list[Rotor]:
    """The CF₃ groups of a model (H atoms ignored) whose F atoms look smeared (mean U above
    :data:`SMEARED_U_RATIO` × the carbon's)."""
    heavy = np.flatnonzero(crystal.z > 1)
    sub = crystal.copy(
        z=crystal.z[heavy],
        frac=crystal.frac[heavy],
        u_iso=crystal.u_iso[heavy],
        occ=crystal.occ[heavy],
        labels=None,
    )
    bonded = bonds(sub)
    out = []
    for c in np.flatnonzero(sub.z == 6):
        terminal = [
            j
            for j, d in bonded[c]
            if d <= CF_BOND_MAX and sub.z[j] in (8, 9) and {k for k, _ in bonded[j]} == {c}
        ]
        others = [j for j, _ in bonded[c] if j not in terminal]
        if len(terminal) != 3 or len(others) != 1 or sum(sub.z[j] == 9 for j in terminal) < 2:
            continue
        if (sub.occ[terminal] < 1).any():
            continue  # already split
        if sub.u_iso[terminal].mean() <= SMEARED_U_RATIO * sub.u_iso[c]:
            continue
        x0 = sub.frac[c]
        out.append(
            Rotor(
                int(heavy[c]),
                int(heavy[others[0]]),
                (int(heavy[terminal[0]]), int(heavy[terminal[1]]), int(heavy[terminal[2]])),
                np.array([_nearest_image(sub, x0, j) for j in terminal]),
                _nearest_image(sub, x0, others[0]),
            )
        )
    return out


def split_rotor(
    crystal: Crystal, rotor: Rotor, major: float, u_start: float = 0.05
) -> tuple[Crystal, np.ndarray]:
    """``crystal`` with ``rotor``'s three terminal atoms made F at occupancy ``major`` and
    three more F atoms (appended) at 1 − ``major``, turned :data:`STAGGER` about the X→C
    axis; all six start at U = ``u_start`` Å². Returns the model and the mask of the six."""
    orth = crystal.orthogonalization_matrix
    c0 = crystal.frac[rotor.carbon]
    axis = orth @ (c0 - rotor.axis_frac)
    axis /= np.linalg.norm(axis)
    cos, sin = np.cos(STAGGER), np.sin(STAGGER)
    turned = []
    for x in rotor.terminal_frac:
        v = orth @ (x - c0)  # Rodrigues' rotation of the C→F vector about the axis
        w = v * cos + np.cross(axis, v) * sin + axis * (axis @ v) * (1 - cos)
        turned.append(c0 + np.linalg.solve(orth, w))
    idx = list(rotor.terminal)
    z = crystal.z.copy()
    z[idx] = 9
    occ = crystal.occ.astype(float).copy()
    occ[idx] = major
    u = crystal.u_iso.astype(float).copy()
    u[idx] = u_start
    frac = crystal.frac.copy()
    frac[idx] = rotor.terminal_frac
    out = Crystal(
        crystal.cell,
        crystal.spacegroup,
        np.concatenate([z, np.full(3, 9, z.dtype)]),
        np.vstack([frac, np.array(turned)]),
        np.concatenate([u, np.full(3, u_start)]),
        np.concatenate([occ, np.full(3, 1.0 - major)]),
    )
    mask = np.zeros(out.n_atoms, bool)
    mask[idx] = True
    mask[-3:] = True
    return out, mask
