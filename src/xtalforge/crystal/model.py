"""The :class:`Crystal` data model: a unit cell, a space group and asymmetric-unit atoms."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import gemmi
import numpy as np
from numpy.typing import ArrayLike

from xtalforge.crystal.cell import (
    CellSymmetry,
    SpaceGroupLike,
    cell_volume,
    orthogonalization_matrix,
)
from xtalforge.crystal.elements import atomic_number, symbol
from xtalforge.errors import CrystalError

__all__ = ["SPECIAL_POSITION_TOL", "Crystal", "cell_volume", "orthogonalization_matrix"]

#: Distance (Å) under which a symmetry copy of an atom counts as the atom itself (special position).
SPECIAL_POSITION_TOL = 0.01
#: Occupancies up to 1 + OCC_SLACK count as 1 (rounding in refined values).
OCC_SLACK = 1e-6


class Crystal(CellSymmetry):
    """A crystal structure: a :class:`CellSymmetry` with asymmetric-unit atoms.

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

    z: np.ndarray  # (N,) int16
    frac: np.ndarray  # (N, 3) float64
    u_iso: np.ndarray  # (N,) Å²
    occ: np.ndarray  # (N,)
    labels: list[str] | None
    metadata: dict[str, Any]

    def __init__(
        self,
        cell: Sequence[float],
        spacegroup: SpaceGroupLike,
        z: ArrayLike,
        frac: ArrayLike,
        u_iso: ArrayLike | None = None,
        occ: ArrayLike | None = None,
        labels: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.metadata = {} if metadata is None else metadata
        self.labels = None if labels is None else [str(x) for x in labels]
        src = self.metadata.get("source")
        pre = f"{src}: " if src else ""
        self._set_cell_symmetry(cell, spacegroup, pre)
        self._set_atoms(z, frac, u_iso, occ, pre)

    @classmethod
    def from_valid(
        cls,
        cell: tuple[float, float, float, float, float, float],
        spacegroup: gemmi.SpaceGroup,
        z: np.ndarray,
        frac: np.ndarray,
        u_iso: np.ndarray,
        metadata: dict[str, Any],
    ) -> Crystal:
        """A Crystal from fields that are valid by construction, without checking them again:
        for code that builds structures which could not fail validation (the generator: a cell
        made for its lattice, placed atoms, U ≥ 0). ``cell`` six floats (Å, degrees) that fit
        the group's lattice, ``z`` (N,) int16 in 1..118, ``frac`` (N, 3) finite float64,
        ``u_iso`` (N,) finite float64 ≥ 0 Å²; occupancies 1, no labels. Anything else goes
        through the constructor."""
        self = cls.__new__(cls)
        self.cell, self.spacegroup = cell, spacegroup
        self.z, self.frac, self.u_iso = z, frac, u_iso
        self.occ = np.ones(len(z))
        self.labels, self.metadata = None, metadata
        return self

    def _set_atoms(
        self,
        z: ArrayLike,
        frac_in: ArrayLike,
        u_iso: ArrayLike | None,
        occ: ArrayLike | None,
        pre: str,
    ) -> None:
        zs = np.atleast_1d(np.asarray(z))
        if zs.dtype.kind in "USO":
            try:
                zs = np.array([atomic_number(str(s)) for s in zs], dtype=np.int16)
            except CrystalError as exc:
                raise CrystalError(f"{pre}z: {exc}") from None
        n = len(zs)
        if zs.dtype.kind not in "iu" or ((zs < 1) | (zs > 118)).any():
            raise CrystalError(f"{pre}z must hold atomic numbers 1..118, got {zs!r}")
        self.z = zs.astype(np.int16)
        frac = np.asarray(frac_in, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        if frac.shape != (n, 3):
            raise CrystalError(f"{pre}frac must have shape ({n}, 3), got {np.shape(frac_in)}")
        if not np.isfinite(frac).all():
            bad = int(np.argwhere(~np.isfinite(frac))[0, 0])
            raise CrystalError(f"{pre}frac: coordinate of atom {self._name(bad)} is not finite")
        self.frac = frac
        self.u_iso = self._per_atom("u_iso", u_iso, 0.0, n, pre)
        if (self.u_iso < 0).any():
            raise CrystalError(
                f"{pre}u_iso of atom {self._name(int(np.argmin(self.u_iso)))} is negative"
            )
        self.occ = self._per_atom("occ", occ, 1.0, n, pre)
        if ((self.occ <= 0) | (self.occ > 1 + OCC_SLACK)).any():
            bad = int(np.argwhere((self.occ <= 0) | (self.occ > 1 + OCC_SLACK))[0, 0])
            raise CrystalError(
                f"{pre}occupancy {self.occ[bad]} of atom {self._name(bad)} is outside (0, 1]"
            )
        if self.labels is not None and len(self.labels) != n:
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
    def n_atoms(self) -> int:
        """Number of atoms in the asymmetric unit."""
        return len(self.z)

    @property
    def elements(self) -> list[str]:
        """Element symbols of the asymmetric-unit atoms."""
        return [symbol(int(v)) for v in self.z]

    def site_symmetry_order(self) -> np.ndarray:
        """Order m of each atom's site-symmetry group: the cell holds |G|/m copies of the atom."""
        from xtalforge.crystal._kernels import site_symmetry_orders

        rots, trans = self.symmetry.all_ops()
        return site_symmetry_orders(
            self.frac, rots, trans, self.orthogonalization_matrix, SPECIAL_POSITION_TOL
        )

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
        counts: dict[str, float] = {}
        per_site = self.symmetry.n_ops / self.site_symmetry_order()
        for el, w, o in zip(self.elements, per_site, self.occ):
            counts[el] = counts.get(el, 0.0) + float(w * o)
        return counts

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
        kw: dict[str, Any] = dict(
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
