"""cctbx side of the dataset benchmark (own process: cctbx must be imported first).

The thesis generator's per-structure work: `random_structure.xray_structure` + structure factors
to d_min + normalised amplitudes + `np.savez_compressed` of hkl, |F|, phases and |E|.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time

import numpy as np
from cctbx import sgtbx
from cctbx.development import random_structure


def one(info, elements: list[str], d_min: float) -> bytes:
    xs = random_structure.xray_structure(
        info, elements=elements, volume_per_atom=18.0, min_distance=1.2, random_u_iso=True
    )
    f = xs.structure_factors(d_min=d_min).f_calc()
    amp = f.amplitudes().set_observation_type_xray_amplitude()
    asu: dict[str, int] = {}
    for sc in xs.scatterers():
        asu[sc.scattering_type] = asu.get(sc.scattering_type, 0) + 1
    e = amp.normalised_amplitudes(asu, wilson_plot=None).array()
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        hkl=np.array(f.indices(), dtype=np.int16),
        f=amp.data().as_numpy_array().astype(np.float32),
        phase=f.phases().data().as_numpy_array().astype(np.float32),
        e=e.data().as_numpy_array().astype(np.float32),
    )
    return buf.getvalue()


def main() -> None:
    p = json.load(sys.stdin)
    infos = {sg: sgtbx.space_group_info(sg) for sg in {s for s, _ in p["structures"]}}
    one(infos[p["structures"][0][0]], p["structures"][0][1], p["d_min"])  # warm-up
    times = []
    for _ in range(p["repeats"]):
        t0 = time.perf_counter()
        size = 0
        for sg, elements in p["structures"]:
            size += len(one(infos[sg], elements, p["d_min"]))
        times.append((time.perf_counter() - t0) / len(p["structures"]))
    json.dump({"seconds_per_structure": statistics.median(times), "bytes": size}, sys.stdout)


if __name__ == "__main__":
    main()
