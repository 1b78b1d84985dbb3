"""Benchmark: ms per full powder pattern vs pymatgen's stick pattern, same structure, same run.

20-atom (asymmetric unit) P2_1/c structures, CuKα1+Kα2, 3–90° 2θ with 4351 points, TCH profile
+ FCJ asymmetry + Chebyshev background + Poisson noise (a random instrument from
`InstrumentSampler`). Reports medians of per-pattern times on one core.

    OMP_NUM_THREADS=1 python benchmarks/powder.py [--n 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from _timing import median_seconds
from xtalforge.crystal.examples import random_crystal
from xtalforge.powder import (
    InstrumentSampler,
    background,
    peak_list,
    simulate,
    simulate_batch,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--check-exact",
        type=int,
        default=2,
        help="patterns also computed by the exact (slow) sub-peak sum, for accuracy",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    crystals = [random_crystal("P 1 21/c 1", 20, seed=100 + i) for i in range(args.n)]
    sampler = InstrumentSampler()
    instruments = [sampler.sample(i) for i in range(args.n)]
    row: dict = {
        "n": args.n,
        "points": instruments[0].n_points,
        "mean_peaks_incl_Ka2": float(
            np.mean([len(peak_list(c, i).two_theta) for c, i in zip(crystals, instruments)])
        ),
    }
    row["xtalforge_full_pattern_ms"] = 1e3 * median_seconds(
        lambda: [simulate(c, i, noise=True, seed=1) for c, i in zip(crystals, instruments)],
        args.n,
        args.repeats,
    )
    errors, exact_s = [], []
    for c, ins in list(zip(crystals, instruments))[: args.check_exact]:
        peaks = peak_list(c, ins)
        x, fast = simulate(peaks, ins)
        t0 = time.perf_counter()
        _, exact = simulate(peaks, ins, exact=True)
        exact_s.append(time.perf_counter() - t0)
        bkg = background(x, ins.background, x[0], x[-1])
        errors.append(float(np.abs(fast - exact).sum() / np.abs(exact - bkg).sum()))
    if errors:
        row["fast_vs_exact_R_max"] = max(errors)
        row["exact_profile_ms"] = 1e3 * statistics.median(exact_s)
    batch = [random_crystal("P 1 21/c 1", 20, seed=1000 + i) for i in range(args.batch)]
    binst = [sampler.sample(1000 + i) for i in range(args.batch)]
    row["xtalforge_batched_patterns_per_s"] = 1.0 / median_seconds(
        lambda: simulate_batch(batch, binst, noise=True, seed=3),
        args.batch,
        max(1, args.repeats // 2),
    )
    try:
        from pymatgen.analysis.diffraction.xrd import XRDCalculator
        from pymatgen.core import Lattice, Structure

        structures = []
        for c in crystals:
            p1 = c.expand_p1()
            structures.append(
                Structure(Lattice.from_parameters(*c.cell), [str(e) for e in p1.elements], p1.frac)
            )
        calc = XRDCalculator(wavelength="CuKa")
        row["pymatgen_stick_pattern_ms"] = 1e3 * median_seconds(
            lambda: [calc.get_pattern(s, two_theta_range=(3, 90)) for s in structures],
            args.n,
            max(1, args.repeats // 2),
        )
        row["speedup_vs_pymatgen_sticks"] = (
            row["pymatgen_stick_pattern_ms"] / row["xtalforge_full_pattern_ms"]
        )
    except ImportError:
        row["pymatgen_stick_pattern_ms"] = None
    row["thesis_generator_ms_reported"] = 500.0
    row["speedup_vs_thesis_generator"] = 500.0 / row["xtalforge_full_pattern_ms"]
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
