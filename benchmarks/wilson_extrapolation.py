"""Diagnostic: how far the Wilson curve fitted on the known shells (d ≥ d_low) misjudges the
mean intensity of the target shell (d_high ≤ d < d_low), per structure, for dataset folders.

For each structure: ln(⟨|F|²⟩ / ⟨ε K Σf² exp(−2B s²)⟩) over the target reflections, K and B
fitted on the known ones exactly as the ``wilson`` normalisation does
(``xtalforge.diffraction.wilson.wilson_rms``). 0 means the extrapolated scale is right; the
spread is what a network trained on Wilson-normalised amplitudes must predict from the known
shells alone. Also reported: the MSE of the Wilson fill in those normalised units (the loss a
model starts from) as mean and median over structures.

With ``--model CKPT`` (repeatable; resolution-extension checkpoints) each model is run on the
first dataset and scored beside the fill: the median per structure of ln(Σpred² / Σtrue²) over
the target shell (the fall-off the model predicts), the pooled R over the target shell, and
the R after rescaling the predictions shell by shell to the fill's r.m.s. (the model's pattern
with the fill's scale), with the structures on which that beats the fill.

    python benchmarks/wilson_extrapolation.py DATASET [DATASET ...] [--split test]
        [--d-low 1.5] [--d-high 0.8] [--model CKPT ...] [--json out.json]

A dataset whose manifest has no split column entry for ``--split`` (an imported CIF folder)
is read whole.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xtalforge.tasks.resolution.items import Extension, extension_dataset


def extrapolation_errors(
    root: Path, split: str | None, task: Extension
) -> tuple[np.ndarray, np.ndarray]:
    """(log ratio, fill MSE) per structure of a dataset folder's ``split``."""
    ds = extension_dataset(root, split, task, mode="list")
    if len(ds) == 0 and split is not None:
        ds = extension_dataset(root, None, task, mode="list")
    log_ratio, fill_mse = [], []
    for i in range(len(ds)):
        item = ds[i]
        t = item["target_mask"].numpy().astype(bool)
        v = item["value"].numpy()[t].astype(np.float64)
        if not t.any() or not (v > 0).any():
            continue
        # value = |F| / √(ε K Σf² e^{−2Bs²}): its mean square is ⟨|F|²⟩ over the expectation
        log_ratio.append(np.log(np.mean(v**2)))
        fill_mse.append(np.mean((v - item["wilson"].numpy()[t]) ** 2))
    return np.array(log_ratio), np.array(fill_mse)


def model_scale(checkpoint: Path, root: Path, split: str) -> dict:
    """A model's predicted fall-off and R (raw and rescaled per shell to the fill) on a
    dataset split, beside the fill's."""
    import torch
    from torch.utils.data import DataLoader

    from xtalforge.tasks import load_checkpoint
    from xtalforge.tasks.metrics import shell_masks
    from xtalforge.tasks.resolution.module import truth

    module = load_checkpoint(checkpoint).eval()
    if module.input_mode != "grid":
        raise SystemExit(f"{checkpoint}: only grid (U-Net) models are supported here")
    ds = extension_dataset(root, split, module.extension, mode="grid")
    log_ratio, fill_ratio, beats = [], [], []
    sums = np.zeros(4)  # |model − true|, |rescaled − true|, |fill − true|, |true|
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=8):
            pred, true, tm = module(batch), truth(batch), batch["target_mask"]
            fill, scale, d = batch["wilson"], batch["scale"], batch["d"]
            for i in range(len(true)):
                t, p = true[i][tm[i]], pred[i][tm[i]]
                log_ratio.append(float(torch.log((p**2).sum() / (t**2).sum())))
                fill_ratio.append(float(torch.log((fill[i][tm[i]] ** 2).sum() / (t**2).sum())))
                q = pred[i].clone()
                for _, _, shell in shell_masks(tm[i], d[i], module.edges):
                    if shell.any():
                        q[shell] *= torch.sqrt(
                            (fill[i][shell] ** 2).sum()
                            / (pred[i][shell] ** 2).sum().clamp_min(1e-12)
                        )
                sc = scale[i][tm[i]]
                err = [float(((x[tm[i]] - t) * sc).abs().sum()) for x in (pred[i], q, fill[i])]
                sums += [*err, float((t * sc).abs().sum())]
                beats.append(err[1] < err[2])
    return {
        "checkpoint": str(checkpoint),
        "n": len(beats),
        "median_log_ratio": float(np.median(log_ratio)),
        "fill_median_log_ratio": float(np.median(fill_ratio)),
        "R": sums[0] / sums[3],
        "R_rescaled": sums[1] / sums[3],
        "R_fill": sums[2] / sums[3],
        "rescaled_beats_fill": int(sum(beats)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--d-low", type=float, default=1.5)
    ap.add_argument("--d-high", type=float, default=0.8)
    ap.add_argument("--model", type=Path, action="append", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    task = Extension(args.d_low, args.d_high, "wilson")
    rows = []
    print(
        f"Wilson extrapolation from d ≥ {args.d_low} Å to {args.d_high} Å "
        "(ln of the target shell's mean intensity over the extrapolated one)"
    )
    print(
        f"{'dataset':40s} {'n':>5s} {'median':>7s} {'25 %':>6s} {'75 %':>6s} "
        f"{'|ln| > 0.7':>10s} {'fill MSE mean / median':>24s}"
    )
    for root in args.datasets:
        lr, fm = extrapolation_errors(root, args.split, task)
        q25, q50, q75 = np.percentile(lr, [25, 50, 75])
        row = {
            "dataset": str(root),
            "n": len(lr),
            "median": q50,
            "q25": q25,
            "q75": q75,
            "beyond_0.7": float(np.mean(np.abs(lr) > 0.7)),
            "fill_mse_mean": float(fm.mean()),
            "fill_mse_median": float(np.median(fm)),
        }
        rows.append(row)
        print(
            f"{root.name[:40]:40s} {len(lr):5d} {q50:+7.2f} {q25:+6.2f} {q75:+6.2f} "
            f"{100 * row['beyond_0.7']:9.0f}% {fm.mean():11.2f} / {np.median(fm):.2f}"
        )
    models = [model_scale(ck, args.datasets[0], args.split) for ck in args.model]
    if models:
        print(
            f"\nmodels on {args.datasets[0].name}: ln Σpred²/Σtrue² (median), R target, "
            "R rescaled per shell to the fill's r.m.s., fill R, rescaled beating the fill"
        )
    for m in models:
        print(
            f"{m['checkpoint']}\n    {m['median_log_ratio']:+.2f}  R {m['R']:.4f}  "
            f"rescaled {m['R_rescaled']:.4f}  fill {m['R_fill']:.4f}  "
            f"{m['rescaled_beats_fill']}/{m['n']}  (fill ln Σ²/Σtrue² "
            f"{m['fill_median_log_ratio']:+.2f})"
        )
    if args.json:
        args.json.write_text(json.dumps({"datasets": rows, "models": models}, indent=1))


if __name__ == "__main__":
    main()
