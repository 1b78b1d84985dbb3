"""Direct phase prediction for centrosymmetric structures (task ``phase``), PhAI-style.

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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import at_or_above
from xtalforge.errors import XtalforgeError
from xtalforge.models import build_model
from xtalforge.train.base import TaskModule, headline

__all__ = ["PhaseSign", "origin_patterns", "predict_signs", "sign_item"]

N_PATTERNS = 8


@functools.lru_cache(maxsize=32)
def _patterns(hall: str, lower: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
    import gemmi

    from xtalforge.diffraction.reflections import reflections_from_hkl
    from xtalforge.phasing.score import permissible_shift_mask

    sg = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(hall))
    probe = reflections_from_hkl(np.array([[1, 0, 0]]), (10, 10, 10, 90, 90, 90), sg)
    allowed = np.argwhere(permissible_shift_mask(probe, (2, 2, 2)))  # t = 2s ∈ {0, 1}³
    hkl = np.stack(
        np.meshgrid(*[np.arange(n) + lo for n, lo in zip(shape, lower)], indexing="ij"), -1
    )
    pats = [np.where((hkl @ t) % 2 == 0, 1.0, -1.0) for t in allowed]
    pats += [pats[0]] * (N_PATTERNS - len(pats))
    return np.stack(pats[:N_PATTERNS]).astype(np.float32)


def origin_patterns(spacegroup: Any, grid: HKLGrid) -> np.ndarray:
    """(8, *grid) sign patterns (−1)^{2h·s} of the permissible origin shifts s ∈ {0, ½}³ of a
    space group (repeated to 8 when there are fewer)."""
    return _patterns(spacegroup.hall, tuple(grid.lower), tuple(grid.shape))


def dense_item(
    refl: Any, e: np.ndarray, signs: np.ndarray | None, grid: HKLGrid, sample_id: int = -1
) -> dict[str, Any]:
    """|E|, signs (±1; zeros when unknown), presence mask and origin patterns on the hkl grid
    (``refl``: ASU reflections of a centrosymmetric structure)."""
    if not refl.symmetry.centrosymmetric_origin:
        raise XtalforgeError(
            f"task phase needs a centrosymmetric space group with the "
            f"inversion centre at the origin, got {refl.spacegroup.xhm()}"
        )
    idx = grid.index(refl.hkl)
    dense = np.zeros((3, *grid.shape), np.float32)
    dense[0][idx] = e
    if signs is not None:
        dense[1][idx] = signs
    dense[2][idx] = 1.0
    return {
        "e": torch.from_numpy(dense[0:1]),
        "sign": torch.from_numpy(dense[1:2]),
        "present": torch.from_numpy(dense[2:3]),
        "patterns": torch.from_numpy(origin_patterns(refl.spacegroup, grid)),
        "id": sample_id,
    }


def sign_item(
    crystal: Crystal, grid: HKLGrid, d_high: float, sample_id: int = -1
) -> dict[str, Any]:
    """The training item of a structure: exact |E| (expectation from the model) and the true
    signs of its structure factors to ``d_high`` Å."""
    from xtalforge.train.task_data import crystal_data

    refl, f = crystal_data(crystal, d_high)
    return _exact_item(crystal, refl, f, grid, sample_id)


def _exact_item(
    crystal: Crystal, refl: Any, f: np.ndarray, grid: HKLGrid, sample_id: int = -1
) -> dict[str, Any]:
    from xtalforge.diffraction.wilson import normalize

    e = normalize(np.abs(f), refl, crystal=crystal)
    return dense_item(refl, e, np.where(f.real >= 0, 1.0, -1.0), grid, sample_id)


def item_from_crystal(crystal: Crystal, i: int, grid: HKLGrid, d_high: float) -> dict[str, Any]:
    return sign_item(crystal, grid, d_high, i)


def invariant_bce(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-structure |E|-weighted BCE, minimised over the origin patterns: (B,)."""
    w = batch["e"] * batch["present"]
    target = (batch["sign"] * batch["patterns"] > 0).to(logits.dtype)  # (B, 8, *grid)
    bce = F.binary_cross_entropy_with_logits(logits.expand_as(target), target, reduction="none")
    per = (bce * w).flatten(2).sum(2) / w.flatten(1).sum(1, keepdim=True).clamp_min(1e-9)
    return per.min(1).values


def invariant_accuracy(signs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """|E|-weighted fraction of right signs at the best origin: (B,)."""
    w = batch["e"] * batch["present"]
    right = (signs * batch["sign"] * batch["patterns"] > 0).to(w.dtype)
    acc = (right * w).flatten(2).sum(2) / w.flatten(1).sum(1, keepdim=True).clamp_min(1e-9)
    return acc.max(1).values


def figure_of_merit(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ|E| |tanh(logit/2)| / Σ|E| per structure (the network's confidence; no truth)."""
    w = batch["e"] * batch["present"]
    conf = torch.tanh(logits / 2).abs()
    return (conf * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-9)


class PhaseSign(TaskModule):
    """Sign prediction with recycling and the origin-invariant loss; validation logs the loss
    and the sign accuracy after ``recycles`` cycles (a coin gives 0.5; the origin choice lifts
    chance slightly above)."""

    MONITOR = "val/loss"

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        max_epochs: int = 10,
        data: dict[str, Any] | None = None,
        grid: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.grid = HKLGrid(tuple(grid["lower"]), tuple(grid["shape"]))
        self.net = build_model(
            model["name"],
            model.get("size", "small"),
            **{"grid_shape": self.grid.shape, **model.get("params", {})},
        )
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor], estimate: torch.Tensor) -> torch.Tensor:
        x = torch.cat([batch["e"], estimate * batch["present"], batch["present"]], 1)
        return self.net(x)

    def cycles(
        self, batch: dict[str, torch.Tensor], n: int, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits after ``n`` cycles (gradients through the last only)."""
        est = torch.zeros_like(batch["e"]) if start is None else start
        with torch.no_grad():
            for _ in range(n - 1):
                est = torch.tanh(self(batch, est) / 2)
        return self(batch, est)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(self.global_step))
        n = int(torch.randint(1, self.task["recycles"] + 1, (1,), generator=gen))
        loss = invariant_bce(self.cycles(batch, n), batch).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["id"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.cycles(batch, self.task["recycles"])
        self.add_sums(
            {
                "loss": invariant_bce(logits, batch).sum(),
                "accuracy": invariant_accuracy(torch.sign(logits), batch).sum(),
            },
            len(logits),
        )

    def on_validation_epoch_end(self) -> None:
        self.log_means("val", ("accuracy",))


def predict_signs(
    module: PhaseSign, item: dict[str, torch.Tensor], cycles: int, starts: int, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Signs (*grid, ±1) of one structure: ``starts`` starts (zeros, then random signs) ×
    ``cycles`` recycling cycles, the candidate with the highest figure of merit; and that FOM."""
    batch = {
        k: (v[None].expand(starts, *v.shape) if torch.is_tensor(v) else v) for k, v in item.items()
    }
    gen = torch.Generator().manual_seed(seed)
    est = torch.where(torch.rand(batch["e"].shape, generator=gen) < 0.5, -1.0, 1.0)
    est[0] = 0.0
    best_fom, best = -1.0, None
    with torch.no_grad():
        for _ in range(cycles):
            logits = module(batch, est)
            fom = figure_of_merit(logits, batch)
            k = int(torch.argmax(fom))
            if float(fom[k]) > best_fom:
                best_fom, best = float(fom[k]), logits[k]
            est = torch.tanh(logits / 2)
    return torch.where(best >= 0, 1.0, -1.0)[0], best_fom


# -- building and evaluating ---------------------------------------------------------------------


def task_grid(cfg_generator: Any, d_high: float) -> HKLGrid:
    """The hkl grid of a generator's structures to ``d_high`` Å."""
    from xtalforge.generate.config import load_config

    gc = load_config(cfg_generator)
    return HKLGrid.from_bounds(gc.cell.a_max, d_high, list(gc.spacegroups))


def make_module(cfg: Any, data_root: Path | None) -> PhaseSign:
    from xtalforge.crystal.symmetry import resolve_space_group
    from xtalforge.generate.config import load_config

    grid = task_grid(cfg.data.generator, cfg.task.d_high)
    data = {"generator": cfg.data.generator, "test_length": cfg.data.test_length, "seed": cfg.seed}
    groups = [resolve_space_group(s).hall for s in load_config(cfg.data.generator).spacegroups]
    return PhaseSign(
        cfg.model.model_dump(),
        cfg.task.model_dump(),
        cfg.optim.model_dump(),
        cfg.trainer.max_epochs,
        data,
        {"lower": list(grid.lower), "shape": list(grid.shape), "halls": groups},
    )


def make_datamodule(cfg: Any, data_root: Path | None) -> Any:
    from xtalforge.train.task_data import generated_datamodule

    grid = task_grid(cfg.data.generator, cfg.task.d_high)
    return generated_datamodule(
        cfg, functools.partial(item_from_crystal, grid=grid, d_high=cfg.task.d_high)
    )


def solve_signs(module: PhaseSign, crystal: Crystal, seed: int = 0) -> dict[str, Any]:
    """Predict and score one structure: map CC of the predicted and of random signs."""
    from xtalforge.phasing.score import score_phases
    from xtalforge.train.task_data import crystal_data

    d_high = module.task["d_high"]
    halls = module.hparams.grid.get("halls") or []
    if halls and crystal.spacegroup.hall not in halls:
        raise XtalforgeError(
            f"space group {crystal.spacegroup.xhm()} is not one the model was "
            "trained on (its hkl grid holds another asymmetric unit)"
        )
    refl, f = crystal_data(crystal, d_high)
    item = _exact_item(crystal, refl, f, module.grid)
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
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Solved fraction (map CC ≥ 0.8) of the run's generated test structures (or of the CIFs
    in ``data`` whose space group and cell fit the model's grid; the rest are reported and
    skipped) beside random signs."""
    import sys

    from xtalforge.train.task_data import evaluation_crystals

    rows: list[dict[str, Any]] = []
    for k, (name, crystal) in enumerate(evaluation_crystals(module.hparams.data, data, limit)):
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


def phase_solution(module: PhaseSign, data: Any, seed: int = 0) -> Any:
    """A :class:`xtalforge.phasing.solve.Solution` for measured-like data (``SolveData``
    amplitudes to the model's d_high, |E| from a Wilson fit): phases 0/π of the best
    candidate; its figure of merit is the network's confidence."""
    import time

    from xtalforge.diffraction.wilson import normalize
    from xtalforge.phasing.solve import Solution

    t0 = time.perf_counter()
    halls = module.hparams.grid.get("halls") or []
    if halls and data.refl.spacegroup.hall not in halls:
        raise XtalforgeError(
            f"{data.source}: space group {data.refl.spacegroup.xhm()} is not "
            "one the phase model was trained on"
        )
    cut = data.cut(module.task["d_high"])
    e = normalize(cut.amplitudes, cut.refl, composition=cut.composition or None)
    item = dense_item(cut.refl, e, None, module.grid)
    signs, fom = predict_signs(
        module, item, module.task["inference_cycles"], module.task["inference_starts"], seed
    )
    full = np.zeros(len(data.refl))
    keep = at_or_above(data.refl.d, module.task["d_high"])
    full[keep] = np.where(signs.numpy()[module.grid.index(cut.refl.hkl)] > 0, 0.0, np.pi)
    return Solution("phai", full, full, time.perf_counter() - t0, fom)
