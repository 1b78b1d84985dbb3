"""Task ``patterson_sr``: the Patterson map to d_high from the one to d_low, and the way back to
the amplitudes of the target shell (the ``extend_amplitudes`` hook)."""

from xtalforge.tasks.patterson_sr.config import PattersonSRConfig
from xtalforge.tasks.patterson_sr.maps import amplitudes_from_patterson, patterson_pair
from xtalforge.tasks.patterson_sr.module import PattersonSR
from xtalforge.tasks.patterson_sr.task import TASK, PattersonSRTask

__all__ = [
    "TASK",
    "PattersonSR",
    "PattersonSRConfig",
    "PattersonSRTask",
    "amplitudes_from_patterson",
    "patterson_pair",
]
