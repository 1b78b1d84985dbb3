"""Benchmark: solving to a refined structure, scored at the atom level.

``cod``: the COD development CIFs with every edge ≤ ``--max-edge`` Å, calculated intensities
with noise (σ² from counting statistics on a scale of 1000 counts for the mean intensity plus
(0.02 I)², one Gaussian draw per ``--seeds`` seed), at each resolution: charge flipping (the
same seed), peaks → atoms typed from the composition → refinement → verdict, phased again
with new starts while the verdict is not ``solved`` (as ``xtalforge solve`` does,
``workflows.solve.ATTEMPTS``). A structure is
solved at the atom level when its refined R1 (Fo > 4σ) ≤ 0.15 and ≥ 90 % of its published
non-H atoms lie within 0.3 Å of a model atom of the right element (after origin/hand
alignment). Per resolution: the fraction solved, the fraction with map CC ≥ 0.8, median R1,
and median seconds per structure (phasing + building + refinement). One JSON line per case
goes to ``--out`` and cases already there are skipped (interrupt and run again to resume).

``measured``: every reflection file in the real-data ``hkl`` folder with its published model,
solved twice — with the model's space group, and from the cell alone (space group found from
the data) — giving the group found, R1, atoms matched, the verdict and the time.

    OMP_NUM_THREADS=1 python benchmarks/solve_structures.py cod --out cod_atoms.jsonl \\
        [--resolutions 0.8,1.0,1.2] [--seeds 0,1,2] [--limit N]
    OMP_NUM_THREADS=1 python benchmarks/solve_structures.py measured [--json measured.json]
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

from xtalforge.data.solve_data import with_truth
from xtalforge.errors import XtalforgeError
from xtalforge.io import read_cif, read_structure
from xtalforge.phasing.complete import match_to_truth
from xtalforge.phasing.score import score_phases
from xtalforge.phasing.solve import calculated_sigmas, calculated_solve_data
from xtalforge.workflows.solve import phase_and_build, solve_file

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
ATOM_R1, ATOM_MATCHED = 0.15, 0.9


def cod_files(max_edge: float, limit: int | None) -> list[str]:
    with open(REAL / "cod" / "index.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if max(float(r[k]) for k in "abc") <= max_edge]
    return [r["file"] for r in rows][:limit]


def cod_case(name: str, d_min: float, seed: int) -> dict:
    """One structure at one resolution with one noise draw."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystal = read_cif(REAL / "cod" / name)
    data = calculated_solve_data(crystal, d_min, name)
    i_calc, sigma = calculated_sigmas(data.amplitudes**2)
    i_obs = i_calc + np.random.default_rng(seed).normal(0.0, sigma)
    data.amplitudes = np.sqrt(np.clip(i_obs, 0.0, None))
    data.intensities, data.sigmas = i_obs, sigma
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sol, built = phase_and_build(data, "cf", None, {"seed": seed})
    out = {"file": name, "d_min": d_min, "seed": seed, "n_refl": len(data.refl)}
    if built is None:
        return {**out, "seconds": time.perf_counter() - t0, "solved_atoms": False}
    seconds = time.perf_counter() - t0
    assert data.true_phases is not None
    s = score_phases(data.refl, data.amplitudes, data.true_phases, sol.phases)
    close, right = match_to_truth(
        built.crystal, crystal, data.refl, data.amplitudes, data.true_phases
    )
    r1 = built.refinement.agreement.r1_gt
    return {
        **out,
        "seconds": seconds,
        "cc": s.cc,
        "map_solved": bool(s.solved),
        "r1": r1,
        "atoms_close": close,
        "atoms_matched": right,
        "verdict": built.solved,
        "solved_atoms": bool(r1 <= ATOM_R1 and right >= ATOM_MATCHED),
    }


def run_cod(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["file"], r["d_min"], r["seed"]))
    files = cod_files(args.max_edge, args.limit)
    resolutions = [float(x) for x in args.resolutions.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    with out.open("a") as fh:
        for d in resolutions:
            for seed in seeds:
                for name in files:
                    if (name, d, seed) in done:
                        continue
                    try:
                        row = cod_case(name, d, seed)
                    except XtalforgeError as exc:
                        row = {"file": name, "d_min": d, "seed": seed, "skipped": str(exc)}
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
    summarize(out)


def summarize(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if "skipped" not in r]
    print("d_min\tcases\tatom-level solved\tmap CC ≥ 0.8\tverdict solved\tmedian R1\tmedian s")
    for d in sorted({r["d_min"] for r in rows}):
        sel = [r for r in rows if r["d_min"] == d]
        r1 = [r["r1"] for r in sel if "r1" in r]
        print(
            f"{d:g}\t{len(sel)}\t{np.mean([r['solved_atoms'] for r in sel]):.1%}"
            f"\t{np.mean([r.get('map_solved', False) for r in sel]):.1%}"
            f"\t{np.mean([r.get('verdict', False) for r in sel]):.1%}"
            f"\t{statistics.median(r1) if r1 else float('nan'):.3f}"
            f"\t{statistics.median(r['seconds'] for r in sel):.2f}"
        )


def run_measured(args: argparse.Namespace) -> None:
    folder = REAL / "hkl"
    rows = []
    for hkl in sorted(folder.glob("*.hkl")):
        model = next(
            (p for p in (hkl.with_suffix(".res"), hkl.with_suffix(".cif")) if p.is_file()),
            REAL / "cod" / hkl.with_suffix(".cif").name,
        )
        if not model.is_file():
            continue
        truth = read_structure(model)
        for mode in ("given", "found"):
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kwargs = {"structure": model}
                    if mode == "found":
                        kwargs = {"cell": truth.cell, "formula": _formula(truth)}
                    res = solve_file(hkl, Path(args.tmp) / f"{hkl.stem}.res", **kwargs)
                st, sc = res.structure, res.score or {}
                if mode == "found" and st is not None and res.solution.phases is not None:
                    sc = {"atoms_matched": _matched(res, truth)}
                row = {
                    "data": hkl.stem,
                    "space group": mode,
                    "group": res.data.refl.spacegroup.xhm(),
                    "published": truth.spacegroup.xhm(),
                    "R1": None if st is None else st.refinement.agreement.r1_gt,
                    "matched": sc.get("atoms_matched"),
                    "solved": res.solved,
                }
            except XtalforgeError as exc:
                row = {"data": hkl.stem, "space group": mode, "error": str(exc)}
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _matched(res, truth) -> float | None:
    """Atoms matched of a solution found in its own space group (None in another group)."""
    if res.data.refl.spacegroup.hall != truth.spacegroup.hall:
        return None
    data = with_truth(res.data, truth)
    return match_to_truth(
        res.structure.crystal, data.truth, data.refl, data.amplitudes, data.true_phases
    )[1]


def _formula(crystal) -> str:
    comp = crystal.composition()
    return " ".join(f"{el}{n:g}" for el, n in comp.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    cod = sub.add_parser("cod")
    cod.add_argument("--max-edge", type=float, default=20.0)
    cod.add_argument("--limit", type=int, default=None)
    cod.add_argument("--resolutions", default="0.8,1.0,1.2")
    cod.add_argument("--seeds", default="0,1,2")
    cod.add_argument("--out", default="cod_atoms.jsonl")
    meas = sub.add_parser("measured")
    meas.add_argument("--json", default=None)
    meas.add_argument("--tmp", default="/tmp/xtalforge-measured")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not REAL.is_dir():
        sys.exit(f"{REAL}: the real-data folder is absent")
    if args.what == "cod":
        run_cod(args)
    else:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
        run_measured(args)


if __name__ == "__main__":
    main()
