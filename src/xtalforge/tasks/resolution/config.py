"""The settings of task ``resolution``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from xtalforge.tasks.base import TaskConfig

__all__ = ["ResolutionConfig"]


class ResolutionConfig(TaskConfig):
    """Amplitudes of the shell d_high ≤ d < d_low from those with d ≥ d_low (Å)."""

    name: Literal["resolution"] = "resolution"
    d_low: float = Field(1.2, gt=0)  # Å: known reflections have d ≥ d_low
    d_high: float = Field(0.8, gt=0)  # Å: targets have d_high ≤ d < d_low
    normalization: Literal["max", "e", "wilson"] = "max"
    # "mse" pools the squared error over the batch; "relative_mse" divides each structure's by
    # its Σ truth² first, so structures whose high-resolution intensity is far from the Wilson
    # extrapolation (bonded molecules, real cells) do not dominate the gradient
    loss: Literal["mse", "relative_mse"] = "mse"
    loss_on_known: bool = False  # also penalise the known reflections (the thesis did)
    n_shells: int = Field(5, ge=1)  # resolution shells for R per shell

    @model_validator(mode="after")
    def _order(self) -> ResolutionConfig:
        if not self.d_low > self.d_high:
            raise ValueError(f"d_low ({self.d_low} Å) must exceed d_high ({self.d_high} Å)")
        return self
