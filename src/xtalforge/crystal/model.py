"""The :class:`Crystal` data model: a unit cell, a space group and asymmetric-unit atoms."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from xtalforge.crystal.elements import atomic_number, symbol
from xtalforge.crystal.symmetry import SymmetryInfo, resolve_space_group, symmetry_info
from xtalforge.errors import CrystalError

__all__ = ["Crystal", "cell_volume"]

#: Distance (Å) under which a symmetry copy of an atom counts as the atom itself (special position).
SPECIAL_POSITION_TOL = 0.01


@lru_cache(maxsize=4096)
def orthogonalization_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """3×3 matrix M with Cartesian = M @ fractional (Å) for a cell (PDB convention, a along x)."""
    m = np.array(gemmi.UnitCell(*cell).orth.mat.tolist(), dtype=np.float64)
    m.setflags(write=False)
    return m


def cell_volume(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> float:
    """Unit-cell volume in Å³ from edges (Å) and angles (degrees); NaN for impossible angles."""
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    q = 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg
    return a * b * c * math.sqrt(q) if q > 0 else float("nan")


#: Relative tolerance on the metric tensor when checking a cell against the lattice of its space
#: group (published cells often carry rounding, e.g. a = 24.433, b = 24.4328 Å for a cubic cell).
METRIC_TOL = 2e-3


def _metric_fits_group(cell: tuple[float, ...], sg: gemmi.SpaceGroup) -> bool:
    """Every rotation R of the group keeps the metric tensor: RᵀGR = G within METRIC_TOL."""
    g = np.array(gemmi.UnitCell(*cell).metric_tensor().as_mat33().tolist())
    rots = symmetry_info(sg).rotations
    diff = np.einsum("sji,jk,skl->sil", rots, g, rots) - g
    return bool(np.abs(diff).max() <= METRIC_TOL * np.abs(g).max())


@dataclass(eq=False)
class Crystal:
    """A crystal structure.

    Parameters
    ----------
    cell : (a, b, c, α, β, γ) with edges in Å and angles in degrees.
    spacegroup : any symbol accepted by :func:`resolve_space_group` or a ``gemmi.SpaceGroup``.
    z : (N,) atomic numbers of the asymmetric-unit atoms (element symbols are accepted too).
    frac : (N, 3) fractional coordinates.
    u_iso : (N,) isotropic displacement parameters in Å² (B = 8π²U); default 0.
    occ : (N,) chemical occupancies in (0, 1]; default 1.
    labels : optional atom labels.
    metadata : free-form provenance (source file, generator config and seed, warnings …).

    The object is validated on construction and raises :class:`CrystalError` naming the field.
    """

    cell: tuple[float, float, float, float, float, float]
    spacegroup: gemmi.SpaceGroup
    z: np.ndarray
    frac: np.ndarray
    u_iso: np.ndarray | None = None
    occ: np.ndarray | None = None
    labels: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        src = self.metadata.get("source")
        pre = f"{src}: " if src else ""
        try:
            cell = tuple(float(x) for x in self.cell)
        except (TypeError, ValueError):
            raise CrystalError(f"{pre}cell must be six numbers, got {self.cell!r}") from None
        if len(cell) != 6 or not all(math.isfinite(x) for x in cell):
            raise CrystalError(f"{pre}cell must be six finite numbers, got {self.cell!r}")
        for name, v in zip("abc", cell[:3]):
            if v <= 0:
                raise CrystalError(f"{pre}cell edge {name} = {v} Å must be positive")
        for name, v in zip(("alpha", "beta", "gamma"), cell[3:]):
            if not 0 < v < 180:
                raise CrystalError(f"{pre}cell angle {name} = {v}° must lie in (0, 180)")
        if not cell_volume(*cell) > 0:
            raise CrystalError(f"{pre}cell angles {cell[3:]} give no positive volume")
        self.cell = cell  # type: ignore[assignment]
        try:
            self.spacegroup = resolve_space_group(self.spacegroup)
        except CrystalError as exc:
            raise CrystalError(f"{pre}{exc}") from None
        if not _metric_fits_group(cell, self.spacegroup):
            system = self.spacegroup.crystal_system_str()
            raise CrystalError(
                f"{pre}cell {cell} does not fit the {system}"
                f" lattice of space group {self.spacegroup.xhm()}"
            )
        zs = np.atleast_1d(np.asarray(self.z))
        if zs.dtype.kind in "USO":
            try:
                zs = np.array([atomic_number(str(s)) for s in zs], dtype=np.int16)
            except CrystalError as exc:
                raise CrystalError(f"{pre}z: {exc}") from None
        n = len(zs)
        if zs.dtype.kind not in "iu" or ((zs < 1) | (zs > 118)).any():
            raise CrystalError(f"{pre}z must hold atomic numbers 1..118, got {zs!r}")
        self.z = zs.astype(np.int16)
        frac = np.asarray(self.frac, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        if frac.shape != (n, 3):
            raise CrystalError(f"{pre}frac must have shape ({n}, 3), got {np.shape(self.frac)}")
        if not np.isfinite(frac).all():
            bad = int(np.argwhere(~np.isfinite(frac))[0, 0])
            raise CrystalError(f"{pre}frac: coordinate of atom {self._name(bad)} is not finite")
        self.frac = frac
        self.u_iso = self._per_atom("u_iso", self.u_iso, 0.0, n, pre)
        if (self.u_iso < 0).any():
            raise CrystalError(
                f"{pre}u_iso of atom {self._name(int(np.argmin(self.u_iso)))} is negative"
            )
        self.occ = self._per_atom("occ", self.occ, 1.0, n, pre)
        if ((self.occ <= 0) | (self.occ > 1 + 1e-6)).any():
            bad = int(np.argwhere((self.occ <= 0) | (self.occ > 1 + 1e-6))[0, 0])
            raise CrystalError(
                f"{pre}occupancy {self.occ[bad]} of atom {self._name(bad)} is outside (0, 1]"
            )
        if self.labels is not None:
            self.labels = [str(x) for x in self.labels]
            if len(self.labels) != n:
                raise CrystalError(f"{pre}labels must have {n} entries, got {len(self.labels)}")

    def _per_atom(self, name: str, value: Any, default: float, n: int, pre: str) -> np.ndarray:
        arr = np.full(n, default) if value is None else np.asarray(value, dtype=np.float64)
        arr = np.broadcast_to(arr, (n,)).astype(np.float64) if arr.ndim == 0 else arr
        if arr.shape != (n,):
            raise CrystalError(f"{pre}{name} must have shape ({n},), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise CrystalError(
                f"{pre}{name} of atom {self._name(int(np.argmin(np.isfinite(arr))))} is not finite"
            )
        return arr

    def _name(self, i: int) -> str:
        if self.labels is not None and i < len(self.labels):
            return f"{self.labels[i]} (#{i})"
        return f"#{i}"

    # ---------------------------------------------------------------- derived properties
    @property
    def unit_cell(self) -> gemmi.UnitCell:
        """The cell as a ``gemmi.UnitCell``."""
        return gemmi.UnitCell(*self.cell)

    @property
    def volume(self) -> float:
        """Unit-cell volume in Å³."""
        return cell_volume(*self.cell)

    @property
    def n_atoms(self) -> int:
        """Number of atoms in the asymmetric unit."""
        return len(self.z)

    @property
    def symmetry(self) -> SymmetryInfo:
        """Vectorised symmetry operations of the space group."""
        return symmetry_info(self.spacegroup)

    @property
    def elements(self) -> list[str]:
        """Element symbols of the asymmetric-unit atoms."""
        return [symbol(int(v)) for v in self.z]

    @property
    def orthogonalization_matrix(self) -> np.ndarray:
        """3×3 matrix M with Cartesian = M @ fractional (Å), PDB convention (a along x)."""
        return orthogonalization_matrix(self.cell)

    def site_symmetry_order(self) -> np.ndarray:
        """Order m of each atom's site-symmetry group: the cell holds |G|/m copies of the atom."""
        rots, trans = self.symmetry.all_ops()
        diff = np.matmul(self.frac, rots.transpose(0, 2, 1)) + trans[:, None, :] - self.frac
        diff -= np.rint(diff)
        cart = diff @ self.orthogonalization_matrix.T  # (n_ops, N, 3) in Å
        return ((cart * cart).sum(axis=2) < SPECIAL_POSITION_TOL**2).sum(axis=0)

    def cell_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Fractional positions of every distinct atom in the unit cell, wrapped to [0, 1).

        Returns (positions (M, 3), index (M,) of the asymmetric-unit atom each one copies).
        """
        rots, trans = self.symmetry.all_ops()
        images = (np.einsum("sij,nj->nsi", rots, self.frac) + trans[None]) % 1.0
        diff = images[:, :, None, :] - images[:, None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ self.orthogonalization_matrix.T, axis=-1)
        n_ops = images.shape[1]
        earlier = np.tril(np.ones((n_ops, n_ops), dtype=bool), k=-1)
        duplicate = ((dist < SPECIAL_POSITION_TOL) & earlier).any(axis=2)
        keep = ~duplicate
        pos = images[keep]
        pos[np.isclose(pos, 1.0, atol=1e-12)] = 0.0
        idx = np.nonzero(keep)[0]
        return pos, idx.astype(np.int64)

    def composition(self) -> dict[str, float]:
        """Unit-cell content: element symbol → number of atoms (occupancy-weighted)."""
        counts: Counter[str] = Counter()
        per_site = self.symmetry.n_ops / self.site_symmetry_order()
        for el, w, o in zip(self.elements, per_site, self.occ):
            counts[el] += float(w * o)
        return dict(counts)

    # ---------------------------------------------------------------- transformations
    def expand_p1(self) -> Crystal:
        """The same structure in space group P1 with every atom of the unit cell listed."""
        pos, idx = self.cell_positions()
        labels = None
        if self.labels is not None:
            seen: Counter[int] = Counter()
            labels = []
            for i in idx:
                seen[int(i)] += 1
                labels.append(f"{self.labels[i]}_{seen[int(i)]}")
        meta = dict(self.metadata, expanded_from=self.spacegroup.xhm())
        return Crystal(
            self.cell,
            gemmi.SpaceGroup("P 1"),
            self.z[idx],
            pos,
            self.u_iso[idx],
            self.occ[idx],
            labels,
            meta,
        )

    def copy(self, **changes: Any) -> Crystal:
        """A copy with some fields replaced (validated again)."""
        kw = dict(
            cell=self.cell,
            spacegroup=self.spacegroup,
            z=self.z.copy(),
            frac=self.frac.copy(),
            u_iso=self.u_iso.copy(),
            occ=self.occ.copy(),
            labels=None if self.labels is None else list(self.labels),
            metadata=dict(self.metadata),
        )
        kw.update(changes)
        return Crystal(**kw)

    def __repr__(self) -> str:
        a, b, c, al, be, ga = self.cell
        return (
            f"Crystal({self.spacegroup.xhm()!r}, cell=({a:.4g}, {b:.4g}, {c:.4g}, {al:.4g}, "
            f"{be:.4g}, {ga:.4g}), n_atoms={self.n_atoms})"
        )

    # ---------------------------------------------------------------- file I/O
    @classmethod
    def from_cif(
        cls, path: str | Path, block: str | int | None = None, default_u_iso: float = 0.025
    ) -> Crystal:
        """Read a small-molecule CIF (see :func:`xtalforge.crystal.cif_io.read_cif`)."""
        from xtalforge.crystal.cif_io import read_cif

        return read_cif(path, block=block, default_u_iso=default_u_iso)

    @classmethod
    def from_pdb(cls, path: str | Path) -> Crystal:
        """Read a macromolecular PDB or mmCIF model (first model, all alternate conformations)."""
        from xtalforge.crystal.pdb_io import read_pdb

        return read_pdb(path)

    @classmethod
    def from_gemmi(
        cls, obj: gemmi.SmallStructure | gemmi.Structure, source: str | None = None
    ) -> Crystal:
        """Convert a ``gemmi.SmallStructure`` or ``gemmi.Structure`` (first model)."""
        from xtalforge.crystal.cif_io import from_small_structure
        from xtalforge.crystal.pdb_io import from_structure

        if isinstance(obj, gemmi.SmallStructure):
            return from_small_structure(obj, source=source)
        if isinstance(obj, gemmi.Structure):
            return from_structure(obj, source=source)
        raise CrystalError(f"cannot convert {type(obj).__name__} to a Crystal")

    def to_cif(self, path: str | Path | None = None, name: str | None = None) -> str:
        """Write a small-molecule CIF; returns the text (and writes it when ``path`` is given)."""
        from xtalforge.crystal.cif_io import write_cif

        return write_cif(self, path, name=name)
