"""Task ``density_modification``: σ-scaled map of the measured amplitudes with partly wrong
phases → the true map to d_high, for charge flipping's ``dm_model``."""

from xtalforge.tasks.density_modification.maps import MapPair, map_pair, perturbed_phases
from xtalforge.tasks.density_modification.module import DensityModification, shell_phase_fraction
from xtalforge.tasks.density_modification.task import (
    TASK,
    DensityModificationConfig,
    DensityModificationTask,
)

__all__ = [
    "TASK",
    "DensityModification",
    "DensityModificationConfig",
    "DensityModificationTask",
    "MapPair",
    "map_pair",
    "perturbed_phases",
    "shell_phase_fraction",
]
