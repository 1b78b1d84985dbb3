"""xtalforge: synthetic crystals, diffraction data and deep learning for the phase problem."""

from importlib.metadata import PackageNotFoundError, version

from xtalforge.crystal import CellSymmetry, Crystal, resolve_space_group
from xtalforge.diffraction import (
    HKLGrid,
    Reflections,
    density_map,
    normalize,
    patterson_map,
    reflections,
    structure_factors,
    structure_factors_batch,
    wilson_fit,
)
from xtalforge.errors import CrystalError, ReflectionError, ReflectionFileError, XtalforgeError
from xtalforge.io import read_reflections, read_structure, write_cif

try:
    __version__ = version("xtalforge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "CellSymmetry",
    "Crystal",
    "CrystalError",
    "HKLGrid",
    "ReflectionError",
    "ReflectionFileError",
    "Reflections",
    "XtalforgeError",
    "__version__",
    "density_map",
    "normalize",
    "patterson_map",
    "read_reflections",
    "read_structure",
    "reflections",
    "resolve_space_group",
    "structure_factors",
    "structure_factors_batch",
    "wilson_fit",
    "write_cif",
]
