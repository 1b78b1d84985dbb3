"""Benchmark: wall time of ab initio phasing on one CPU core, this package's charge flipping
against cctbx's smtbx in the same run, on the COD development structures (calculated F).

Both solvers see the same structures and resolutions, one thread each (``OMP_NUM_THREADS=1``,
torch set to one thread); cf solves one structure per call (no batching across structures),
smtbx runs its default weak-reflection-improved flipping with one start per structure, all
structures in one subprocess (its seconds are measured inside cctbx, so the process start is
not counted against it). Per solver and resolution: solved fraction (map CC ≥ 0.8), median and
mean seconds per structure (each the median over ``--repeats`` timings), and seconds per
solved structure (the total time over the structures solved: a structure not solved costs its
full time).

    OMP_NUM_THREADS=1 python benchmarks/solve_speed.py [--max-edge 20] [--limit N]
        [--resolutions 0.8,1.0,1.2,1.5] [--repeats 3] [--json speed.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from xtalforge.errors import XtalforgeError
from xtalforge.io import read_cif
from xtalforge.phasing.solve import SolveData, calculated_solve_data, score_solution, solve_batch

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "cod"


def cod_structures(max_edge: float, d_min: float, limit: int | None) -> list[SolveData]:
    """The COD structures with every edge ≤ ``max_edge`` Å that load, calculated to ``d_min``."""
    out = []
    with open(REAL / "index.csv") as fh:
        for row in csv.DictReader(fh):
            if max(float(row[k]) for k in "abc") > max_edge:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    crystal = read_cif(REAL / row["file"])
                out.append(calculated_solve_data(crystal, d_min, row["file"]))
            except XtalforgeError as exc:
                print(f"skipped {row['file']}: {exc}", file=sys.stderr)
            if limit and len(out) >= limit:
                break
    return out


def time_cf(
    data: list[SolveData], repeats: int, starts: int, seed: int, options: dict
) -> tuple[list, list]:
    seconds, solved = [], []
    for s in data:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sol = solve_batch([s], "cf", starts=starts, seed=seed, **options)[0]
            times.append(time.perf_counter() - t0)
        seconds.append(statistics.median(times))
        solved.append(bool(score_solution(s, sol)["solved"]))
    return seconds, solved


def time_smtbx(data: list[SolveData], repeats: int, seed: int) -> tuple[list, list]:
    from xtalforge.phasing.smtbx import smtbx_solve_batch

    per = [[] for _ in data]
    solved = []
    for k in range(repeats):
        runs = smtbx_solve_batch(
            [s.refl for s in data],
            [s.amplitudes for s in data],
            starts=1,
            seed=seed,
            amplitude_type="quasi-E",
        )
        for i, run in enumerate(runs):
            per[i].append(run[0].seconds)
        if k == 0:
            from xtalforge.phasing.solve import Solution

            for s, run in zip(data, runs, strict=True):
                r = run[0]
                ok = r.phases is not None and not np.isnan(r.phases).any()
                sol = Solution(
                    "smtbx",
                    r.phases if ok else None,
                    np.nan_to_num(r.p1_phases),
                    r.seconds,
                    r.cc_peak_height,
                )
                solved.append(bool(score_solution(s, sol)["solved"]))
    return [statistics.median(t) for t in per], solved


def summary(seconds: list[float], solved: list[bool]) -> dict:
    n_ok = sum(solved)
    return {
        "n": len(seconds),
        "solved_fraction": n_ok / len(seconds),
        "median_s": statistics.median(seconds),
        "mean_s": statistics.fmean(seconds),
        "s_per_solved": sum(seconds) / n_ok if n_ok else float("inf"),
    }


def _number(text: str) -> bool | int | float | str:
    """A command-line option value: a bool (true/false), an int, a float or else the text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-edge", type=float, default=20.0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--resolutions", default="0.8,1.0,1.2,1.5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--starts", type=int, default=4, help="cf random starts")
    ap.add_argument("--methods", default="cf,smtbx")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--cf-options",
        default="",
        help="charge_flip_batch options as key=value,... (e.g. max_iter=300,grace=20)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = [float(v) for v in args.resolutions.split(",")]
    data = cod_structures(args.max_edge, min(res), args.limit)
    cf_options = {
        k: _number(v) for k, v in (kv.split("=") for kv in args.cf_options.split(",") if kv)
    }
    out = {
        "command": " ".join(sys.argv),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cf_options": cf_options,
        "structures": len(data),
        "rows": [],
    }
    print(f"{len(data)} COD structures with edges ≤ {args.max_edge} Å, one thread")
    print("method  d (Å)  n  solved  median s  mean s  s/solved")
    for d in res:
        cut = [s.cut(d) for s in data]
        for method in [m.strip() for m in args.methods.split(",")]:
            if method == "cf":
                secs, ok = time_cf(cut, args.repeats, args.starts, args.seed, cf_options)
            else:
                secs, ok = time_smtbx(cut, args.repeats, args.seed)
            row = {"method": method, "d_min": d, **summary(secs, ok)}
            out["rows"].append(row)
            print(
                f"{method:6s} {d:5.2f} {row['n']:3d} {row['solved_fraction']:6.0%} "
                f"{row['median_s']:9.3f} {row['mean_s']:7.3f} {row['s_per_solved']:9.3f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
