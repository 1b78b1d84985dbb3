"""Benchmark: training throughput (samples/s) of each resolution-extension model on the CPU (or
a GPU with --device cuda), beside the data pipeline feeding it, measured in the same run.

For each model (small and thesis sizes) the median over repeats of the seconds per optimiser
step (forward + backward + Adam) on batches already in memory, as samples/s; the peer is the
`extension_dataset` + DataLoader that feeds it (0 and 2 workers): training is data-bound when the
loader is the slower of the two.

    python benchmarks/training.py [--data DIR] [--batch 16] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import dataset_or_build, training_seconds
from xtalforge.tasks.resolution import (
    Extension,
    ResolutionExtension,
    collate_reflections,
    dataset_grid,
    extension_dataset,
)


def batches(root: Path, task: Extension, mode: str, batch: int, n: int) -> list[dict]:
    ds = extension_dataset(root, "train", task, mode=mode)
    loader = DataLoader(
        ds, batch_size=batch, collate_fn=collate_reflections if mode == "list" else None
    )
    out = []
    for b in loader:
        out.append(b)
        if len(out) == n:
            break
    return out


def loader_rate(
    root: Path, task: Extension, mode: str, batch: int, workers: int, n_batches: int
) -> float:
    ds = extension_dataset(root, "train", task, mode=mode)
    loader = DataLoader(
        ds,
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate_reflections if mode == "list" else None,
    )
    t0 = time.perf_counter()
    seen = 0
    for i, b in enumerate(loader):
        seen += len(b["id"])
        if i + 1 == n_batches:
            break
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None, help="dataset (default: quick-p21)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="small,thesis")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = dataset_or_build(args.data, "quick-p21", 1000)
    task = Extension(1.2, 1.0, "wilson")
    grid = dataset_grid(root, task.d_high)
    print(
        f"dataset {root}, hkl grid {grid.shape}, batch {args.batch}, device {args.device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    results = []
    for mode in ("grid", "list"):
        for workers in (0, 2):
            rate = statistics.median(
                loader_rate(root, task, mode, args.batch, workers, 20) for _ in range(args.repeats)
            )
            results.append(
                {"what": f"DataLoader ({mode}, {workers} workers)", "samples_per_s": rate}
            )
            print(f"{results[-1]['what']:<40} {rate:8.1f} samples/s")
    # the transformer also with the positional options of the quick preset
    models = [
        ("unet3d", {}),
        ("fft_unet", {}),
        ("xrd_transformer", {}),
        ("xrd_transformer", {"neighbourhood": 1, "rope": True}),
    ]
    for name, options in models:
        for size in args.sizes.split(","):
            params = {"h_max": grid.h_max, **options} if name == "xrd_transformer" else {}
            module = ResolutionExtension(
                {"name": name, "size": size, "params": params},
                task.__dict__,
                {"name": "adam", "lr": 1e-4},
            )
            module.to(args.device).train()
            data = [
                {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in b.items()}
                for b in batches(root, task, module.input_mode, args.batch, args.steps)
            ]
            sec = training_seconds(module, data, len(data) * args.batch, args.repeats, args.device)
            n_par = sum(p.numel() for p in module.parameters())
            label = f"{name}{' + ' + ', '.join(options) if options else ''}"
            results.append(
                {"what": f"{label} ({size}, {n_par / 1e6:.2f} M params)", "samples_per_s": 1 / sec}
            )
            print(f"{results[-1]['what']:<58} {1 / sec:8.1f} samples/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
