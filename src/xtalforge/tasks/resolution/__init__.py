"""Task ``resolution``: predict the amplitudes of a missing high-resolution shell from the
measured low-resolution ones (items, module, evaluation, and the ``extend_amplitudes`` hook)."""

from xtalforge.tasks.resolution.config import ResolutionConfig
from xtalforge.tasks.resolution.extend import extend_amplitudes
from xtalforge.tasks.resolution.items import (
    Extension,
    collate_reflections,
    dataset_grid,
    extension_dataset,
    items_from_crystals,
    make_item,
)
from xtalforge.tasks.resolution.module import ResolutionExtension, compose
from xtalforge.tasks.resolution.task import TASK, ResolutionTask

__all__ = [
    "TASK",
    "Extension",
    "ResolutionConfig",
    "ResolutionExtension",
    "ResolutionTask",
    "collate_reflections",
    "compose",
    "dataset_grid",
    "extend_amplitudes",
    "extension_dataset",
    "items_from_crystals",
    "make_item",
]
