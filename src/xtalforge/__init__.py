"""xtalforge: synthetic crystals, diffraction data and deep learning for the phase problem."""

from importlib.metadata import PackageNotFoundError, version

from xtalforge.crystal import Crystal, resolve_space_group
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

try:
    __version__ = version("xtalforge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
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
    "reflections",
    "resolve_space_group",
    "structure_factors",
    "structure_factors_batch",
    "wilson_fit",
]
