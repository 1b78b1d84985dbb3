"""The space group from the data, as XPREP finds it: the Laue class from the agreement of
symmetry-equivalent intensities, lattice centring and screw axes/glide planes from the
systematic absences, and centrosymmetry from ⟨|E² − 1|⟩.

Every space-group setting of gemmi's table whose operations keep the cell's metric (so the
data's axes are used as they are, no re-indexing) is a candidate. For each:

- **Laue agreement**: the correlation of I(h) with I(hR) over the pairs measured, for every
  rotation R of its point group (the lowest of them; Friedel pairs are merged first).
- **Absences**: the reflections it makes systematically absent, their mean I/σ(I) and the
  fraction above 3σ (absent reflections scatter around zero).
- **Centrosymmetry**: ⟨|E² − 1|⟩ of the data is 0.968 for a centrosymmetric structure and 0.736
  for a non-centrosymmetric one (acentric reflections, Wilson statistics).

A candidate is consistent when its Laue agreement is ≥ :data:`LAUE_CC_MIN` and its absences hold
(mean I/σ ≤ :data:`ABSENCE_MEAN_MAX`, ≤ :data:`ABSENCE_STRONG_MAX` of them above 3σ). The
consistent ones are ranked by the order of their Laue group, then the number of absences they
explain, then agreement with ⟨|E² − 1|⟩, then how common the group is among published
small-molecule structures (:data:`PRIOR`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gemmi
import numpy as np

from xtalforge.crystal.model import orthogonalization_matrix

__all__ = [
    "ABSENCE_MEAN_MAX",
    "LAUE_CC_MIN",
    "PRIOR",
    "Candidate",
    "laue_agreement",
    "rank_space_groups",
]

#: Lowest correlation of symmetry-equivalent intensities for a symmetry to hold.
LAUE_CC_MIN = 0.7
#: Highest mean I/σ(I) of the reflections a group makes absent.
ABSENCE_MEAN_MAX = 3.0
#: Highest fraction of absent reflections above 3σ.
ABSENCE_STRONG_MAX = 0.1
#: ⟨|E² − 1|⟩ above which the data look centrosymmetric (between 0.736 and 0.968).
CENTRIC_E2 = 0.85
#: Share (%) of space groups among published small-molecule structures (CSD, rounded), by
#: number: the tie-breaker between groups the data cannot tell apart.
PRIOR = {
    14: 34.0, 2: 24.0, 15: 8.0, 19: 7.0, 4: 5.0, 61: 3.5, 33: 1.5, 62: 1.3, 1: 1.0, 9: 1.0,
    60: 0.9, 5: 0.9, 13: 0.8, 29: 0.6, 12: 0.5, 56: 0.4, 88: 0.4, 148: 0.4, 92: 0.3, 18: 0.3,
    96: 0.3, 43: 0.3, 11: 0.3, 167: 0.2, 7: 0.2, 64: 0.2, 20: 0.2, 76: 0.2, 169: 0.2, 52: 0.2,
}  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A space group judged against the data: Laue agreement (lowest CC of the equivalent
    intensities; NaN when no pair was measured), the number of reflections it makes absent,
    their mean I/σ and fraction above 3σ, whether it is consistent, and its rank score."""

    spacegroup: gemmi.SpaceGroup
    laue_cc: float
    laue_pairs: int
    n_absent: int
    absent_i_sigma: float
    absent_strong: float
    consistent: bool
    score: tuple

    @property
    def symbol(self) -> str:
        return self.spacegroup.xhm()


def _metric_ok(sg: gemmi.SpaceGroup, cell: tuple[float, ...], tol: float = 0.01) -> bool:
    orth = orthogonalization_matrix(cell)
    g = orth.T @ orth
    scale = np.abs(g).max()
    for op in sg.operations().sym_ops:
        r = np.array(op.rot, float) / gemmi.Op.DEN
        if np.abs(r.T @ g @ r - g).max() > tol * scale:
            return False
    return True


def _merge_friedel(hkl: np.ndarray, i: np.ndarray, s: np.ndarray) -> dict[tuple, tuple]:
    """{(h, k, l) with Friedel mates merged: (I, σ)} by inverse-variance means."""
    sign = np.where((hkl[:, 0] > 0) | ((hkl[:, 0] == 0) & (hkl[:, 1] > 0)), 1, -1)
    sign = np.where((hkl[:, 0] == 0) & (hkl[:, 1] == 0), np.where(hkl[:, 2] >= 0, 1, -1), sign)
    key = hkl * sign[:, None]
    w = 1.0 / np.maximum(s, 1e-12) ** 2
    order = np.lexsort(key.T[::-1])
    key, i, w = key[order], i[order], w[order]
    uniq, start = np.unique(key, axis=0, return_index=True)
    sums_i = np.add.reduceat(i * w, start)
    sums_w = np.add.reduceat(w, start)
    return {
        tuple(int(v) for v in h): (si / sw, 1 / math.sqrt(sw))
        for h, si, sw in zip(uniq, sums_i, sums_w)
    }


def _canonical(h: np.ndarray) -> tuple:
    if h[0] < 0 or (h[0] == 0 and (h[1] < 0 or (h[1] == 0 and h[2] < 0))):
        h = -h
    return tuple(int(v) for v in h)


def _laue_cc(merged: dict, rotations: list[np.ndarray]) -> tuple[float, int]:
    keys = np.array(list(merged))
    values = np.array([merged[tuple(k)][0] for k in merged])
    worst, pairs = math.inf, 0
    for r in rotations:
        if np.allclose(r, np.eye(3)) or np.allclose(r, -np.eye(3)):
            continue
        mapped = keys @ r  # h → hR for reciprocal indices
        a, b = [], []
        for h, v in zip(mapped, values):
            other = merged.get(_canonical(h))
            if other is not None:
                a.append(v)
                b.append(other[0])
        if len(a) < 10:
            continue
        pairs += len(a)
        worst = min(worst, float(np.corrcoef(a, b)[0, 1]))
    return (worst if math.isfinite(worst) else math.nan), pairs


def _e2_moment(hkl: np.ndarray, i: np.ndarray, cell: tuple[float, ...]) -> float:
    """⟨|E² − 1|⟩ with E² = I/⟨I⟩ in 10 equal-count shells of resolution."""
    inv = np.linalg.inv(orthogonalization_matrix(cell)).T
    s2 = ((hkl @ inv.T) ** 2).sum(axis=1)
    order = np.argsort(s2)
    e2 = np.empty(len(i))
    for part in np.array_split(order, 10):
        mean = max(float(np.mean(i[part])), 1e-30)
        e2[part] = i[part] / mean
    return float(np.mean(np.abs(e2 - 1.0)))


def _coverage(keys: np.ndarray, cell: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(every reflection of the Friedel half to the data's resolution, whether it is in the
    data)."""
    inv = np.linalg.inv(orthogonalization_matrix(cell)).T
    d_min = 1.0 / math.sqrt(((keys @ inv.T) ** 2).sum(axis=1).max())
    full = np.array(
        gemmi.make_miller_array(gemmi.UnitCell(*cell), gemmi.SpaceGroup("P -1"), d_min * 0.999)
    )
    have = {tuple(int(v) for v in k) for k in keys}
    return full, np.array([_canonical(h) in have for h in full])


def _explained(ops: gemmi.GroupOps, possible: np.ndarray, present: np.ndarray) -> int:
    """Reflections of the data's range that a group makes absent (the group was found
    consistent: those measured are weak, the others missing): the absences it explains."""
    absent = np.asarray(ops.systematic_absences(possible.astype(np.int32)), bool)
    if not absent.any():
        return 0
    return int(absent.sum())


def laue_agreement(
    hkl: np.ndarray, intensities: np.ndarray, sigmas: np.ndarray, spacegroup: gemmi.SpaceGroup
) -> tuple[float, int]:
    """(lowest CC of symmetry-equivalent intensities under the group's rotations, pairs
    compared): NaN with no pairs (data merged already, or the group has no rotations)."""
    merged = _merge_friedel(
        np.asarray(hkl, np.int64), np.asarray(intensities, float), np.asarray(sigmas, float)
    )
    rots = [np.array(op.rot, float) / gemmi.Op.DEN for op in spacegroup.operations().sym_ops]
    return _laue_cc(merged, rots)


def rank_space_groups(
    hkl: np.ndarray, intensities: np.ndarray, sigmas: np.ndarray, cell: tuple[float, ...]
) -> tuple[list[Candidate], float]:
    """(candidates best first, ⟨|E² − 1|⟩) for reflections (unmerged or merged, any setting of
    the cell's axes) with intensities and σ(I)."""
    hkl = np.asarray(hkl, np.int64)
    i = np.asarray(intensities, float)
    s = np.maximum(np.asarray(sigmas, float), 1e-12)
    merged = _merge_friedel(hkl, i, s)
    keys = np.array(list(merged))
    vals = np.array([merged[tuple(k)] for k in merged])
    e2 = _e2_moment(keys, vals[:, 0], cell)
    centric = e2 > CENTRIC_E2
    possible, present = _coverage(keys, cell)
    seen: set[str] = set()
    laue_cache: dict[str, tuple[float, int]] = {}
    out: list[Candidate] = []
    for entry in gemmi.spacegroup_table():
        sg = entry
        if sg.hall in seen or not _metric_ok(sg, cell):
            continue
        seen.add(sg.hall)
        ops = sg.operations()
        laue = sg.laue_str()
        if laue not in laue_cache:
            rots = [np.array(op.rot, float) / gemmi.Op.DEN for op in ops.sym_ops]
            laue_cache[laue] = _laue_cc(merged, rots)
        cc, pairs = laue_cache[laue]
        absent = np.asarray(ops.systematic_absences(keys.astype(np.int32)), bool)
        ratio = vals[absent, 0] / vals[absent, 1]
        mean = float(ratio.mean()) if absent.any() else 0.0
        strong = float((ratio > 3).mean()) if absent.any() else 0.0
        ok = (math.isnan(cc) or cc >= LAUE_CC_MIN) and (
            absent.sum() < 3 or (mean <= ABSENCE_MEAN_MAX and strong <= ABSENCE_STRONG_MAX)
        )
        explained = _explained(ops, possible, present) if ok else 0
        order = len(ops.sym_ops) * (1 if sg.is_centrosymmetric() else 2)  # the Laue group's
        score = (
            ok,
            order if ok else 0,
            explained,
            sg.is_centrosymmetric() == centric,
            PRIOR.get(sg.number, 0.01),
        )
        out.append(Candidate(sg, cc, pairs, int(absent.sum()), mean, strong, ok, score))
    out.sort(key=lambda c: c.score, reverse=True)
    return out, e2
