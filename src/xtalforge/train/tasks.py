"""The training tasks by name: each names its LightningModule and the module that builds it,
its data and its evaluation (``make_module``, ``make_datamodule``, ``evaluate``).

``resolution`` (amplitude extension) lives in :mod:`xtalforge.train.resolution` and
:mod:`xtalforge.train.run`; the others in :mod:`xtalforge.train.patterson`,
:mod:`xtalforge.train.density` and :mod:`xtalforge.train.phase`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from xtalforge.errors import XtalforgeError

__all__ = ["TASKS", "task_api", "task_class"]

#: task name → (module, LightningModule class name)
TASKS: dict[str, tuple[str, str]] = {
    "resolution": ("xtalforge.train.resolution", "ResolutionExtension"),
    "patterson_sr": ("xtalforge.train.patterson", "PattersonSR"),
    "patterson_density": ("xtalforge.train.density", "PattersonDensity"),
    "phase": ("xtalforge.train.phase", "PhaseSign"),
}


def task_api(name: str) -> ModuleType:
    """The module implementing task ``name``."""
    if name not in TASKS:
        raise XtalforgeError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name][0])


def task_class(name: str) -> type:
    """The LightningModule class of task ``name``."""
    return getattr(task_api(name), TASKS[name][1])
