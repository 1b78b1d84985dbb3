"""Benchmark: how the three CPU costs grow with the work, each beside its floor measured in the
same run on the same core.

- structure factors (the core of a dataset row): µs per structure against atoms per cell
  (10–200), resolution (1.5 → 0.6 Å) and batch size (1–256); floor: the time numpy's SIMD
  float32 ``np.cos`` takes for the trigonometric terms of the sum (one cos per atom in the cell ×
  reflection, and one sin more in a non-centrosymmetric group), measured on a large array;
- charge flipping: ms per flipping cycle against the grid (atoms per cell at fixed volume per
  atom, resolution 1.5 → 0.6 Å); floor: one real-to-complex FFT and its inverse on that grid
  (scipy's pocketfft, the transform cf uses);
- powder: ms per full profiled pattern against atoms per cell, 2θ_max (resolution) and batch
  size; floor: the profile's FFT work alone (a batched rfft+irfft of the same total length);
- datasets: ms per structure end to end (generate + F + phases + E + write) against the
  finest resolution, with the bytes written per structure and the time a plain write of those
  bytes takes (the I/O floor).

Medians of ``--repeats``; one thread (``OMP_NUM_THREADS=1``).

    OMP_NUM_THREADS=1 python benchmarks/scaling.py [--repeats 5] [--json scaling.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import scipy.fft
import torch

from xtalforge.crystal.examples import random_crystal
from xtalforge.data import build_dataset, load_spec
from xtalforge.diffraction import grid_shape, reflections
from xtalforge.diffraction.batch import structure_factors_batch
from xtalforge.phasing.charge_flipping import charge_flip
from xtalforge.powder import InstrumentSampler, peak_list, simulate, simulate_batch

ATOMS = (10, 25, 50, 100, 200)  # per unit cell (P2_1/c: a quarter per asymmetric unit)
RESOLUTIONS = (1.5, 1.2, 1.0, 0.8, 0.6)
BATCHES = (1, 8, 64, 256)


def timed(repeats: int, fn, *args, **kwargs) -> float:
    """Median wall seconds of ``fn(*args, **kwargs)`` over ``repeats`` calls (after one warm-up
    call)."""
    fn(*args, **kwargs)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def patterns(cs: list, ins: list) -> None:
    for c, i in zip(cs, ins):
        simulate(c, i, noise=True, seed=1)


def write_synced(path: Path, blob: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())


def crystals(n_cell: int, count: int, seed: int = 0):
    return [random_crystal("P 1 21/c 1", max(1, n_cell // 4), seed=seed + k) for k in range(count)]


def cos_ns(repeats: int) -> float:
    """Nanoseconds numpy needs for one float32 cos (a large array: SIMD, no overheads)."""
    x = (np.random.default_rng(0).random(1 << 22) * 200).astype(np.float32)
    out = np.empty_like(x)
    return 1e9 * timed(repeats, np.cos, x, out=out) / len(x)


def structure_factor_rows(repeats: int) -> list[dict]:
    floor_ns = cos_ns(repeats)
    cases = [("atoms", n, 0.8, 64) for n in ATOMS]
    cases += [("resolution", 50, d, 64) for d in RESOLUTIONS]
    cases += [("batch", 50, 0.8, b) for b in BATCHES]
    rows = []
    for axis, n_cell, d, batch in cases:
        cs = crystals(n_cell, batch)
        refls = [reflections(c, d) for c in cs]
        trig = 1 if cs[0].spacegroup.is_centrosymmetric() else 2
        terms = trig * sum(len(r.hkl) * len(c.cell_positions()[0]) for c, r in zip(cs, refls))
        sec = timed(repeats, structure_factors_batch, cs, refls)
        rows.append(
            {
                "axis": axis,
                "atoms_per_cell": n_cell,
                "d_min": d,
                "batch": batch,
                "reflections": statistics.mean(len(r.hkl) for r in refls),
                "us_per_structure": 1e6 * sec / batch,
                "floor_us": 1e-3 * floor_ns * terms / batch,
                "x_floor": sec / (1e-9 * floor_ns * terms),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def flip_rows(repeats: int) -> list[dict]:
    cases = [("atoms", n, 1.0) for n in ATOMS] + [("resolution", 50, d) for d in RESOLUTIONS]
    rows = []
    for axis, n_cell, d in cases:
        c = crystals(n_cell, 1, seed=7)[0]
        refl = reflections(c, d)
        amp = np.abs(structure_factors_batch([c], [refl])[0])
        shape = grid_shape(c.cell, refl.hkl, d, 2.5)
        cycles = 40
        opts = {"starts": 1, "max_iter": cycles, "patience": 10**6, "seed": 1}
        sec = timed(repeats, charge_flip, refl, amp, **opts)
        grid = np.random.default_rng(0).random(shape).astype(np.float32)
        fft = timed(repeats, fft_pair, grid)
        rows.append(
            {
                "axis": axis,
                "atoms_per_cell": n_cell,
                "d_min": d,
                "grid": "×".join(map(str, shape)),
                "grid_points": int(np.prod(shape)),
                "ms_per_cycle": 1e3 * sec / cycles,
                "fft_pair_ms": 1e3 * fft,
                "x_floor": sec / cycles / fft,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fft_pair(grid: np.ndarray) -> None:
    scipy.fft.irfftn(scipy.fft.rfftn(grid), s=grid.shape)


def two_theta_for(d: float, wavelength: float = 1.5406) -> float:
    return 2 * math.degrees(math.asin(min(1.0, wavelength / (2 * d))))


def powder_rows(repeats: int) -> list[dict]:
    sampler = InstrumentSampler()
    cases = [("atoms", n, 90.0, 1) for n in (20, 40, 80, 160)]
    cases += [("resolution", 80, two_theta_for(d), 1) for d in (1.5, 1.2, 1.0, 0.9, 0.8)]
    cases += [("batch", 80, 90.0, b) for b in (1, 16, 64)]
    rows = []
    for axis, n_cell, tt_max, batch in cases:
        cs = crystals(n_cell, max(batch, 8), seed=100)
        ins = [
            sampler.sample(k).model_copy(update={"two_theta_max": tt_max}) for k in range(len(cs))
        ]
        peaks = statistics.mean(len(peak_list(c, i).two_theta) for c, i in zip(cs, ins))
        if batch == 1:
            sec = timed(repeats, patterns, cs, ins) / len(cs)
        else:
            sec = timed(repeats, simulate_batch, cs[:batch], ins[:batch], noise=True) / batch
        rows.append(
            {
                "axis": axis,
                "atoms_per_cell": n_cell,
                "two_theta_max": round(tt_max, 1),
                "batch": batch,
                "peaks_incl_Ka2": peaks,
                "ms_per_pattern": 1e3 * sec,
                "us_per_peak": 1e6 * sec / peaks,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def build_run(spec: dict, root: Path, runs) -> None:
    build_dataset(load_spec(spec), root / f"run{next(runs)}")


def dataset_rows(repeats: int, n: int) -> list[dict]:
    rows = []
    for d in (1.2, 1.0, 0.8, 0.6):
        spec = {
            "name": "scale",
            "generator": "thesis-monoclinic",
            "n": n,
            "seed": 0,
            "shard_size": 500,
            "compute": {"d_high": d, "d_low": 1.5, "phases": True, "e_values": True},
        }
        root = Path(tempfile.mkdtemp(prefix="xf-scale-"))
        runs = iter(range(10**6))
        sec = timed(max(1, repeats // 2), build_run, spec, root, runs)
        shards = list((root / "run0" / "shards").glob("*.parquet"))
        size = sum(p.stat().st_size for p in shards)
        floor = timed(repeats, write_synced, root / "plain.bin", os.urandom(size))
        shutil.rmtree(root)
        rows.append(
            {
                "d_high": d,
                "ms_per_structure": 1e3 * sec / n,
                "bytes_per_structure": size / n,
                "plain_write_ms_per_structure": 1e3 * floor / n,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dataset-n", type=int, default=1000)
    ap.add_argument("--only", default="sf,cf,powder,datasets")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    only = set(args.only.split(","))
    out: dict = {"machine": os.uname().machine, "cpu_count": os.cpu_count()}
    if "sf" in only:
        out["structure_factors"] = structure_factor_rows(args.repeats)
    if "cf" in only:
        out["charge_flipping"] = flip_rows(args.repeats)
    if "powder" in only:
        out["powder"] = powder_rows(args.repeats)
    if "datasets" in only:
        out["datasets"] = dataset_rows(args.repeats, args.dataset_n)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
