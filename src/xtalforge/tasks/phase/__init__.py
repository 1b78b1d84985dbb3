"""Task ``phase``: signs of centrosymmetric structure factors from |E| with phase recycling
(and the ``phase`` hook)."""

from xtalforge.tasks.phase.module import PhaseSign, predict_signs
from xtalforge.tasks.phase.signs import origin_patterns, sign_item
from xtalforge.tasks.phase.task import TASK, PhaseConfig, PhaseTask, solve_signs

__all__ = [
    "TASK",
    "PhaseConfig",
    "PhaseSign",
    "PhaseTask",
    "origin_patterns",
    "predict_signs",
    "sign_item",
    "solve_signs",
]
