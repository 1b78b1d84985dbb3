"""Task ``patterson_density``: Patterson → density of fragments in P1 boxes (and the ``phase``
hook: phases from the predicted density)."""

from xtalforge.tasks.patterson_density.maps import centre_fragment, map_pair, other_hand
from xtalforge.tasks.patterson_density.module import PattersonDensity, hand_loss
from xtalforge.tasks.patterson_density.task import (
    TASK,
    PattersonDensityConfig,
    PattersonDensityTask,
)

__all__ = [
    "TASK",
    "PattersonDensity",
    "PattersonDensityConfig",
    "PattersonDensityTask",
    "centre_fragment",
    "hand_loss",
    "map_pair",
    "other_hand",
]
