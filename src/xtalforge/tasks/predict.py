"""Prediction on a user's data (``xtalforge predict``): a measured reflection file extended to
a model's d_high through the module's ``extend_amplitudes`` hook, written as SHELX HKLF 4."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from xtalforge.diffraction.reflections import at_or_above, reflections
from xtalforge.errors import XtalforgeError
from xtalforge.io import write_hkl
from xtalforge.io.merge import load_measured
from xtalforge.tasks.checkpoints import load_checkpoint
from xtalforge.tasks.domain import domain_warnings

__all__ = ["predict_hkl"]

#: Completeness (overall, and of the outer 25 % of the model's input sphere) under which the
#: measured data are said to be too incomplete for the model.
MIN_COMPLETENESS = 0.8


def _completeness_note(
    path: Path, d_known: np.ndarray, cell: tuple[float, ...], sg: Any, d_low: float
) -> str | None:
    """A note when the measured data do not fill the sphere the model reads (d ≥ ``d_low`` Å):
    the model sees unmeasured reflections as zeros, so its predictions degrade."""
    expected = reflections(cell, d_low, spacegroup=sg)
    outer = expected.d < 1.25 * d_low
    complete = len(d_known) / max(1, len(expected))
    outer_complete = (d_known < 1.25 * d_low).sum() / max(1, outer.sum())
    if complete >= MIN_COMPLETENESS and outer_complete >= MIN_COMPLETENESS:
        return None
    return (
        f"{path}: the measured data fill {complete:.0%} of the unique reflections with "
        f"d ≥ {d_low} Å ({outer_complete:.0%} between {d_low} and {1.25 * d_low:.3g} Å; "
        f"data end at {d_known.min():.3g} Å); the model was trained on complete data to "
        f"{d_low} Å, so expect poorer predictions"
    )


def predict_hkl(
    checkpoint: str | Path,
    hkl_file: str | Path,
    out: str | Path,
    structure: str | Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
    predicted_sigma: float = 0.35,
) -> dict[str, Any]:
    """Extend a measured reflection file to the model's d_high and write SHELX HKLF 4.

    Cell and symmetry come from ``structure`` (CIF or .ins/.res), or ``cell`` (Å, degrees) +
    ``spacegroup``. All measured reflections are written unchanged (batch number 1); the
    reflections of the target shell (d_high ≤ d < d_low) that were not measured get the model's
    amplitudes as I = F² with σ(I) = 2 F · ``predicted_sigma`` F (batch number 2). Warns (and
    lists in ``"warnings"``) when the data are under 80 % complete to d_low, or lie outside the
    model's training domain (space group, cell edge); notes when the data already reach d_high.
    """
    module = load_checkpoint(checkpoint)
    extend = getattr(module, "extend_amplitudes", None)
    if extend is None:
        raise XtalforgeError(
            f"{checkpoint}: a {module.task_name} checkpoint; predict extends data with "
            "amplitude-extension models only (resolution, patterson_sr; for this task: "
            "xtalforge evaluate / benchmark solve)"
        )
    d_low, d_high = module.task["d_low"], module.task["d_high"]
    path = Path(hkl_file)
    refl, amp, sig_amp, notes, comp = load_measured(
        path, Path(structure) if structure else None, cell, spacegroup
    )
    cell, sg = refl.cell, refl.spacegroup
    known = at_or_above(refl.d, d_low)
    if not known.any():
        raise XtalforgeError(f"{path}: no measured reflection with d ≥ {d_low} Å")
    gap = _completeness_note(path, refl.d[known], tuple(cell), sg, d_low)
    found = ([gap] if gap else []) + domain_warnings(
        module.hparams.get("training_domain"), [sg], max(cell[:3]), str(path)
    )
    for message in found:
        warnings.warn(message, stacklevel=2)
    z = (
        np.concatenate(
            [
                np.full(max(1, round(n)), gemmi.Element(str(e)).atomic_number)
                for e, n in comp.items()
            ]
        )
        if comp
        else None
    )
    new_hkl, new_f = extend(refl.hkl[known], amp[known], tuple(cell), sg, z)
    measured = {tuple(h) for h in refl.hkl.tolist()}
    fresh = np.array([tuple(h) not in measured for h in new_hkl.tolist()], bool)
    new_hkl, new_f = new_hkl[fresh], new_f[fresh]
    if (~known).any():
        notes = [
            *notes,
            f"{(~known).sum()} measured reflections lie in the model's target shell "
            f"(d < {d_low} Å; data end at {refl.d.min():.3g} Å): kept as "
            f"measured, only the {len(new_hkl)} unmeasured ones are predicted",
        ]
    out_i = np.concatenate([amp**2, new_f**2])
    sig_i = np.concatenate(
        [2 * amp * np.maximum(sig_amp, 1e-6), 2 * new_f * predicted_sigma * new_f]
    )
    batch_no = np.concatenate([np.ones(len(refl), int), np.full(len(new_hkl), 2)])
    scale_applied = write_hkl(
        out, np.concatenate([refl.hkl, new_hkl]), out_i, sig_i, hklf=4, batch=batch_no
    )
    return {
        "measured": len(refl),
        "predicted": len(new_hkl),
        "d_low": d_low,
        "d_high": d_high,
        "scale": scale_applied,
        "notes": notes,
        "warnings": found,
    }
