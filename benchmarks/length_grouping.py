"""Benchmark: transformer training throughput with length-grouped batches
(``data.length_grouping``) against random batches of the same items, measured in the same run.

List-mode batches pad every item to the batch's longest; on datasets whose cells vary in size
(``monoclinic-20``: 280–2200 tokens at 1.0 Å) random batches are mostly padding. Both arms take
the same training items (the first ``--batches`` × ``--batch`` of one epoch's shuffled order),
batched either in that order (the peer) or by :class:`LengthGroupedBatchSampler`; each arm is
a fresh model's forward + backward + Adam over all of them, median over repeats.

    python benchmarks/length_grouping.py --data DIR [--batch 8] [--batches 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import dataset_or_build, training_seconds
from xtalforge.data.torch_data import (
    BlockShuffleSampler,
    LengthGroupedBatchSampler,
)
from xtalforge.tasks.resolution import (
    Extension,
    ResolutionExtension,
    collate_reflections,
    dataset_grid,
    extension_dataset,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None, help="dataset (default: monoclinic-20)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--pool", type=int, default=32, help="pool size in batches")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = dataset_or_build(args.data, "monoclinic-20", 2000)
    task = Extension(1.2, 1.0, "wilson")
    ds = extension_dataset(root, "train", task, mode="list")
    grouped = list(LengthGroupedBatchSampler(ds, args.batch, args.pool, seed=0))
    order = list(BlockShuffleSampler(ds, seed=0))
    # the same items in both arms: those of the first grouped pools
    chosen = {i for b in grouped[: args.batches] for i in b}
    peer = [i for i in order if i in chosen]
    arms = {
        "random batches": [peer[i : i + args.batch] for i in range(0, len(peer), args.batch)],
        "length-grouped": grouped[: args.batches],
    }
    items = {i: ds[i] for i in chosen}
    h_max = dataset_grid(root, task.d_high).h_max
    tokens = float(np.mean([len(items[i]["value"]) for i in chosen]))
    print(
        f"dataset {root}, {len(chosen)} items, batch {args.batch}, pool {args.pool} batches, "
        f"device {args.device}, torch threads {torch.get_num_threads()}"
    )
    results = []
    for label, batches in arms.items():
        data = [
            {
                k: v.to(args.device) if torch.is_tensor(v) else v
                for k, v in collate_reflections([items[i] for i in b]).items()
            }
            for b in batches
        ]
        padded = float(np.mean([b["pad_mask"].shape[1] for b in data]))
        torch.manual_seed(0)
        module = (
            ResolutionExtension(
                {
                    "name": "xrd_transformer",
                    "size": "small",
                    "params": {"h_max": h_max, "neighbourhood": 1, "rope": True},
                },
                task.__dict__,
                {"name": "adam", "lr": 1e-4},
            )
            .to(args.device)
            .train()
        )
        sec = training_seconds(module, data, len(chosen), args.repeats, args.device)
        results.append(
            {
                "what": label,
                "samples_per_s": 1 / sec,
                "padded_tokens_per_item": padded,
                "tokens_per_item": tokens,
            }
        )
        print(
            f"{label:<16} {1 / sec:7.2f} samples/s   padded length {padded:7.1f} "
            f"(mean tokens {tokens:.1f})"
        )
    ratio = results[1]["samples_per_s"] / results[0]["samples_per_s"]
    print(f"ratio grouped / random: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
