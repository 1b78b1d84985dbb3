"""Diffraction core: reflections, structure factors, E values, maps and hkl-grid tensors."""

from xtalforge.diffraction.batch import structure_factors_batch
from xtalforge.diffraction.hkl_grid import DenseHKL, HKLGrid
from xtalforge.diffraction.maps import auto_grid_shape, density_map, grid_shape, patterson_map
from xtalforge.diffraction.reflections import Reflections, d_spacing, reflections
from xtalforge.diffraction.structure_factors import structure_factors
from xtalforge.diffraction.wilson import expected_intensity, normalize, wilson_fit

__all__ = [
    "DenseHKL",
    "HKLGrid",
    "Reflections",
    "auto_grid_shape",
    "d_spacing",
    "density_map",
    "expected_intensity",
    "grid_shape",
    "normalize",
    "patterson_map",
    "reflections",
    "structure_factors",
    "structure_factors_batch",
    "wilson_fit",
]
