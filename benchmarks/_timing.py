"""Timing helpers shared by the benchmarks: median over repeats, after one warm-up call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Median over ``repeats`` of the seconds per item of ``fn()``, which processes ``n`` items."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def training_seconds(
    module, batches: list[dict], n: int, repeats: int, device: str = "cpu"
) -> float:
    """Median seconds per item of Adam steps (forward + backward + update) of a
    ``ResolutionExtension`` over ``batches`` (already on ``device``), which hold ``n`` items."""
    import torch

    opt = torch.optim.Adam(module.parameters(), lr=1e-4)

    def steps() -> None:
        for b in batches:
            opt.zero_grad()
            module._loss(module.raw(b), b).backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return median_seconds(steps, n, repeats)


def dataset_or_build(root, preset: str, n: int):
    """``root`` when given, else ``n`` structures of the dataset preset built into a temporary
    folder (2 workers)."""
    import tempfile
    from pathlib import Path

    from xtalforge.data import build_dataset, load_spec

    if root is not None:
        return Path(root)
    root = Path(tempfile.mkdtemp()) / preset
    build_dataset(load_spec(preset, n=n), root, workers=2)
    return root
