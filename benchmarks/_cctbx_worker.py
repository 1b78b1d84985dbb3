"""cctbx side of the structure-factor benchmark; runs in its own process (cctbx must be imported
before gemmi/torch/scipy.fft). Reads structures as JSON on stdin, prints per-method timings."""

from __future__ import annotations

import json
import statistics
import sys
import time

from cctbx import crystal, miller, xray
from cctbx.array_family import flex


def main() -> None:
    payload = json.load(sys.stdin)
    repeats = payload["repeats"]
    prepared = []
    for s in payload["structures"]:
        sym = crystal.symmetry(unit_cell=s["cell"], space_group_symbol="Hall: " + s["hall"])
        sc = flex.xray_scatterer()
        for lab, el, xyz, u, occ in s["atoms"]:
            sc.append(xray.scatterer(label=lab, scattering_type=el, site=xyz, u=u, occupancy=occ))
        xs = xray.structure(crystal_symmetry=sym, scatterers=sc)
        xs.scattering_type_registry(table="it1992")
        ms = miller.set(sym, flex.miller_index([tuple(h) for h in s["hkl"]]), anomalous_flag=False)
        prepared.append((xs, ms))
    out = {}
    for algorithm in ("direct", "fft"):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for xs, ms in prepared:
                ms.structure_factors_from_scatterers(xs, algorithm=algorithm).f_calc()
            times.append((time.perf_counter() - t0) / len(prepared))
        out[algorithm] = statistics.median(times)
    # also the cost of building the Miller set itself, as a pipeline would
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for xs, _ms in prepared:
            xs.build_miller_set(anomalous_flag=False, d_min=payload["d_min"])
        times.append((time.perf_counter() - t0) / len(prepared))
    out["miller_set"] = statistics.median(times)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
