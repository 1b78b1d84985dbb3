"""Riding hydrogen atoms placed on a heavy-atom model by its geometry, as SHELXL's HFIX does.

A hydrogen atom has one electron, but a model of an organic crystal without its H atoms misses
a tenth of the electrons at low angle: a CH₂ then scatters like an O, an NH like an O, and
R1 stays high. Each C, N and O takes the H atoms its bonds to the rest of the model leave room
for, at SHELXL's X–H distances (data at 100 K), with U = 1.2 × U(parent) (1.5 for CH₃, NH₃
and OH):

=========  =============================================  =====  =====
parent     bonds (lengths in Å)                           H      AFIX
=========  =============================================  =====  =====
C          3, pyramidal                                   1      13
C          2, ≥ 155°                                      0
C          2, mean bond < 1.45 (sp²)                      1      43
C          2, single bonds                                2      23
C          1, bond < 1.25 (triple)                        0
C          1, bond < 1.41 (=CH₂)                          2      93
C          1, single bond (methyl)                        3      137
N          2, single bonds                                1      13
N          2, sp² (pyridine N or N–H: the data decide)    0 / 1  43
N          1, bond < 1.20 (nitrile)                       0
N          1, bond < 1.40 (sp² NH₂)                       2      93
N          1, single bond (NH₂ or NH₃⁺: the data decide)  2 / 3  137
O          1, to C ≥ 1.30 or to N ≥ 1.36 (OH)             1      147
=========  =============================================  =====  =====

Methyl, NH₃ and OH groups turn about their bond to the torsion that fits the data best (the
χ² of the model with the group, as SHELXL's AFIX 137/147 follows the difference density);
where the data decide whether an H is there, it is placed only when it lowers χ² by at least
:data:`H_MIN_GAIN` of it. Atoms heavier than O carry no H; water's H atoms are not placed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xtalforge.crystal.elements import covalent_radius, form_factors
from xtalforge.crystal.model import Crystal

__all__ = [
    "H_D_MIN",
    "H_MIN_GAIN",
    "RidingHydrogens",
    "hydrogen_factors",
    "hydrogen_sites",
    "place_hydrogens",
]

#: Fraction of χ² an H whose presence the geometry leaves open must gain to be placed.
H_MIN_GAIN = 1e-3
#: Å: the data that choose H atoms (reflections with d ≥ this; H scatter little beyond).
H_D_MIN = 1.4
#: Å: X–H distances (SHELXL's defaults for data at 100 K) by AFIX code and parent.
_DISTANCE = {
    (6, 13): 1.00,
    (6, 23): 0.99,
    (6, 43): 0.95,
    (6, 93): 0.95,
    (6, 137): 0.98,
    (7, 13): 0.91,
    (7, 43): 0.88,
    (7, 93): 0.88,
    (7, 137): 0.91,
    (8, 147): 0.84,
}
_TETRAHEDRAL = np.deg2rad(109.47)
_TORSIONS = np.deg2rad(np.arange(0.0, 120.0, 10.0))
_BOND_TOLERANCE = 0.45


@dataclass
class RidingHydrogens:
    """H atoms riding on a model: fractional positions (n, 3), U_iso (Å²), the index of each
    one's parent atom in the model, and its SHELXL AFIX code."""

    frac: np.ndarray
    u_iso: np.ndarray
    parent: np.ndarray
    afix: np.ndarray

    @classmethod
    def none(cls) -> RidingHydrogens:
        return cls(np.zeros((0, 3)), np.zeros(0), np.zeros(0, int), np.zeros(0, int))

    def __len__(self) -> int:
        return len(self.parent)

    def attached(self, crystal: Crystal) -> Crystal:
        """``crystal`` with these H atoms appended (after its own atoms)."""
        n = len(self)
        return Crystal(
            crystal.cell,
            crystal.spacegroup,
            np.concatenate([crystal.z, np.ones(n, crystal.z.dtype)]),
            np.concatenate([crystal.frac, self.frac]),
            np.concatenate([crystal.u_iso, self.u_iso]),
            np.concatenate([crystal.occ, crystal.occ[self.parent]]),
        )


def _neighbours(crystal: Crystal) -> list[list[tuple[int, np.ndarray]]]:
    """For each atom, (other atom, Cartesian vector Å to the bonded image) of its bonds
    (contacts up to the sum of covalent radii + 0.45 Å, at least 0.9 Å), images included."""
    rots, trans = crystal.symmetry.all_ops()
    images = np.einsum("sij,nj->nsi", rots, crystal.frac) + trans[None]  # (N, S, 3)
    orth = crystal.orthogonalization_matrix
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    radius = np.array([covalent_radius(int(z)) for z in crystal.z])
    out: list[list[tuple[int, np.ndarray]]] = []
    for i, x in enumerate(crystal.frac):
        diff = images - x
        diff -= np.round(diff)
        vec = (diff[:, :, None, :] + shifts) @ orth.T  # (N, S, 27, 3)
        d = np.linalg.norm(vec, axis=-1)
        limit = (radius + radius[i] + _BOND_TOLERANCE)[:, None, None]
        mask = (d <= limit) & (d >= 0.9) & (crystal.z[:, None, None] > 1)
        row: list[tuple[int, np.ndarray]] = []
        for j, s, t in zip(*np.nonzero(mask)):
            v = vec[j, s, t]
            if all(np.linalg.norm(v - w) > 1e-3 for _, w in row):
                row.append((int(j), v))
        out.append(row)
    return out


def _perpendicular(u: np.ndarray, hint: np.ndarray | None) -> np.ndarray:
    """A unit vector ⊥ ``u``: along ``hint``'s component ⊥ ``u`` when it has one."""
    for v in ([] if hint is None else [hint]) + [np.eye(3)[int(np.argmin(np.abs(u)))]]:
        p = v - (v @ u) * u
        if np.linalg.norm(p) > 1e-3:
            return p / np.linalg.norm(p)
    raise AssertionError("unreachable")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotor(u: np.ndarray, ref: np.ndarray | None, n_h: int) -> list[np.ndarray]:
    """Directions (one (n_h, 3) array per torsion of :data:`_TORSIONS`) of ``n_h`` H atoms
    of a tetrahedral X–H group about the bond to ``u`` (unit, from the parent), the first H
    staggered (anti) to ``ref`` (a vector from the bonded atom to one of its own neighbours)."""
    p = _perpendicular(u, None if ref is None else -ref)
    q = np.cross(u, p)
    out = []
    for t in _TORSIONS:
        phis = t + np.arange(n_h) * 2 * np.pi / 3
        perp = np.cos(phis)[:, None] * p + np.sin(phis)[:, None] * q
        out.append(np.cos(_TETRAHEDRAL) * u + np.sin(_TETRAHEDRAL) * perp)
    return out


def hydrogen_sites(
    crystal: Crystal, j: int, z: int | None = None, neighbours: list | None = None
) -> list[tuple[int, list[np.ndarray]]]:
    """The hypotheses for the H atoms on atom ``j`` (typed ``z``, default its own element):
    a list of (AFIX code, [Cartesian H offsets (n, 3) Å from the parent, one array per
    torsion or alternative]). An empty list: no H; more than one hypothesis, or more than
    one array in one: the data choose (a hypothesis with an empty array means "no H")."""
    every = neighbours if neighbours is not None else _neighbours(crystal)
    nb = every[j]
    z = int(crystal.z[j]) if z is None else int(z)
    if z not in (6, 7, 8) or len(nb) == 0:
        return []
    lengths = np.array([np.linalg.norm(v) for _, v in nb])
    units = [v / d for (_, v), d in zip(nb, lengths)]
    none = np.zeros((0, 3))

    def at(afix: int, dirs: np.ndarray) -> np.ndarray:
        return np.atleast_2d(dirs) * _DISTANCE[(z, afix)]

    def far_neighbour(k: int) -> np.ndarray | None:
        """A vector from neighbour k to one of its own neighbours other than j."""
        other, v = nb[k]
        for _, w in every[other]:
            if np.linalg.norm(w + v) > 1e-2:  # not the bond back to j
                return w
        return None

    n = len(nb)
    if z == 6:
        if n >= 4:
            return []
        if n == 3:
            s = -(units[0] + units[1] + units[2])
            return [(13, [at(13, _unit(s))])] if np.linalg.norm(s) > 0.5 else []
        if n == 2:
            bis = units[0] + units[1]
            if np.linalg.norm(bis) < 0.42:  # angle ≥ 155°: sp
                return []
            if lengths.mean() < 1.45:
                return [(43, [at(43, _unit(-bis))])]
            normal = _unit(np.cross(units[0], units[1]))
            b = _unit(-bis)
            half = _TETRAHEDRAL / 2
            dirs = np.array(
                [np.cos(half) * b + np.sin(half) * normal, np.cos(half) * b - np.sin(half) * normal]
            )
            return [(23, [at(23, dirs)])]
        u, d = units[0], lengths[0]
        if d < 1.25:
            return []
        ref = far_neighbour(0)
        if d < 1.41:
            if ref is None:
                return []
            p = _perpendicular(u, ref)  # in the plane of the double bond, towards ref
            dirs = np.array(
                [
                    np.cos(np.deg2rad(120)) * u + np.sin(np.deg2rad(120)) * p,
                    np.cos(np.deg2rad(120)) * u - np.sin(np.deg2rad(120)) * p,
                ]
            )
            return [(93, [at(93, dirs)])]
        return [(137, [at(137, dirs) for dirs in _rotor(u, ref, 3)])]
    if z == 7:
        if n >= 3:
            return []
        if n == 2:
            bis = units[0] + units[1]
            if np.linalg.norm(bis) < 0.42:
                return []
            if lengths.mean() >= 1.42:
                return [(13, [at(13, _unit(-bis))])]
            return [(43, [none, at(43, _unit(-bis))])]
        u, d = units[0], lengths[0]
        if d < 1.20:
            return []
        ref = far_neighbour(0)
        if d < 1.40:
            if ref is None:
                return []
            p = _perpendicular(u, ref)
            dirs = np.array(
                [
                    np.cos(np.deg2rad(120)) * u + np.sin(np.deg2rad(120)) * p,
                    np.cos(np.deg2rad(120)) * u - np.sin(np.deg2rad(120)) * p,
                ]
            )
            return [(93, [at(93, dirs)])]
        rot3 = [at(137, dirs) for dirs in _rotor(u, ref, 3)]
        rot2 = [at(137, dirs[:2]) for dirs in _rotor(u, ref, 3)]
        return [(137, rot3 + rot2)]
    if n >= 2:
        return []
    other, d = int(crystal.z[nb[0][0]]), lengths[0]
    if (other == 6 and d >= 1.30) or (other == 7 and d >= 1.36) or other == 5:
        return [(147, [at(147, dirs[:1]) for dirs in _rotor(units[0], far_neighbour(0), 1)])]
    return []


class _HydrogenF:
    """F of H atoms (one per reflection of ``refl`` where ``mask``) over all symmetry
    operations of the crystal (the data are merged in its group)."""

    def __init__(self, crystal: Crystal, refl, mask: np.ndarray | None = None) -> None:
        mask = np.ones(len(refl), bool) if mask is None else mask
        rots, trans = crystal.symmetry.all_ops()
        self.rots, self.trans = rots.astype(float), trans
        self.stol2 = refl.stol2[mask]
        self.f_h = form_factors(np.array([1]), self.stol2)[0]
        self.hkl = refl.hkl[mask].astype(float)

    def __call__(self, frac: np.ndarray, u: float) -> np.ndarray:
        """F of H atoms at fractional positions (n, 3) with U ``u`` (Å²)."""
        if len(frac) == 0:
            return np.zeros(len(self.hkl), complex)
        images = (np.einsum("sij,nj->nsi", self.rots, frac) + self.trans[None]).reshape(-1, 3)
        phase = self.hkl @ images.T
        phase -= np.round(phase)
        geometric = np.exp(2j * np.pi * phase).sum(axis=1)
        return self.f_h * np.exp(-8 * np.pi**2 * u * self.stol2) * geometric


class _Scorer:
    """χ² of the model's Fc plus trial H atoms against the low-angle data (d ≥
    :data:`H_D_MIN` Å), at the model's scale and weights (the χ² that SHELXL's rotating groups
    follow)."""

    def __init__(self, crystal: Crystal, refl, i_obs: np.ndarray, sigma: np.ndarray) -> None:
        from xtalforge.diffraction.structure_factors import structure_factors
        from xtalforge.phasing.refine import DEFAULT_WEIGHTS, best_scale, shelxl_weights

        low = refl.stol2 <= 1.0 / (4.0 * H_D_MIN**2)
        self.f = structure_factors(crystal, refl)[low]
        self.i_obs = i_obs[low]
        fc2 = np.abs(self.f) ** 2
        k = best_scale(self.i_obs, fc2, 1.0 / sigma[low] ** 2)
        self.w = shelxl_weights(self.i_obs, sigma[low], k * fc2, *DEFAULT_WEIGHTS)
        self.k = best_scale(self.i_obs, fc2, self.w)
        self.contribution = _HydrogenF(crystal, refl, low)

    def chi2(self, extra: np.ndarray) -> float:
        resid = self.i_obs - self.k * np.abs(self.f + extra) ** 2
        return float((self.w * resid**2).sum())


def hydrogen_factors(crystal: Crystal, refl, riding: RidingHydrogens):
    """``f(j, z)``: F (one per reflection of ``refl``) of the H atoms site j of ``crystal``
    carries as element z: its riding H for its own element, else the first hypothesis of
    :func:`hydrogen_sites` (the use: :func:`~xtalforge.phasing.refine.element_costs`)."""
    nb = _neighbours(crystal)
    inv = np.linalg.inv(crystal.orthogonalization_matrix)
    calc = _HydrogenF(crystal, refl)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def f(j: int, z: int) -> np.ndarray:
        key = (j, z)
        if key not in cache:
            if z == int(crystal.z[j]):
                own = riding.parent == j
                cache[key] = calc(riding.frac[own], float(riding.u_iso[own][0]) if own.any() else 0)
            else:
                hyps = hydrogen_sites(crystal, j, z, nb)
                if hyps:
                    code, options = hyps[0]
                    u_h = crystal.u_iso[j] * (1.5 if code in (137, 147) else 1.2)
                    cache[key] = calc(crystal.frac[j] + options[0] @ inv.T, u_h)
                else:
                    cache[key] = calc(np.zeros((0, 3)), 0.0)
        return cache[key]

    return f


def place_hydrogens(
    crystal: Crystal,
    refl=None,
    i_obs: np.ndarray | None = None,
    sigma: np.ndarray | None = None,
) -> RidingHydrogens:
    """Riding H atoms on the C, N and O atoms of ``crystal`` (no H of its own), by the rules in
    this module's table. With data (``refl``, Fo² ``i_obs``, σ ``sigma``), rotating groups and
    H atoms the geometry leaves open are chosen by χ²; without, the first torsion and
    alternative are taken."""
    nb = _neighbours(crystal)
    inv = np.linalg.inv(crystal.orthogonalization_matrix)
    scorer = None
    if refl is not None and i_obs is not None and sigma is not None:
        scorer = _Scorer(crystal, refl, np.asarray(i_obs), np.asarray(sigma))
    frac, u, parent, afix = [], [], [], []
    for j in range(crystal.n_atoms):
        hyps = hydrogen_sites(crystal, j, neighbours=nb)
        if not hyps:
            continue
        code, options = hyps[0]
        u_h = crystal.u_iso[j] * (1.5 if code in (137, 147) else 1.2)
        trial = [crystal.frac[j] + off @ inv.T for off in options]
        best = 0
        if scorer is not None and len(trial) > 1:
            chi = [scorer.chi2(scorer.contribution(t, u_h)) for t in trial]
            best = int(np.argmin(chi))
            empty = [k for k, t in enumerate(trial) if len(t) == 0]
            fewer = [k for k, t in enumerate(trial) if 0 < len(t) < max(map(len, trial))]
            if empty or fewer:  # presence open: the fuller group must gain H_MIN_GAIN of χ²
                full = max(map(len, trial))
                lean = [k for k, t in enumerate(trial) if len(t) < full]
                rich = [k for k, t in enumerate(trial) if len(t) == full]
                best_lean = min(lean, key=lambda k: chi[k])
                best_rich = min(rich, key=lambda k: chi[k])
                gain = chi[best_lean] - chi[best_rich]
                best = best_rich if gain >= H_MIN_GAIN * chi[best_lean] else best_lean
        for x in trial[best]:
            frac.append(x)
            u.append(u_h)
            parent.append(j)
            afix.append(code)
    if not parent:
        return RidingHydrogens.none()
    return RidingHydrogens(np.array(frac), np.array(u), np.array(parent, int), np.array(afix, int))
