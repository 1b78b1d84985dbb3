"""Signs of centrosymmetric structure factors as the tensors task ``phase`` sees: |E|, the sign
estimate and the presence mask on the hkl grid, the sign patterns of the permissible origin
shifts, and the origin-invariant loss, accuracy and figure of merit."""

from __future__ import annotations

import functools
from typing import Any

import gemmi
import numpy as np
import torch
import torch.nn.functional as F

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import reflections_from_hkl
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.diffraction.wilson import normalize
from xtalforge.errors import XtalforgeError
from xtalforge.phasing.score import permissible_shift_mask

__all__ = [
    "dense_item",
    "exact_item",
    "figure_of_merit",
    "invariant_accuracy",
    "invariant_bce",
    "item_from_crystal",
    "origin_patterns",
    "sign_item",
    "task_grid",
]


N_PATTERNS = 8


@functools.lru_cache(maxsize=32)
def _patterns(hall: str, lower: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
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
    refl, f = calculated_data(crystal, d_high)
    return exact_item(crystal, refl, f, grid, sample_id)


def exact_item(
    crystal: Crystal, refl: Any, f: np.ndarray, grid: HKLGrid, sample_id: int = -1
) -> dict[str, Any]:
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


def task_grid(cfg_generator: Any, d_high: float) -> HKLGrid:
    """The hkl grid of a generator's structures to ``d_high`` Å."""
    from xtalforge.generate.config import load_config

    gc = load_config(cfg_generator)
    return HKLGrid.from_bounds(gc.cell.a_max, d_high, list(gc.spacegroups))
