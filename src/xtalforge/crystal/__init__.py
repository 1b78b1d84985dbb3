"""The crystal model: a unit cell with its space group (:class:`CellSymmetry`), asymmetric-unit
atoms (:class:`Crystal`), vectorised symmetry, elements and form factors, example structures.
Files are read and written by :mod:`xtalforge.io`."""

from xtalforge.crystal.cell import CellSymmetry, cell_volume, orthogonalization_matrix
from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import resolve_space_group, space_group_from_ops, symmetry_info

__all__ = [
    "CellSymmetry",
    "Crystal",
    "cell_volume",
    "orthogonalization_matrix",
    "resolve_space_group",
    "space_group_from_ops",
    "symmetry_info",
]
