"""Trainable tasks, one folder each (``resolution``, ``patterson_sr``, ``patterson_density``,
``phase``), behind one protocol (:mod:`xtalforge.tasks.base`) and one runner
(:mod:`xtalforge.tasks.runner`): validated run configs, checkpoints, metrics, prediction."""

from xtalforge.tasks.base import DataSource, Task, TaskConfig, TaskModule
from xtalforge.tasks.checkpoints import describe_checkpoint, load_checkpoint
from xtalforge.tasks.config import ConfigError, RunConfig, load_run_config
from xtalforge.tasks.predict import predict_hkl
from xtalforge.tasks.registry import TASKS, get_task
from xtalforge.tasks.runner import evaluate, prepare_data, train

__all__ = [
    "TASKS",
    "ConfigError",
    "DataSource",
    "RunConfig",
    "Task",
    "TaskConfig",
    "TaskModule",
    "describe_checkpoint",
    "evaluate",
    "get_task",
    "load_checkpoint",
    "load_run_config",
    "predict_hkl",
    "prepare_data",
    "train",
]
