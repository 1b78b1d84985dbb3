"""A unit cell with its space group: :class:`CellSymmetry`, the part of a structure that a
reflection file, a SHELX .ins or a dataset row knows before any atom is placed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import gemmi
import numpy as np

from xtalforge.crystal.symmetry import SymmetryInfo, resolve_space_group, symmetry_info
from xtalforge.errors import CrystalError

__all__ = [
    "METRIC_TOL",
    "CellSymmetry",
    "SpaceGroupLike",
    "cell_volume",
    "metric_tensor",
    "orthogonalization_matrix",
]

#: Relative tolerance on the metric tensor when checking a cell against the lattice of its space
#: group (published cells often carry rounding, e.g. a = 24.433, b = 24.4328 Å for a cubic cell).
METRIC_TOL = 2e-3


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


def metric_tensor(cell: Sequence[float]) -> np.ndarray:
    """Real-space metric tensor G (Å²) of a cell (Å, degrees): Gᵢⱼ = aᵢ·aⱼ."""
    a, b, c, al, be, ga = cell
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    return np.array(
        [
            [a * a, a * b * cg, a * c * cb],
            [a * b * cg, b * b, b * c * ca],
            [a * c * cb, b * c * ca, c * c],
        ]
    )


def _metric_fits_group(cell: tuple[float, ...], sg: gemmi.SpaceGroup) -> bool:
    """Every rotation R of the group keeps the metric tensor: RᵀGR = G within METRIC_TOL."""
    rots = symmetry_info(sg).metric_rotations  # the identity and −R add no condition
    if not len(rots):
        return True
    g = metric_tensor(cell)
    diff = rots.transpose(0, 2, 1) @ g @ rots - g
    return bool(np.abs(diff).max() <= METRIC_TOL * np.abs(g).max())


def _checked_cell(cell: object, pre: str) -> tuple[float, float, float, float, float, float]:
    try:
        values = tuple(float(x) for x in cell)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise CrystalError(f"{pre}cell must be six numbers, got {cell!r}") from None
    if len(values) != 6 or not all(math.isfinite(x) for x in values):
        raise CrystalError(f"{pre}cell must be six finite numbers, got {cell!r}")
    for name, v in zip("abc", values[:3], strict=True):
        if v <= 0:
            raise CrystalError(f"{pre}cell edge {name} = {v} Å must be positive")
    for name, v in zip(("alpha", "beta", "gamma"), values[3:], strict=True):
        if not 0 < v < 180:
            raise CrystalError(f"{pre}cell angle {name} = {v}° must lie in (0, 180)")
    if not cell_volume(*values) > 0:
        raise CrystalError(f"{pre}cell angles {values[3:]} give no positive volume")
    return values[0], values[1], values[2], values[3], values[4], values[5]


#: A space group as given: a symbol (H-M or Hall), an IT number, or a ``gemmi.SpaceGroup``.
SpaceGroupLike = str | int | gemmi.SpaceGroup


class CellSymmetry:
    """A unit cell and its space group, validated together.

    Parameters
    ----------
    cell : (a, b, c, α, β, γ) with edges in Å and angles in degrees.
    spacegroup : any symbol accepted by :func:`resolve_space_group` or a ``gemmi.SpaceGroup``.

    Raises :class:`CrystalError` for impossible cells, unknown groups, and cells whose metric
    does not fit the group's lattice (within :data:`METRIC_TOL`).
    """

    cell: tuple[float, float, float, float, float, float]
    spacegroup: gemmi.SpaceGroup

    def __init__(self, cell: Sequence[float], spacegroup: SpaceGroupLike) -> None:
        self._set_cell_symmetry(cell, spacegroup, "")

    def _set_cell_symmetry(
        self, cell: Sequence[float], spacegroup: SpaceGroupLike, pre: str
    ) -> None:
        self.cell = _checked_cell(cell, pre)
        try:
            self.spacegroup = resolve_space_group(spacegroup)
        except CrystalError as exc:
            raise CrystalError(f"{pre}{exc}") from None
        if not _metric_fits_group(self.cell, self.spacegroup):
            system = self.spacegroup.crystal_system_str()
            raise CrystalError(
                f"{pre}cell {self.cell} does not fit the {system}"
                f" lattice of space group {self.spacegroup.xhm()}"
            )

    def __repr__(self) -> str:
        return f"CellSymmetry({self.spacegroup.xhm()!r}, cell={self.cell})"

    @property
    def unit_cell(self) -> gemmi.UnitCell:
        """The cell as a ``gemmi.UnitCell``."""
        return gemmi.UnitCell(*self.cell)

    @property
    def volume(self) -> float:
        """Unit-cell volume in Å³."""
        return cell_volume(*self.cell)

    @property
    def symmetry(self) -> SymmetryInfo:
        """Vectorised symmetry operations of the space group."""
        return symmetry_info(self.spacegroup)

    @property
    def orthogonalization_matrix(self) -> np.ndarray:
        """3×3 matrix M with Cartesian = M @ fractional (Å), PDB convention (a along x)."""
        return orthogonalization_matrix(self.cell)
