"""Learned density modification in charge flipping (issue: AI that solves at 1.5–2.0 Å).

On the development COD CIFs (calculated F, any space group, longest edge ≤ ``--max-edge`` Å):
per resolution d and solver seed, rows truth at d, free lunch d → d_high, amplitude prior
(``--amp-model``, extending from its d_low), dm (``--dm-model``), dm + amplitude prior, truth
at d_high; solved fraction (map CC ≥ 0.8 on the reflections to d) and time per structure. With
``--measured``: the measured development data sets (``../shared/data/real/hkl``) truncated to each
d, scored against their published models' phases. Writes everything to ``--json``.

    OMP_NUM_THREADS=1 python benchmarks/density_modification.py --dm-model dm-1.5 \
        --amp-model amp-1.5to1.0 --resolutions 1.5,2.0 --seeds 0,1,2 --json dm_bench.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from xtalforge.analysis.plots import dm_maps_figure, save_png
from xtalforge.data.solve_data import load_solve_data
from xtalforge.errors import XtalforgeError
from xtalforge.phasing.charge_flipping import DEFAULT_DM_EVERY, charge_flip
from xtalforge.phasing.density_modification import half_positions, map_from_half
from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.solve import SolveData, quasi_e
from xtalforge.tasks import load_checkpoint
from xtalforge.workflows.solve_benchmark import solve_benchmark

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def cod_structures(d_min: float, max_edge: float, limit: int | None) -> list[SolveData]:
    """The COD development CIFs whose longest edge is at most ``max_edge`` Å, calculated F."""
    out = []
    with open(REAL / "cod" / "index.csv") as fh:
        for row in csv.DictReader(fh):
            if max(float(row[k]) for k in "abc") > max_edge:
                continue
            try:
                out.append(load_solve_data(REAL / "cod" / row["file"], d_min=d_min))
            except XtalforgeError as exc:
                print(f"skipped {row['file']}: {exc}", file=sys.stderr)
            if limit and len(out) >= limit:
                break
    return out


def measured_structures(d_min: float) -> list[SolveData]:
    """The measured development data sets (``hkl/``) with their published models (the truth's
    phases), those that reach ``d_min`` Å."""
    out = []
    for hkl in sorted((REAL / "hkl").glob("*.hkl")):
        model = next(
            (p for p in (hkl.with_suffix(".res"), hkl.with_suffix(".cif")) if p.is_file()),
            REAL / "cod" / hkl.with_suffix(".cif").name,
        )
        if not model.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sd = load_solve_data(hkl, structure=model)
        except XtalforgeError as exc:
            print(f"skipped {hkl.name}: {exc}", file=sys.stderr)
            continue
        if sd.true_phases is not None and sd.refl.d_min <= d_min * 1.01:
            out.append(sd)
        else:
            print(f"skipped {hkl.name}: data end at {sd.refl.d_min:.2f} Å", file=sys.stderr)
    return out


def _within(c: np.ndarray, true: np.ndarray, deg: float = 45.0) -> float:
    """|true|-weighted fraction of coefficients whose phase is within ``deg`` of the truth's."""
    ok = np.abs(np.angle(c * np.conj(true))) <= np.radians(deg)
    w = np.abs(true)
    return float((w * ok).sum() / w.sum())


def _aligned(c_obs: np.ndarray, true: np.ndarray, hkl: np.ndarray) -> tuple[np.ndarray, bool]:
    """The origin shift s (fractional) and hand that best put P1 coefficients ``c_obs`` on the
    truth's: c · e^{2πi h·s} (conjugated for the other hand) ≈ true."""
    n = 2 * np.abs(hkl).max(axis=0) + 2
    best = (-np.inf, np.zeros(3), False)
    for flip in (False, True):
        c = np.conj(c_obs) if flip else c_obs
        grid = np.zeros(tuple(n), complex)
        idx = tuple(hkl[:, i] % n[i] for i in range(3))
        grid[idx] = c * np.conj(true)
        score = np.fft.ifftn(grid).real  # Σ p_h e^{+2πi h·s}
        k = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[k] > best[0]:
            best = (score[k], np.array(k) / n, flip)
    return best[1], best[2]


def _map(shape, hkl: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The real map of P1 coefficients (conj F, l ≥ 0 half) on ``shape``."""
    import torch

    grid = HalfGrid(tuple(int(n) for n in shape))
    c = torch.as_tensor(coef)[None]
    flat, conj = (torch.as_tensor(a) for a in half_positions(grid, hkl))
    half = torch.zeros(1, grid.size, dtype=c.dtype)
    half[:, flat] = torch.where(conj, c.conj(), c)
    return map_from_half(half, grid.full)[0].numpy()


def trace_shell(
    data: list[SolveData],
    d: float,
    dm,
    seed: int,
    every: int,
    maps: list | None = None,
    step: int = 10,
) -> list[dict]:
    """Charge flipping with the model's step on each structure cut at ``d`` Å, recording at
    every step the fractions of measured (before, after the step) and extension-shell phases
    within 45° of the truth (origin and hand aligned on the measured reflections). ``maps``
    (a list) receives (title, before, after, truth) maps of start 0 at step ``step``."""
    rows = []
    for k, full in enumerate(data):
        e_true = quasi_e(full.amplitudes, full.refl) * np.exp(1j * full.true_phases)
        hkl_t, f_t = full.refl.expand_to_p1(e_true)
        lookup = {tuple(h): v for h, v in zip(hkl_t.tolist(), np.conj(f_t), strict=True)}
        low = full.cut(d)
        trace: list[dict] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            charge_flip(
                low.refl,
                quasi_e(low.amplitudes, low.refl),
                starts=4,
                seed=seed,
                dm_model=dm,
                dm_every=every,
                dm_trace=trace,
            )
        for t in trace:
            true_obs = np.array([lookup[tuple(h)] for h in t["hkl"].tolist()])
            true_ext = np.array([lookup.get(tuple(h), 0j) for h in t["ext_hkl"].tolist()])
            for r in range(len(t["after"])):
                s, flip = _aligned(t["after"][r], true_obs, t["hkl"])

                def on_truth(c, hkl, s=s, flip=flip):
                    c = np.conj(c) if flip else c
                    return c * np.exp(2j * np.pi * (hkl @ s))

                if maps is not None and r == 0 and t["cycle"] + 1 == step * every:
                    both = np.concatenate([t["hkl"], t["ext_hkl"]])
                    after = np.concatenate([t["after"][r], t["ext_after"][r]])
                    maps.append(
                        (
                            f"{Path(full.source).stem}, {d} Å, cycle {t['cycle'] + 1}",
                            _map(t["shape"], t["hkl"], on_truth(t["before"][r], t["hkl"])),
                            _map(t["shape"], both, on_truth(after, both)),
                            _map(t["shape"], both, np.concatenate([true_obs, true_ext])),
                        )
                    )
                rows.append(
                    {
                        "structure": full.source,
                        "cycle": t["cycle"] + 1,
                        "start": r,
                        "measured_before": _within(on_truth(t["before"][r], t["hkl"]), true_obs),
                        "measured_after": _within(on_truth(t["after"][r], t["hkl"]), true_obs),
                        "shell": _within(on_truth(t["ext_after"][r], t["ext_hkl"]), true_ext),
                    }
                )
        print(f"traced {k + 1}/{len(data)} at {d} Å", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dm-model", default=None)
    ap.add_argument("--amp-model", default=None)
    ap.add_argument("--resolutions", default="1.5,2.0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-edge", type=float, default=20.0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--dm-every", type=int, default=None)
    ap.add_argument("--trace", type=int, default=0, help="structures to trace (no benchmark)")
    ap.add_argument("--figure", default=None, help="PNG of maps before/after a step (--trace)")
    ap.add_argument("--measured", action="store_true", help="the measured sets, not COD CIFs")
    ap.add_argument("--device", default="cpu", help="cuda: flipping and the model on the GPU")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    res = [float(v) for v in args.resolutions.split(",")]
    dm = load_checkpoint(args.dm_model) if args.dm_model else None
    amp = load_checkpoint(args.amp_model) if args.amp_model else None
    every = args.dm_every or DEFAULT_DM_EVERY
    if dm is not None:
        dm.to(args.device)
    d_high = dm.d_high if dm is not None else 1.0
    data = (
        measured_structures(d_high)
        if args.measured
        else cod_structures(d_high, args.max_edge, args.limit)
    )
    out = {"command": " ".join(sys.argv), "threads": os.environ.get("OMP_NUM_THREADS"), "runs": []}
    print(f"{len(data)} {'measured sets' if args.measured else 'COD structures'}")
    if args.trace:
        figure_maps: list = []
        traces = {d: trace_shell(data[: args.trace], d, dm, 0, every, figure_maps) for d in res}
        if args.figure and figure_maps:
            save_png(dm_maps_figure(figure_maps[:4]), args.figure)
        out["trace"] = {str(d): t for d, t in traces.items()}
        for d, t in traces.items():
            print(f"\n== trace at {d} Å: cycle, medians over structures × starts")
            for cyc in sorted({r["cycle"] for r in t}):
                at = [r for r in t if r["cycle"] == cyc]
                med = {
                    k: float(np.median([r[k] for r in at]))
                    for k in ("measured_before", "measured_after", "shell")
                }
                print(f"{cyc:4d} {len(at):4d} " + " ".join(f"{k} {v:.3f}" for k, v in med.items()))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        return
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = solve_benchmark(
                data,
                res,
                ("cf",),
                (amp.task["d_low"], amp.task["d_high"]) if amp is not None else None,
                amp,
                starts=args.starts,
                seed=seed,
                device=args.device,
                prior_weights=(0.5,) if amp is not None else (),
                atoms=False,
                progress=lambda label, k, t0=t0: print(
                    f"{time.perf_counter() - t0:7.0f} s  {label}: +{k}", file=sys.stderr, flush=True
                ),
                dm_module=dm,
                dm_every=every,
            )
        out["runs"].append({"seed": seed, "rows": [r.as_dict() for r in rows]})
        print(f"\n== seed {seed} ({time.perf_counter() - t0:.0f} s)")
        for r in rows:
            print(
                f"{r.data:28} {r.d_min:4.1f} {r.scored_to:4.1f} {r.solved_fraction:6.0%} "
                f"{r.median_cc:6.3f} {r.median_phase_error:5.1f} {r.seconds_per_structure:7.2f}",
                flush=True,
            )
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
