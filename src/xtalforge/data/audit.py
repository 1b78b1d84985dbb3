"""Checks of real CIFs before import: what is fixed, what is skipped, and why.

Real CIFs are messy. Per file, :func:`audit_cif` reports parse errors, flagged disorder, partial
occupancy, overlapping atoms (unflagged disorder or duplicated sites), unphysical displacement
parameters (B written as U, U multiplied by 10⁴, non-positive-definite U_aniso, none given) and
special-position occupancies in the SHELX convention. Unambiguous problems are fixed and
reported; the rest make the file skipped. Distances in Å, displacement parameters in Å².
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.errors import XtalforgeError
from xtalforge.io import read_cif
from xtalforge.io.cif_structure import ddl1_block, entry_name

__all__ = ["AuditResult", "audit_cif"]

#: Two distinct sites closer than this (Å) overlap (no real bond is this short).
OVERLAP = 0.5
#: Same-element sites closer than this (Å) are taken as exact duplicates and merged.
DUPLICATE = 0.1
_B_TO_U = 1.0 / (8.0 * math.pi**2)
#: Occupancies within OCC_TOL of 1 are full; SHELX special-position occupancies (occ × site
#: order = 1) are recognised within SHELX_OCC_TOL.
OCC_TOL, SHELX_OCC_TOL = 1e-3, 0.02
#: Non-H displacement parameters (Å²): all above U_TIMES_1E4 were written × 10⁴; all above
#: U_AS_B are B; a median above U_MAX_MEDIAN is neither and not physical.
U_TIMES_1E4, U_AS_B, U_MAX_MEDIAN = 20.0, 0.8, 0.5


@dataclass
class AuditResult:
    """Outcome for one file: ``status`` is ``ok``, ``fixed`` or ``skipped``."""

    file: str
    status: str
    crystal: Crystal | None = None
    fixes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "status": self.status,
            "fixes": self.fixes,
            "problems": self.problems,
        }


def _skip(name: str, why: str, fixes: list[str] | None = None) -> AuditResult:
    return AuditResult(name, "skipped", None, fixes or [], [why])


def _disorder_flagged(block: gemmi.cif.Block) -> bool:
    for tag in ("_atom_site_disorder_group", "_atom_site.disorder_group"):
        values = block.find_values(tag)
        if any(v not in (".", "?", "0") for v in values):
            return True
    return False


def _aniso_not_positive_definite(block: gemmi.cif.Block) -> list[str]:
    """Labels of sites whose U_aniso matrix is not positive definite (congruence keeps the sign
    of the eigenvalues, so the raw U^ij matrix is tested directly)."""
    try:
        small = gemmi.make_small_structure_from_block(block)
    except (RuntimeError, ValueError):
        return []
    bad = []
    for site in small.sites:
        a = site.aniso
        if a.nonzero():
            m = np.array([[a.u11, a.u12, a.u13], [a.u12, a.u22, a.u23], [a.u13, a.u23, a.u33]])
            if np.linalg.eigvalsh(m).min() <= 0:
                bad.append(site.label)
    return bad


def _overlaps(c: Crystal) -> list[tuple[int, int, float]]:
    """Pairs (i, j, d) of distinct sites i ≤ j with some symmetry copy of j within OVERLAP Å of
    i (an atom's own images only count when they are not the atom itself)."""
    rots, trans = c.symmetry.all_ops()
    orth = c.orthogonalization_matrix
    frac = c.frac % 1.0
    images = np.einsum("sij,nj->sni", rots, frac) + trans[:, None, :]  # (S, N, 3)
    out = []
    order = c.site_symmetry_order()
    for i in range(c.n_atoms):
        diff = images - frac[i]
        diff -= np.round(diff)
        d = np.linalg.norm(diff @ orth.T, axis=-1)  # (S, N)
        d[:, i] = np.where(d[:, i] < 0.01, np.inf, d[:, i])  # the atom itself (special sites)
        dmin = d.min(axis=0)
        for j in np.nonzero(dmin < OVERLAP)[0]:
            if j >= i and not (j == i and order[i] > 1):
                out.append((i, int(j), float(dmin[j])))
    return out


class _Skip(Exception):
    """A check found a reason to skip the structure (the message)."""


def _reader_fixes(c: Crystal) -> list[str]:
    """What the CIF reader already repaired (from its warnings) that the report should list."""
    fixes = []
    for w in c.metadata.get("warnings", []):
        if any(
            k in w
            for k in (
                "no displacement parameter",
                "dummy site",
                "operators generate",
                "taken as 1",
                "duplicated site(s) merged",
                "negative U_iso",
            )
        ):
            fixes.append(w.split(": ", 1)[-1])
        elif w.startswith("dropped"):
            fixes.append(w)
    return fixes


def _cif_block(path: Path, c: Crystal) -> gemmi.cif.Block | None:
    try:
        doc = gemmi.cif.read(str(path))
        return ddl1_block(doc.find_block(c.metadata.get("block", "")) or doc[0])
    except (RuntimeError, ValueError, IndexError):
        return None


def _occupancies(c: Crystal, allow_partial: bool, fixes: list[str]) -> Crystal:
    """SHELX writes occ × (site-symmetry order) = 1 for a full atom on a special site."""
    order = c.site_symmetry_order()
    occ = c.occ.copy()
    shelx = (order > 1) & (occ < 1 - OCC_TOL) & (np.abs(occ * order - 1) < SHELX_OCC_TOL)
    if shelx.any():
        occ[shelx] = 1.0
        fixes.append(
            f"{int(shelx.sum())} special-position occupancies in the SHELX convention "
            "(occ × site-symmetry order = 1) set to 1"
        )
    partial = occ < 1 - OCC_TOL
    if partial.any() and not allow_partial:
        labels = [c.labels[i] if c.labels else f"#{i}" for i in np.nonzero(partial)[0][:5]]
        raise _Skip(f"partial occupancy: {int(partial.sum())} site(s) ({', '.join(labels)})")
    return c.copy(occ=occ)


def _overlapping(c: Crystal, fixes: list[str]) -> Crystal:
    """Exact duplicates merged; other overlapping atoms are a reason to skip."""
    pairs = _overlaps(c)
    dup = [(i, j, d) for i, j, d in pairs if c.z[i] == c.z[j] and d < DUPLICATE and i != j]
    if dup and len(dup) == len(pairs):
        drop = sorted({j for _, j, _ in dup})
        keep = np.setdiff1d(np.arange(c.n_atoms), drop)
        fixes.append(f"{len(drop)} duplicated site(s) merged")
        return c.copy(
            z=c.z[keep],
            frac=c.frac[keep],
            u_iso=c.u_iso[keep],
            occ=c.occ[keep],
            labels=[c.labels[k] for k in keep] if c.labels else None,
        )
    if pairs:
        i, j, d = pairs[0]
        lab = c.labels or [f"#{k}" for k in range(c.n_atoms)]
        raise _Skip(
            f"overlapping atoms: {len(pairs)} pair(s) closer than {OVERLAP} Å, "
            f"e.g. {lab[i]}–{lab[j]} at {d:.2f} Å (unflagged disorder or duplicates)"
        )
    return c


def _displacements(c: Crystal, block: gemmi.cif.Block | None, fixes: list[str]) -> Crystal:
    """U_aniso that is not positive definite, U given as B or as U × 10⁴, unphysical U."""
    not_pd = _aniso_not_positive_definite(block) if block is not None else []
    if not_pd:
        fixes.append(
            f"non-positive-definite U_aniso for {len(not_pd)} site(s) "
            f"({', '.join(not_pd[:5])}): isotropic U_eq used"
        )
    heavy = c.u_iso[c.z != 1] if (c.z != 1).any() else c.u_iso
    u = c.u_iso.copy()
    if (heavy <= 0).any():
        raise _Skip("displacement parameters: non-positive U_iso/U_eq")
    if heavy.min() > U_TIMES_1E4:
        u = u * 1e-4
        fixes.append("U values look multiplied by 10⁴ (all > 20 Å²): divided by 10⁴")
    elif heavy.min() > U_AS_B:
        u = u * _B_TO_U
        fixes.append("U values look like B (all non-H in 0.8–20 Å²): divided by 8π²")
    elif np.median(heavy) > U_MAX_MEDIAN:
        raise _Skip(
            f"displacement parameters not physical (median U {np.median(heavy):.2f} Å²) and "
            "not clearly B or U×10⁴"
        )
    return c.copy(u_iso=u) if (u != c.u_iso).any() else c


def audit_cif(
    path: str | Path, allow_partial: bool = False, block: str | None = None
) -> AuditResult:
    """Read and check one CIF; never raises for a bad file (the result says why it was skipped).

    Fixes: SHELX special-position occupancies (occ × site-symmetry order = 1) → 1; exact
    duplicate sites (same element within 0.1 Å) → merged; U given as B (all non-H U in
    0.8–20 Å²) → divided by 8π²; U multiplied by 10⁴ (all above 20) → divided by 10⁴;
    non-positive-definite U_aniso → U_eq kept as U_iso when positive; no U given → 0.025 Å².
    Skips: parse errors, flagged disorder, remaining partial occupancy (unless
    ``allow_partial``), overlapping distinct atoms, ambiguous or non-positive U. ``block``: the
    data block to read (default: the first with atom sites).
    """
    path = Path(path)
    name = entry_name(path, block)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = read_cif(path, block=block)
    except XtalforgeError as exc:
        return _skip(name, f"parse error: {exc}")
    except Exception as exc:
        return _skip(name, f"parse error: {type(exc).__name__}: {exc}")
    fixes = _reader_fixes(c)
    cif_block = _cif_block(path, c)
    try:
        if cif_block is not None and _disorder_flagged(cif_block):
            raise _Skip("disorder: _atom_site_disorder_group is set")
        c = _occupancies(c, allow_partial, fixes)
        c = _overlapping(c, fixes)
        c = _displacements(c, cif_block, fixes)
    except _Skip as why:
        return _skip(name, str(why), fixes)
    c.metadata.setdefault("audit", fixes)
    return AuditResult(name, "fixed" if fixes else "ok", c, fixes, [])
