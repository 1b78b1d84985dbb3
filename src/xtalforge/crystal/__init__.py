"""Crystal model, symmetry helpers and structure-file I/O."""

from xtalforge.crystal.model import Crystal, cell_volume
from xtalforge.crystal.structure_file import holds_a_model, read_structure
from xtalforge.crystal.symmetry import resolve_space_group, space_group_from_ops, symmetry_info

__all__ = [
    "Crystal",
    "cell_volume",
    "holds_a_model",
    "read_structure",
    "resolve_space_group",
    "space_group_from_ops",
    "symmetry_info",
]
