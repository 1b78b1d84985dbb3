"""Which trained models help a data set, and how they enter charge flipping (``solve --model``,
``solve --ai``).

Two kinds of model take part: a learned density-modification step (a map model, used as
charge flipping's ``dm_model``) and an amplitude-extension model (its predicted shell is a
restrained free-lunch prior, ``prior_below``). ``--ai`` picks among the shipped models by the
data's resolution (:func:`ai_route`): atomic data need no model; coarser data get every
shipped model whose training range covers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtalforge.errors import XtalforgeError
from xtalforge.phasing.charge_flipping import DEFAULT_PRIOR_WEIGHT
from xtalforge.phasing.solve import SolveData
from xtalforge.tasks.checkpoints import load_checkpoint
from xtalforge.tasks.shipped import shipped_cards
from xtalforge.workflows.solve_benchmark import (
    check_extension,
    dm_resolutions,
    model_extended,
    model_range,
    modifies_maps,
    phases_directly,
)

__all__ = ["AI_ATOMIC_D", "Route", "ai_route", "route_for_models"]

#: Data to this resolution (Å) or finer are phased without a model by ``--ai``: charge
#: flipping alone solves the development structures there (BENCHMARKS.md).
AI_ATOMIC_D = 1.2
#: How far (relative) the data's d_min may lie from an amplitude model's d_low.
AMP_SLACK = 0.03


@dataclass
class Route:
    """How a data set is phased: the models used (names or paths, loaded), and why."""

    name: str
    reason: str
    dm: Any = None
    amplitude: Any = None
    models: list[str] = field(default_factory=list)

    def prepare(self, data: SolveData, opts: dict[str, Any]) -> tuple[SolveData, dict[str, Any]]:
        """The data to solve and the solver options of this route: the amplitude model's shell
        added as a prior, the map model as ``dm_model``."""
        opts = dict(opts)
        if self.amplitude is not None:
            d_low, _ = model_range(self.amplitude)
            data = model_extended(data, self.amplitude)
            opts.update(prior_below=d_low, prior_weight=DEFAULT_PRIOR_WEIGHT, d_ext=None)
        if self.dm is not None:
            opts["dm_model"] = self.dm
        return data, opts


def _amp_fits(module: Any, d_min: float) -> bool:
    d_low, _ = model_range(module)
    return abs(d_min - d_low) <= AMP_SLACK * d_low


def route_for_models(models: list[str] | list[Path] | list[str | Path], d_min: float) -> Route:
    """The route of models given by the user (paths or shipped names; at most one map model
    and one amplitude model), checked against data to ``d_min`` Å."""
    dm = amp = None
    for m in models:
        module = load_checkpoint(m)
        if modifies_maps(module):
            if dm is not None:
                raise XtalforgeError("--model: give at most one density-modification model")
            if not dm_resolutions(module, [d_min]):
                raise XtalforgeError(
                    f"{m}: a density-modification model for data to {module.d_low:g}–"
                    f"{module.d_low_max:g} Å; these data reach {d_min:.2f} Å"
                )
            dm = module
        elif phases_directly(module):
            raise XtalforgeError(
                f"{m}: a {module.task_name} model phases alone; `solve` cannot use it"
            )
        else:
            if amp is not None:
                raise XtalforgeError("--model: give at most one amplitude-extension model")
            d_low, d_high = model_range(module)
            if not _amp_fits(module, d_min):
                raise XtalforgeError(
                    f"{m}: an amplitude model extending data to {d_low:g} Å; these data reach "
                    f"{d_min:.2f} Å (cut them with --d-min {d_low:g}, or use another model)"
                )
            check_extension((d_low, d_high), module)
            amp = module
    parts = [p for p, m in (("dm", dm), ("amplitude prior", amp)) if m is not None]
    name = " + ".join(parts) or "classical"
    return Route(name, "the models given", dm, amp, [str(m) for m in models])


def ai_route(d_min: float) -> Route:
    """The best shipped route for data to ``d_min`` Å: none at :data:`AI_ATOMIC_D` or finer;
    else every shipped map model and amplitude model whose training range covers the data."""
    if d_min <= AI_ATOMIC_D:
        return Route(
            "classical",
            f"data to {d_min:.2f} Å: atomic enough for charge flipping alone (≤ {AI_ATOMIC_D} Å)",
        )
    chosen: list[str] = []
    dm = amp = None
    for card in shipped_cards():
        if card.task == "density_modification" and dm is None:
            module = load_checkpoint(card.name)
            if dm_resolutions(module, [d_min]):
                dm = module
                chosen.append(card.name)
        elif card.task in ("resolution", "patterson_sr") and amp is None:
            module = load_checkpoint(card.name)
            if _amp_fits(module, d_min):
                amp = module
                chosen.append(card.name)
    if not chosen:
        return Route(
            "classical",
            f"no shipped model covers data to {d_min:.2f} Å (`xtalforge models list`)",
        )
    parts = [p for p, m in (("dm", dm), ("amplitude prior", amp)) if m is not None]
    return Route(
        " + ".join(parts),
        f"data to {d_min:.2f} Å; shipped models trained for it: {', '.join(chosen)}",
        dm,
        amp,
        chosen,
    )
