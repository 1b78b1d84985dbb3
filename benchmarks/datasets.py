"""Benchmark: end-to-end dataset generation (structure + F + E to 0.8 Å + write), per core.

xtalforge's `build_dataset` (generator, batched structure factors, exact E values, zstd Parquet
shards with checksums) against the thesis generator's pipeline done by cctbx in the same run
(`random_structure` + `structure_factors` + `normalised_amplitudes` + `np.savez_compressed`, in a
subprocess) on the same space groups and asymmetric-unit compositions. Then the scaling with
local worker processes, samples/s that `GeneratedItems` of resolution items feed a DataLoader
with 2 workers, and the peak memory (parent and workers) of a large run.

    python benchmarks/datasets.py [--n 2000] [--repeats 3] [--big 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import functools

import torch

from xtalforge.crystal.elements import symbol
from xtalforge.data import build_dataset, load_spec, sample_seed
from xtalforge.data.items import GeneratedItems
from xtalforge.generate import Generator
from xtalforge.tasks.resolution.items import Extension, generator_grid, items_from_crystals

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "thesis-monoclinic (P2_1/C2, 10-30 atoms)": "thesis-monoclinic",
    "phai-p21c (P2_1/c, 4-10 A)": "phai-p21c",
}


def spec_for(generator: str, n: int, shard: int) -> dict:
    return {
        "name": "bench",
        "generator": generator,
        "n": n,
        "seed": 0,
        "shard_size": shard,
        "compute": {"d_high": 0.8, "d_low": 1.2, "phases": True, "e_values": True},
    }


def ours(generator: str, n: int, workers: int, repeats: int, shard: int) -> float:
    """Median seconds per structure of a full build with ``workers`` processes (after a small
    warm-up build in this process, as the peer also warms up)."""
    warm = Path(tempfile.mkdtemp(prefix="xf-warm-"))
    build_dataset(load_spec(spec_for(generator, 64, 64)), warm)
    shutil.rmtree(warm)
    times = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="xf-bench-"))
        t0 = time.perf_counter()
        build_dataset(load_spec(spec_for(generator, n, shard)), out, workers=workers)
        times.append((time.perf_counter() - t0) / n)
        shutil.rmtree(out)
    return statistics.median(times)


def peer(generator: str, n: int, repeats: int) -> float | None:
    gen = Generator.from_config(generator)
    structures = []
    for i in range(n):
        c = gen.sample(sample_seed(0, i))
        structures.append([c.spacegroup.xhm(), [symbol(int(z)) for z in c.z]])
    proc = subprocess.run(
        [sys.executable, str(HERE / "_cctbx_pipeline.py")],
        input=json.dumps({"structures": structures, "d_min": 0.8, "repeats": repeats}),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout)["seconds_per_structure"]


def on_the_fly_rate(n: int) -> float:
    task = Extension(1.2, 0.8)
    grid = generator_grid("thesis-monoclinic", task.d_high)
    make = functools.partial(items_from_crystals, task=task, grid=grid)
    ds = GeneratedItems("thesis-monoclinic", None, n, make_batch=make, batch=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2)
    t0 = time.perf_counter()
    count = sum(len(b["id"]) for b in loader)
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shard", type=int, default=500)
    ap.add_argument(
        "--big",
        type=int,
        default=0,
        help="also time a run of this many structures with 2 workers and report peak memory",
    )
    ap.add_argument("--memory-run", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_run:
        memory_run(a.memory_run)
        return
    print(f"# {os.cpu_count()} CPUs; n = {a.n}, median of {a.repeats}")
    print(
        "| structures | xtalforge 1 worker ms | cctbx pipeline ms | speed-up | "
        "xtalforge 2 workers ms | scaling 1→2 |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, gen in WORKLOADS.items():
        t1 = ours(gen, a.n, 1, a.repeats, a.shard)
        t2 = ours(gen, a.n, 2, a.repeats, a.shard)
        tp = peer(gen, a.n, a.repeats)
        ratio = f"{tp / t1:.2f}×" if tp else "—"
        tp_s = f"{tp * 1e3:.2f}" if tp else "—"
        print(
            f"| {label} | {t1 * 1e3:.2f} | {tp_s} | {ratio} | {t2 * 1e3:.2f} | {t1 / t2:.2f}× |",
            flush=True,
        )
    print(
        f"\nGeneratedItems (thesis-monoclinic, 0.8 Å, 2 DataLoader workers): "
        f"{on_the_fly_rate(max(256, a.n // 4)):.0f} samples/s"
    )
    if a.big:  # in a fresh process, so that its peak memory is this run's alone
        subprocess.run([sys.executable, __file__, "--memory-run", str(a.big)], check=True)


def memory_run(n: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="xf-big-"))
    t0 = time.perf_counter()
    build_dataset(load_spec(spec_for("phai-p21c", n, 1000)), out, workers=2)
    dt = time.perf_counter() - t0
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = sum(p.stat().st_size for p in (out / "shards").glob("*.parquet")) / 2**20
    print(
        f"\n{n} structures (phai-p21c, 2 workers, shards of 1000): {dt:.0f} s, "
        f"{n / dt:.0f} structures/s; peak RSS parent {parent:.0f} MiB, largest worker "
        f"{children:.0f} MiB; {size:.0f} MiB of shards"
    )
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
