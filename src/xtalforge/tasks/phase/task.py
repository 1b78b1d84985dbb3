"""Task ``phase``: direct phase prediction for centrosymmetric structures, PhAI-style.

Every reflection of a centrosymmetric structure (inversion centre at the origin) has phase 0 or
π: a sign. :class:`xtalforge.models.PhaseNet` reads |E| and the current sign estimate on the
hkl grid and gives the logit of sign +1 per reflection. *Phase recycling*: the expected signs
tanh(logit / 2) are fed back as the next estimate — 1…``recycles`` cycles in training (random
per step, gradients through the last only), ``inference_cycles`` cycles from
``inference_starts`` starts (zeros, then random signs) at inference, keeping the candidate with
the best figure of merit, the |E|-weighted mean confidence Σ|E| |tanh(logit/2)| / Σ|E| (needs no
truth).

The loss is the |E|-weighted binary cross-entropy minimised over the permissible origin shifts
of the space group (s ∈ {0, ½}³ with (I − R)s a lattice vector: signs change by (−1)^{2h·s}), so
any of the equivalent origins is a right answer. A structure is solved when the map CC of its
predicted phases (:func:`xtalforge.phasing.score.score_phases`, at the best permissible origin)
is ≥ 0.8.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field

from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.data.items import evaluation_structures, generated_datamodule
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.errors import XtalforgeError
from xtalforge.generate.config import load_config
from xtalforge.phasing.score import score_phases
from xtalforge.tasks.base import DataSource, Evaluation, Task, TaskConfig, TaskModule, headline
from xtalforge.tasks.phase.module import PhaseSign, predict_signs
from xtalforge.tasks.phase.signs import exact_item, invariant_accuracy, item_from_crystal, task_grid

if TYPE_CHECKING:
    from xtalforge.tasks.config import RunConfig

__all__ = ["TASK", "PhaseConfig", "PhaseTask", "evaluate", "solve_signs"]


class PhaseConfig(TaskConfig):
    """Signs of the centrosymmetric structure factors to d_high from |E|."""

    name: Literal["phase"] = "phase"
    d_high: float = Field(0.8, gt=0)  # Å
    recycles: int = Field(3, ge=1)  # training: 1…recycles cycles per step
    inference_cycles: int = Field(10, ge=1)
    inference_starts: int = Field(4, ge=1)


class PhaseTask(Task):
    name = "phase"
    config = PhaseConfig
    module = PhaseSign
    models = ("phai",)
    sources = ("generator",)

    def build_module(
        self, cfg: RunConfig, source: DataSource, domain: dict[str, Any] | None
    ) -> TaskModule:
        grid = task_grid(source.generator, cfg.task.d_high)  # type: ignore[attr-defined]
        groups = [resolve_space_group(s).hall for s in load_config(source.generator).spacegroups]
        return PhaseSign(
            cfg.model.model_dump(),
            cfg.task.model_dump(),
            cfg.optim.model_dump(),
            cfg.trainer.max_epochs,
            source.record(),
            {"lower": list(grid.lower), "shape": list(grid.shape), "halls": groups},
            domain,
        )

    def build_datamodule(
        self, cfg: RunConfig, source: DataSource, module: TaskModule
    ) -> L.LightningDataModule:
        d_high = cfg.task.d_high  # type: ignore[attr-defined]
        grid = task_grid(source.generator, d_high)
        d = cfg.data
        return generated_datamodule(
            source.generator,
            source.lengths,
            cfg.seed,
            d.batch_size,
            d.num_workers,
            make=functools.partial(item_from_crystal, grid=grid, d_high=d_high),
        )

    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        assert isinstance(module, PhaseSign)
        return evaluate(module, data, split, limit)


def solve_signs(module: PhaseSign, crystal: Crystal, seed: int = 0) -> dict[str, Any]:
    """Predict and score one structure: map CC of the predicted and of random signs."""
    d_high = module.task["d_high"]
    halls = module.hparams["grid"].get("halls") or []
    if halls and crystal.spacegroup.hall not in halls:
        raise XtalforgeError(
            f"space group {crystal.spacegroup.xhm()} is not one the model was "
            "trained on (its hkl grid holds another asymmetric unit)"
        )
    refl, f = calculated_data(crystal, d_high)
    item = exact_item(crystal, refl, f, module.grid)
    signs, fom = predict_signs(
        module, item, module.task["inference_cycles"], module.task["inference_starts"], seed
    )
    idx = module.grid.index(refl.hkl)
    pred = signs.numpy()[idx]
    amp, true_phi = np.abs(f), np.where(f.real >= 0, 0.0, np.pi)
    score = score_phases(refl, amp, true_phi, np.where(pred > 0, 0.0, np.pi))
    rng = np.random.default_rng(seed)
    rand = score_phases(refl, amp, true_phi, rng.choice([0.0, np.pi], len(amp)))
    batch = {k: (v[None] if torch.is_tensor(v) else v) for k, v in item.items()}
    acc = float(invariant_accuracy(signs[None, None], batch)[0])
    coin = torch.where(
        torch.rand(signs.shape, generator=torch.Generator().manual_seed(seed)) < 0.5, -1.0, 1.0
    )
    acc_random = float(invariant_accuracy(coin[None, None], batch)[0])
    return {
        "cc": score.cc,
        "phase_error": score.phase_error,
        "solved": score.solved,
        "cc_random": rand.cc,
        "solved_random": rand.solved,
        "accuracy": acc,
        "accuracy_random": acc_random,
        "fom": fom,
        "n_reflections": len(refl),
        "n_atoms": len(crystal.z),
    }


def evaluate(
    module: PhaseSign, data: Path | None, split: str | None = "test", limit: int | None = None
) -> Evaluation:
    """Solved fraction (map CC ≥ 0.8) of the run's generated test structures (or of the CIFs
    in ``data`` whose space group and cell fit the model's grid; the rest are reported and
    skipped) beside random signs."""
    rows: list[dict[str, Any]] = []
    for k, (name, crystal) in enumerate(evaluation_structures(module.data_source, data, limit)):
        try:
            row = solve_signs(module, crystal, seed=k)
        except XtalforgeError as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        rows.append({"id": name, **row})
    if not rows:
        raise XtalforgeError("no structure fits the model (space group, cell and resolution)")
    summary = {
        **headline(
            "solved_fraction",
            np.mean([r["solved"] for r in rows]),
            "higher",
            np.mean([r["solved_random"] for r in rows]),
            "random signs",
        ),
        "median_cc": float(np.median([r["cc"] for r in rows])),
        "median_cc_random": float(np.median([r["cc_random"] for r in rows])),
        "sign_accuracy": float(np.mean([r["accuracy"] for r in rows])),
        "sign_accuracy_random": float(np.mean([r["accuracy_random"] for r in rows])),
        "units": "solved = map CC ≥ 0.8 at the best permissible origin; sign accuracy "
        "|E|-weighted at the best origin",
    }
    return summary, rows


TASK = PhaseTask()
