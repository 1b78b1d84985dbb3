"""Benchmark: ab initio phasing of calculated data — this package's batched charge flipping vs
cctbx's smtbx charge flipping, in the same run, on random P2_1 and P2_1/c structures and on the
monoclinic COD structures of the shared real-data folder (when present).

Per set, resolution and solver: solved fraction (CC ≥ 0.8 after origin location and symmetry
averaging, and on the raw P1 map), median CC, phase error, atom recovery and wall seconds per
structure, plus the 1.2 → 1.0 Å extension rows (truth at 1.2, Wilson fill, free lunch, truth at
1.0; and the model's, given --model).

    python benchmarks/solve.py [--n 50] [--resolutions 0.8,1.0,1.2,1.5] [--model CKPT]
        [--json bench_solve.json] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

from xtalforge.data.solve_data import load_solve_data
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.errors import XtalforgeError
from xtalforge.generate import Generator
from xtalforge.phasing.solve import SolveData
from xtalforge.workflows.solve_benchmark import solve_benchmark

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "cod"


def random_set(sg: str, n: int, atoms: int, d_min: float, seed: int) -> list[SolveData]:
    import numpy as np

    gen = Generator.from_config(
        {
            "name": f"solve-{sg}",
            "spacegroups": [sg],
            "atoms": [atoms, atoms],
            "cell": {
                "strategy": "volume_per_atom",
                "v_atom": [16.0, 20.0],
                "a_min": 4.0,
                "a_max": 20.0,
            },
            "composition": {"elements": {"C": 0.7, "N": 0.15, "O": 0.15}},
            "placement": {"method": "uniform", "min_distance": 1.2},
            "u_iso": [0.02, 0.04],
        }
    )
    out = []
    for i in range(n):
        c = gen.sample(seed + i)
        r = reflections(c, d_min)
        f = structure_factors(c, r)
        out.append(
            SolveData(
                r,
                np.abs(f),
                f"{sg}#{i}",
                np.angle(f),
                c.frac[c.z > 1],
                c.composition(),
                np.asarray(c.z),
            )
        )
    return out


def cod_monoclinic(
    d_min: float, limit: int | None, max_edge: float, min_edge: float = 0.0
) -> list[SolveData]:
    if not (REAL / "index.csv").is_file():
        return []
    out = []
    with open(REAL / "index.csv") as fh:
        for row in csv.DictReader(fh):
            longest = max(float(row[k]) for k in "abc")
            if row["crystal_system"] != "monoclinic" or not min_edge < longest <= max_edge:
                continue
            try:
                out.append(load_solve_data(REAL / row["file"], d_min=d_min))
            except XtalforgeError as exc:
                print(f"skipped {row['file']}: {exc}", file=sys.stderr)
            if limit and len(out) >= limit:
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="random structures per space group")
    ap.add_argument("--atoms", type=int, default=20, help="atoms per asymmetric unit")
    ap.add_argument("--resolutions", default="0.8,1.0,1.2,1.5")
    ap.add_argument("--extend", default="1.2:1.0")
    ap.add_argument("--cod-limit", type=int, default=None)
    ap.add_argument("--cod-max-edge", type=float, default=20.0, help="Å; larger cells skipped")
    ap.add_argument(
        "--cod-min-edge",
        type=float,
        default=0.0,
        help="Å; cells whose longest edge is not above this are skipped",
    )
    ap.add_argument("--sets", default="P 1 21 1,P 1 21/c 1,cod")
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--smtbx-starts", type=int, default=1)
    ap.add_argument("--methods", default="cf,smtbx")
    ap.add_argument("--model", default=None, help="checkpoint for the model row")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    res = [float(v) for v in args.resolutions.split(",")]
    ext = tuple(float(v) for v in args.extend.split(":")) if args.extend else None
    module = None
    if args.model:
        from xtalforge.tasks import load_checkpoint

        module = load_checkpoint(args.model)
    finest = min(res + ([ext[1]] if ext else []))
    results = {
        "command": " ".join(sys.argv),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "sets": {},
    }
    for name in [s.strip() for s in args.sets.split(",")]:
        t0 = time.perf_counter()
        data = (
            cod_monoclinic(finest, args.cod_limit, args.cod_max_edge, args.cod_min_edge)
            if name == "cod"
            else random_set(name, args.n, args.atoms, finest, 1000)
        )
        if not data:
            print(f"{name}: no structures (real-data folder absent?)", file=sys.stderr)
            continue
        rows = solve_benchmark(
            data,
            res,
            tuple(args.methods.split(",")),
            ext,
            module,
            starts=args.starts,
            smtbx_starts=args.smtbx_starts,
            device=args.device,
        )
        results["sets"][name] = {
            "n": len(data),
            "rows": [r.as_dict() for r in rows],
            "wall_seconds": time.perf_counter() - t0,
        }
        print(f"\n== {name} ({len(data)} structures, {time.perf_counter() - t0:.0f} s)")
        print(
            f"{'method':7} {'data':10} {'d':>4} {'to':>4} {'solved':>7} {'P1':>5} {'CC':>6} "
            f"{'err°':>5} {'atoms':>5} {'s/str':>7}"
        )
        for r in rows:
            print(
                f"{r.method:7} {r.data:10} {r.d_min:4.1f} {r.scored_to:4.1f} "
                f"{r.solved_fraction:7.0%} {r.solved_fraction_p1:5.0%} {r.median_cc:6.3f} "
                f"{r.median_phase_error:5.1f} {r.median_atom_recovery:5.2f} "
                f"{r.seconds_per_structure:7.3f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
