"""Benchmark: ms per generated structure, uniform and molecule placement, vs cctbx and pyxtal.

P2_1/c with 4–10 Å cells (the `phai-p21c` preset: log-normal volumes, N' from V_atom) and a
larger 8–20 Å set (10–30 atoms), on one core, in the same run as cctbx's
`random_structure.xray_structure` (subprocess) and pyxtal's `from_random` (when installed) for
the same asymmetric-unit atom counts. Published reference: 6 ms (uniform) and 12 ms (artificial
molecules) per structure for the thesis/PhAI generators.

    OMP_NUM_THREADS=1 python benchmarks/generate.py [--n 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from _timing import median_seconds
from xtalforge.generate import Generator, load_config

HERE = Path(__file__).resolve().parent


def configs() -> dict[str, dict]:
    small = load_config("phai-p21c").model_dump()
    large = {
        "spacegroups": ["P 1 21/c 1"],
        "atoms": [10, 30],
        "cell": {"strategy": "volume_per_atom", "v_atom": [14, 22], "a_min": 8.0, "a_max": 20.0},
    }
    return {"4-10 A (phai-p21c)": small, "8-20 A (10-30 atoms)": large}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for label, base in configs().items():
        for method in ("uniform", "molecule"):
            cfg = dict(base, placement=dict(base.get("placement") or {}, method=method))
            gen = Generator.from_config(cfg)
            seeds = range(args.n)
            crystals = [gen.sample(s) for s in seeds]
            row = {
                "cells": label,
                "placement": method,
                "ms_per_structure": 1e3
                * median_seconds(
                    lambda g=gen, ss=seeds: [g.sample(s) for s in ss], args.n, args.repeats
                ),
                "mean_atoms_asu": float(np.mean([c.n_atoms for c in crystals])),
                "skipped_per_structure": float(
                    np.mean([c.metadata["skipped_atoms"] for c in crystals])
                ),
            }
            rows.append(row)
        atoms = [max(1, c.n_atoms) for c in crystals][: min(args.n, 100)]
        proc = subprocess.run(
            [sys.executable, str(HERE / "_cctbx_generate.py")],
            input=json.dumps({"atoms": atoms, "repeats": args.repeats}),
            capture_output=True,
            text=True,
        )
        cctbx_ms = (
            1e3 * json.loads(proc.stdout)["random_structure_s"] if proc.returncode == 0 else None
        )
        pyxtal_ms = None
        try:
            from pyxtal import pyxtal

            def run_pyxtal(counts: list[int] = atoms[:20]) -> None:
                for n in counts:
                    s = pyxtal()
                    s.from_random(3, 14, ["C"], [4 * n])

            pyxtal_ms = 1e3 * median_seconds(run_pyxtal, len(atoms[:20]), max(1, args.repeats // 2))
        except Exception as exc:
            pyxtal_ms = f"not run: {type(exc).__name__}: {exc}"[:120]
        rows.append(
            {
                "cells": label,
                "placement": "peers (same atom counts)",
                "cctbx_random_structure_ms": cctbx_ms,
                "pyxtal_from_random_ms": pyxtal_ms,
            }
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
