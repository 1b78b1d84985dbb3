"""Resolution-extension items: a structure's reflections as the tensors a model sees.

Grid mode (U-Nets): ``input`` (1, *grid) known amplitudes, normalised, zero elsewhere;
``target`` (1, *grid) amplitudes at known and target voxels; masks ``known``, ``target_mask``
and ``absent`` (1, *grid) bool; ``id``. List mode (transformer): ``hkl`` (n, 3), ``d`` (n,) Å,
``value`` (n,) normalised amplitudes, ``known`` / ``target_mask`` (n,) bool; batch them with
:func:`collate_reflections`. An :class:`Extension` is (d_low, d_high) in Å: d ≥ d_low known,
d_high ≤ d < d_low to predict.

Normalisation: ``max`` divides by the largest known amplitude (the thesis's choice), ``e`` uses
normalised amplitudes |E| (exact expectation for generated data, Wilson fit for measured),
``wilson`` divides by √(ε k Σf² exp(−2B s²)) with k and B fitted on the known reflections only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from xtalforge.crystal.model import Crystal
from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import DatasetError
from xtalforge.data.torch_data import ShardDataset
from xtalforge.diffraction.batch import structure_factors_batch
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import (
    at_or_above,
    d_spacing,
    reflections,
    reflections_from_hkl,
)
from xtalforge.diffraction.wilson import ACENTRIC_MEAN, CENTRIC_MEAN, normalize, wilson_rms

__all__ = [
    "Extension",
    "collate_reflections",
    "dataset_grid",
    "extension_dataset",
    "generator_grid",
    "item_from_row",
    "items_from_crystals",
    "make_item",
]

Normalization = Literal["max", "e", "wilson"]


@dataclass(frozen=True)
class Extension:
    """A resolution extension: reflections with d ≥ ``d_low`` (Å) are known, those with
    ``d_high`` ≤ d < ``d_low`` are the targets; amplitudes in the ``normalization`` given."""

    d_low: float = 1.2
    d_high: float = 0.8
    normalization: Normalization = "max"

    def __post_init__(self) -> None:
        if not self.d_low > self.d_high > 0:
            raise DatasetError(
                f"an extension needs d_low > d_high > 0 Å, got {self.d_low}, {self.d_high}"
            )
        if self.normalization not in ("max", "e", "wilson"):
            raise DatasetError(
                f"normalization must be max, e or wilson, got {self.normalization!r}"
            )


def _normalised(
    amp: np.ndarray,
    known: np.ndarray,
    task: Extension,
    e: np.ndarray | None,
    hkl: np.ndarray,
    cell: tuple,
    sg: str,
    z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised amplitudes, Wilson fill, scale) in the extension's normalisation.

    The fill is every reflection's Wilson expectation ⟨|F|⟩ (√π/2 or √(2/π) times √⟨|F|²⟩ for
    acentric or centric reflections), with scale K and B fitted on the known reflections only;
    for ``e`` it is ⟨|E|⟩ itself. ``scale`` turns normalised values back into amplitudes on the
    ``max`` scale (largest known |F| = 1), the units every R is computed in.
    """
    refl = reflections_from_hkl(hkl, cell, sg)
    mean_ratio = np.where(refl.centric, CENTRIC_MEAN, ACENTRIC_MEAN)
    top = float(amp[known].max()) if known.any() else 0.0
    top = top if top > 0 else 1.0
    if task.normalization == "max":
        rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
        return amp / top, mean_ratio * rms / top, np.ones_like(amp)
    if task.normalization == "e":
        if e is None:
            raise DatasetError("normalization 'e' needs E values in the dataset")
        rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
        scale = np.where(e > 0, amp / np.where(e > 0, e, 1.0), rms)
        return e, mean_ratio, scale / top
    rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
    return amp / rms, mean_ratio, rms / top


def make_item(
    hkl: np.ndarray,
    amp: np.ndarray,
    cell: tuple,
    sg: str,
    task: Extension,
    grid: HKLGrid | None,
    e: np.ndarray | None = None,
    z: np.ndarray | None = None,
    sample_id: int = -1,
) -> dict[str, Any]:
    """One training item from a structure's reflections (ASU ``hkl``, amplitudes ``amp``).

    Besides the values and masks it holds ``wilson`` (the Wilson fill, the baseline every model
    is compared with, in the same units), ``scale`` (values × scale = amplitudes with the largest
    known one = 1, the units of every R) and ``d`` (Å; 0 at absent voxels in grid mode).
    """
    d = d_spacing(hkl, cell)
    use = at_or_above(d, task.d_high)
    hkl, amp, d = hkl[use], amp[use], d[use]
    e = e[use] if e is not None else None
    known = at_or_above(d, task.d_low)
    value, fill, scale = (
        v.astype(np.float32)
        for v in _normalised(
            amp.astype(np.float64),
            known,
            task,
            e,
            hkl,
            cell,
            sg,
            np.zeros(0, int) if z is None else z,
        )
    )
    if grid is None:
        return {
            "hkl": torch.from_numpy(hkl.astype(np.int64)),
            "d": torch.from_numpy(d.astype(np.float32)),
            "value": torch.from_numpy(value),
            "wilson": torch.from_numpy(fill),
            "scale": torch.from_numpy(scale),
            "known": torch.from_numpy(known),
            "target_mask": torch.from_numpy(~known),
            "id": sample_id,
        }
    i, j, k = grid.index(hkl)

    def dense(values: np.ndarray, dtype: Any = np.float32) -> torch.Tensor:
        out = np.zeros(grid.shape, dtype)
        out[i, j, k] = values
        return torch.from_numpy(out)[None]

    full = dense(value)
    known_m = dense(known, bool)
    target_m = dense(~known, bool)
    return {
        "input": torch.where(known_m, full, 0.0),
        "target": full,
        "wilson": dense(fill),
        "scale": dense(scale),
        "d": dense(d.astype(np.float32)),
        "known": known_m,
        "target_mask": target_m,
        "absent": ~(known_m | target_m),
        "id": sample_id,
    }


def collate_reflections(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad list-mode items to the longest: ``pad_mask`` is True at real reflections."""
    n = max(len(item["value"]) for item in batch)
    out: dict[str, torch.Tensor] = {
        "hkl": torch.zeros(len(batch), n, 3, dtype=torch.int64),
        "d": torch.zeros(len(batch), n),
        "value": torch.zeros(len(batch), n),
        "wilson": torch.zeros(len(batch), n),
        "scale": torch.zeros(len(batch), n),
        "known": torch.zeros(len(batch), n, dtype=torch.bool),
        "target_mask": torch.zeros(len(batch), n, dtype=torch.bool),
        "pad_mask": torch.zeros(len(batch), n, dtype=torch.bool),
        "id": torch.tensor([item["id"] for item in batch]),
    }
    for b, item in enumerate(batch):
        m = len(item["value"])
        for key in ("hkl", "d", "value", "wilson", "scale", "known", "target_mask"):
            out[key][b, :m] = item[key]
        out["pad_mask"][b, :m] = True
    return out


def dataset_grid(root: Path, d_high: float) -> HKLGrid:
    """The hkl grid of a dataset folder for resolution ``d_high`` (Å): the bounds of its
    largest cell edges and space groups (from the manifest)."""
    m = read_manifest(root)
    return HKLGrid.from_bounds(tuple(m["max_edges"]), d_high, list(m["spacegroups"]))


def generator_grid(generator: Any, d_high: float) -> HKLGrid:
    """The hkl grid of a generator's structures to ``d_high`` (Å)."""
    from xtalforge.generate.config import load_config

    cfg = load_config(generator)
    return HKLGrid.from_bounds(cfg.cell.a_max, d_high, list(cfg.spacegroups))


def item_from_row(row: dict[str, Any], task: Extension, grid: HKLGrid | None) -> dict[str, Any]:
    """The item of a dataset row (hkl, F, E, cell, spacegroup, z, id)."""
    return make_item(
        row["hkl"].reshape(-1, 3).astype(np.int64),
        row["F"],
        tuple(row["cell"].tolist()),
        row["spacegroup"],
        task,
        grid,
        e=row.get("E"),
        z=row.get("z"),
        sample_id=int(row["id"]),
    )


def extension_dataset(
    root: str | Path,
    split: str | None,
    task: Extension,
    mode: str = "grid",
    grid: HKLGrid | None = None,
    extra_columns: tuple[str, ...] = (),
) -> ShardDataset:
    """A dataset folder's split as resolution-extension items (grid mode: the dataset's hkl
    grid for ``task.d_high`` unless ``grid`` is given; list mode: reflection lists)."""
    if mode == "grid" and grid is None:
        grid = dataset_grid(Path(root), task.d_high)
    make = functools.partial(item_from_row, task=task, grid=grid if mode == "grid" else None)
    return ShardDataset(root, split, make, extra_columns)


def items_from_crystals(
    crystals: list[Crystal],
    ids: list[int],
    task: Extension,
    grid: HKLGrid | None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Items of generated structures, their structure factors in one batched call
    (``device``: ``"cuda"`` in the main process only; DataLoader workers use the CPU)."""
    refls = [reflections(c, task.d_high) for c in crystals]
    fs = structure_factors_batch(crystals, refls, device=device)
    out = []
    for i, c, r, f in zip(ids, crystals, refls, fs, strict=True):
        amp = np.abs(np.asarray(f))
        e = normalize(amp, r, crystal=c) if task.normalization == "e" else None
        out.append(
            make_item(
                r.hkl.astype(np.int64),
                amp,
                c.cell,
                c.spacegroup.xhm(),
                task,
                grid,
                e=e,
                z=c.z,
                sample_id=i,
            )
        )
    return out
