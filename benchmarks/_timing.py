"""Timing helper shared by the benchmarks: median over repeats, after one warm-up call."""

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
