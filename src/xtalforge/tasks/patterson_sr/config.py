"""The settings of task ``patterson_sr``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from xtalforge.tasks.base import TaskConfig

__all__ = ["MapShape", "PattersonSRConfig", "check_shape"]

MapShape = tuple[int, int, int]
#: Points per axis a map grid may have.
MAP_POINTS = (4, 128)


def check_shape(shape: MapShape) -> None:
    """Raise ``ValueError`` for a map grid outside :data:`MAP_POINTS` points per axis."""
    if min(shape) < MAP_POINTS[0] or max(shape) > MAP_POINTS[1]:
        raise ValueError(
            f"map shape {shape} must have {MAP_POINTS[0]}–{MAP_POINTS[1]} points per axis"
        )


class PattersonSRConfig(TaskConfig):
    """The Patterson map to d_high on ``high_shape`` from the one to d_low on ``low_shape``
    (both [0, 1] scaled; the thesis appendix's 12³ and 24³ grids by default)."""

    name: Literal["patterson_sr"] = "patterson_sr"
    d_low: float = Field(1.2, gt=0)  # Å: the input map's resolution
    d_high: float = Field(0.8, gt=0)  # Å: the target map's resolution
    low_shape: MapShape = (12, 12, 12)
    high_shape: MapShape = (24, 24, 24)

    @model_validator(mode="after")
    def _valid(self) -> PattersonSRConfig:
        if not self.d_low > self.d_high:
            raise ValueError(f"d_low ({self.d_low} Å) must exceed d_high ({self.d_high} Å)")
        check_shape(self.low_shape)
        check_shape(self.high_shape)
        return self
