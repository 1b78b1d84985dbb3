"""cctbx side of the generator benchmark (own process: cctbx must be imported first)."""

from __future__ import annotations

import json
import statistics
import sys
import time

from cctbx import sgtbx
from cctbx.development import random_structure


def main() -> None:
    p = json.load(sys.stdin)
    info = sgtbx.space_group_info("P 1 21/c 1")
    times = []
    for _ in range(p["repeats"]):
        t0 = time.perf_counter()
        for n in p["atoms"]:
            random_structure.xray_structure(
                info, elements=["C"] * n, volume_per_atom=18.0, min_distance=1.2, random_u_iso=True
            )
        times.append((time.perf_counter() - t0) / len(p["atoms"]))
    json.dump({"random_structure_s": statistics.median(times)}, sys.stdout)


if __name__ == "__main__":
    main()
