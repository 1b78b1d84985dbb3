"""Prediction on a user's data: the amplitudes a resolution-extension model gives the missing
shell of one structure, on the scale of its measured amplitudes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import below, reflections
from xtalforge.diffraction.wilson import wilson_rms
from xtalforge.tasks.resolution.items import collate_reflections, make_item

if TYPE_CHECKING:
    from xtalforge.tasks.resolution.module import ResolutionExtension

__all__ = ["extend_amplitudes"]


def extend_amplitudes(
    module: ResolutionExtension,
    hkl: np.ndarray,
    amplitudes: np.ndarray,
    cell: tuple[float, ...],
    spacegroup: Any,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's amplitudes for the target shell (d_high ≤ d < d_low) of one structure.

    ``hkl``/``amplitudes``: the known reflections (ASU, d ≥ d_low; |F| on any scale) — the
    output is on the same scale. ``z``: atomic numbers (for the Wilson scale), when known.
    Returns the shell's ASU indices and amplitudes.
    """
    task = module.extension
    sg = resolve_space_group(spacegroup)
    shell = reflections(tuple(cell), task.d_high, spacegroup=sg)
    todo = below(shell.d, task.d_low)
    hkl = np.concatenate([np.asarray(hkl, np.int64), shell.hkl[todo].astype(np.int64)])
    amps = np.concatenate([np.asarray(amplitudes, float), np.zeros(int(todo.sum()))])
    norm_task = (
        task if task.normalization == "max" else type(task)(task.d_low, task.d_high, "wilson")
    )
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0]))
    hkl, amps = hkl[order], amps[order]
    grid = None
    if module.input_mode == "grid":
        grid = HKLGrid.from_bounds((cell[0], cell[1], cell[2]), task.d_high, [sg])
    item = make_item(hkl, amps, tuple(cell), sg.xhm(), norm_task, grid, z=z)
    batch = (
        collate_reflections([item])
        if grid is None
        else {k: (v[None] if torch.is_tensor(v) else torch.tensor([v])) for k, v in item.items()}
    )
    with torch.no_grad():
        pred = module(batch)[0]
    pred_norm = pred.numpy() if grid is None else pred[0].numpy()[grid.index(hkl)]
    is_known = (
        item["known"].numpy().ravel() if grid is None else item["known"][0].numpy()[grid.index(hkl)]
    )
    if task.normalization == "max":
        scale = np.full(len(hkl), float(amps[is_known].max()))
    else:
        scale = wilson_rms(amps, is_known, hkl, tuple(cell), sg.xhm(), z)
    return hkl[~is_known], (pred_norm * scale)[~is_known]
