"""The tasks by name: one line each (name → the module holding its ``TASK``)."""

from __future__ import annotations

import importlib

from xtalforge.errors import XtalforgeError
from xtalforge.tasks.base import Task

__all__ = ["TASKS", "get_task"]

#: task name → module with its :class:`~xtalforge.tasks.base.Task` object ``TASK``
TASKS: dict[str, str] = {
    "resolution": "xtalforge.tasks.resolution",
    "patterson_sr": "xtalforge.tasks.patterson_sr",
    "patterson_density": "xtalforge.tasks.patterson_density",
    "phase": "xtalforge.tasks.phase",
    "density_modification": "xtalforge.tasks.density_modification",
}


def get_task(name: str) -> Task:
    """The task registered as ``name``."""
    if name not in TASKS:
        raise XtalforgeError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    task: Task = importlib.import_module(TASKS[name]).TASK
    return task
