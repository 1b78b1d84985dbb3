"""Benchmark: structure factors per second on one core, this project vs cctbx and gemmi.

Random 20-atom (asymmetric unit) P2_1 and C2 structures at d_min = 0.8 Å; every method computes
F for the same structures and the same Miller indices in the same run. Reports the median over
repeats of seconds per structure, and the batched path's speed-up over cctbx's FFT path.

    OMP_NUM_THREADS=1 python benchmarks/structure_factors.py [--n 64] [--repeats 5]
    python benchmarks/structure_factors.py --device cuda --batch 1024   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gemmi
import numpy as np
import torch

from _timing import median_seconds
from xtalforge import reflections, structure_factors, structure_factors_batch
from xtalforge.crystal.examples import random_crystal

HERE = Path(__file__).resolve().parent


def gemmi_fft(crystals, refls) -> list[np.ndarray]:
    """gemmi's FFT route (DensityCalculatorX → transform_map_to_f_phi), as for macromolecules."""
    out = []
    for c, r in zip(crystals, refls):
        st = gemmi.Structure()
        st.cell = c.unit_cell
        st.spacegroup_hm = c.spacegroup.xhm()
        model = gemmi.Model("1")
        chain = gemmi.Chain("A")
        res = gemmi.Residue()
        res.name = "UNK"
        for i, (z, x, u, o) in enumerate(zip(c.z, c.frac, c.u_iso, c.occ)):
            atom = gemmi.Atom()
            atom.name = f"A{i}"
            atom.element = gemmi.Element(int(z))
            atom.pos = c.unit_cell.orthogonalize(gemmi.Fractional(*x))
            atom.b_iso = 8 * np.pi**2 * u
            atom.occ = o
            res.add_atom(atom)
        chain.add_residue(res)
        model.add_chain(chain)
        st.add_model(model)
        st.setup_cell_images()
        dc = gemmi.DensityCalculatorX()
        dc.d_min = r.d_min
        dc.rate = 1.5
        dc.set_refmac_compatible_blur(st[0])
        dc.set_grid_cell_and_spacegroup(st)
        dc.put_model_density_on_grid(st[0])
        grid = gemmi.transform_map_to_f_phi(dc.grid)
        f = np.array(grid.get_value_by_hkl(r.hkl.astype(np.int32)))
        out.append(f * np.exp(dc.blur * r.stol2))  # undo the blur, as reciprocal_space_multiplier
    return out


def gemmi_direct(crystals, refls) -> list[np.ndarray]:
    """gemmi's small-structure calculator, one reflection per Python call."""
    out = []
    for c, r in zip(crystals, refls):
        ss = gemmi.SmallStructure()
        ss.cell = c.unit_cell
        ss.symops = [op.triplet() for op in c.spacegroup.operations()]
        ss.determine_and_set_spacegroup("S")
        for i, (z, x, u, o) in enumerate(zip(c.z, c.frac, c.u_iso, c.occ)):
            s = gemmi.SmallStructure.Site()
            s.label, s.element = f"A{i}", gemmi.Element(int(z))
            s.type_symbol, s.fract, s.u_iso, s.occ = s.element.name, gemmi.Fractional(*x), u, o
            ss.add_site(s)
        ss.setup_cell_images()
        calc = gemmi.StructureFactorCalculatorX(ss.cell)
        out.append(
            np.array([calc.calculate_sf_from_small_structure(ss, h) for h in r.hkl.tolist()])
        )
    return out


def r_factor(a, b) -> float:
    return float(np.abs(np.abs(a) - np.abs(b)).sum() / np.abs(b).sum())


def run_group(sg: str, n: int, repeats: int, d_min: float, with_cctbx: bool) -> dict:
    crystals = [random_crystal(sg, 20, seed=1000 + i) for i in range(n)]
    refls = [reflections(c, d_min) for c in crystals]
    ref = [structure_factors(c, r) for c, r in zip(crystals, refls)]
    row: dict = {
        "space_group": sg,
        "n_structures": n,
        "mean_reflections": float(np.mean([len(r) for r in refls])),
    }
    row["xtalforge_reflections_s"] = median_seconds(
        lambda: [reflections(c, d_min) for c in crystals], n, repeats
    )
    row["xtalforge_numpy_f64_s"] = median_seconds(
        lambda: [structure_factors(c, r) for c, r in zip(crystals, refls)], n, repeats
    )
    row["xtalforge_numpy_f32_s"] = median_seconds(
        lambda: [structure_factors(c, r, np.float32) for c, r in zip(crystals, refls)], n, repeats
    )
    row["xtalforge_batch_f32_s"] = median_seconds(
        lambda: structure_factors_batch(crystals, refls), n, repeats
    )
    row["xtalforge_batch_numpy_kernel_f32_s"] = median_seconds(
        lambda: structure_factors_batch(crystals, refls, compiled=False), n, repeats
    )
    batch = structure_factors_batch(crystals, refls)
    row["batch_vs_numpy_R"] = max(r_factor(a, b) for a, b in zip(batch, ref))
    sub = max(4, n // 8)
    row["gemmi_fft_s"] = median_seconds(
        lambda: gemmi_fft(crystals[:sub], refls[:sub]), sub, repeats
    )
    row["gemmi_fft_R"] = max(
        r_factor(a, b) for a, b in zip(gemmi_fft(crystals[:sub], refls[:sub]), ref[:sub])
    )
    few = min(4, n)
    row["gemmi_direct_s"] = median_seconds(
        lambda: gemmi_direct(crystals[:few], refls[:few]), few, max(1, repeats // 2)
    )
    if with_cctbx:
        payload = {
            "repeats": repeats,
            "d_min": d_min,
            "structures": [
                {
                    "cell": list(c.cell),
                    "hall": c.spacegroup.hall,
                    "hkl": r.hkl.tolist(),
                    "atoms": [
                        [f"A{i}", el, x.tolist(), float(u), float(o)]
                        for i, (el, x, u, o) in enumerate(zip(c.elements, c.frac, c.u_iso, c.occ))
                    ],
                }
                for c, r in zip(crystals, refls)
            ],
        }
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, str(HERE / "_cctbx_worker.py")],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode == 0:
            cc = json.loads(proc.stdout)
            row["cctbx_direct_s"] = cc["direct"]
            row["cctbx_fft_s"] = cc["fft"]
            row["cctbx_miller_set_s"] = cc["miller_set"]
            row["batch_speedup_vs_cctbx_fft"] = cc["fft"] / row["xtalforge_batch_f32_s"]
            row["batch_with_reflections_speedup_vs_cctbx_fft_with_miller_set"] = (
                cc["fft"] + cc["miller_set"]
            ) / (row["xtalforge_batch_f32_s"] + row["xtalforge_reflections_s"])
        else:
            row["cctbx_error"] = proc.stderr[-500:]
    return row


def run_gpu(batch: int, d_min: float, device: str) -> dict:
    crystals = [random_crystal("P 1 21 1", 20, seed=5000 + i) for i in range(batch)]
    refls = [reflections(c, d_min) for c in crystals]
    structure_factors_batch(crystals[:64], refls[:64], device=device)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        structure_factors_batch(crystals, refls, device=device)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {
        "device": torch.cuda.get_device_name(),
        "batch": batch,
        "seconds_per_batch": t,
        "structures_per_second": batch / t,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--d-min", type=float, default=0.8)
    ap.add_argument("--no-cctbx", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gemmi": gemmi.__version__,
        "threads": 1,
        "d_min": args.d_min,
        "rows": [],
    }
    if args.device.startswith("cuda"):
        result["gpu"] = run_gpu(args.batch, args.d_min, args.device)
    else:
        for sg in ("P 1 21 1", "C 1 2 1"):
            result["rows"].append(
                run_group(sg, args.n, args.repeats, args.d_min, not args.no_cctbx)
            )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    for row in result["rows"]:
        print(f"\n{row['space_group']}: {row['mean_reflections']:.0f} reflections, ms/structure")
        for key in sorted(k for k in row if k.endswith("_s")):
            print(f"  {key[:-2]:28s} {row[key] * 1e3:8.3f}   ({1 / row[key]:8.0f} structures/s)")
        if "batch_speedup_vs_cctbx_fft" in row:
            print(f"  batched / cctbx FFT speed-up: {row['batch_speedup_vs_cctbx_fft']:.2f}x")


if __name__ == "__main__":
    main()
