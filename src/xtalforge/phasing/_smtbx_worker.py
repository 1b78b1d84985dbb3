"""smtbx charge flipping, run as a script in its own process (cctbx segfaults when gemmi, torch
or scipy.fft were imported before it). It imports nothing from xtalforge.

stdin: JSON ``{"jobs": [{"cell", "hall", "hkl", "amplitudes", "starts", "seed",
"amplitude_type"}]}``; stdout: JSON ``{"results": [[run, …], …]}`` with, per random start, the
symmetrised solution's phases (radians, for the given hkl; null when smtbx found none), the raw
P1 phases of the same reflections, the correlation-peak height, whether a phase transition was
seen, and the wall time (s).
"""

from __future__ import annotations

import json
import math
import sys
import time

from cctbx import crystal, miller
from cctbx.array_family import flex
from smtbx.ab_initio import charge_flipping


class _SolvingIterator(charge_flipping.solving_iterator):
    """smtbx's solver with its Python 3 bug worked around: after two failed attempts it
    multiplies ``max_solving_iterations`` by 1.5, a float that ``itertools.islice`` rejects."""

    _max_solving_iterations = charge_flipping.solving_iterator.max_solving_iterations

    @property
    def max_solving_iterations(self) -> int:
        return int(self._max_solving_iterations)

    @max_solving_iterations.setter
    def max_solving_iterations(self, value: float) -> None:
        self._max_solving_iterations = value


def _lookup(arr: miller.array, hkl: list) -> list[float]:
    """Phases (radians) of ``arr`` at ``hkl`` (Friedel mates by conjugation); NaN if absent."""
    table = {}
    for h, f in zip(arr.indices(), arr.data()):
        table[tuple(h)] = math.atan2(f.imag, f.real)
    out = []
    for h in hkl:
        h = tuple(h)
        if h in table:
            out.append(table[h])
        elif (-h[0], -h[1], -h[2]) in table:
            out.append(-table[(-h[0], -h[1], -h[2])])
        else:
            out.append(float("nan"))
    return out


def _solve(job: dict) -> list[dict]:
    sym = crystal.symmetry(unit_cell=job["cell"], space_group_symbol="Hall: " + job["hall"])
    hkl = [tuple(int(v) for v in h) for h in job["hkl"]]
    ms = miller.set(sym, flex.miller_index(hkl), anomalous_flag=False)
    f_obs = miller.array(ms, data=flex.double(job["amplitudes"]))
    f_obs.set_observation_type_xray_amplitude()
    p1_sym = sym.cell_equivalent_p1()
    runs = []
    flex.set_random_seed(int(job["seed"]))
    for _ in range(int(job["starts"])):
        extra = {}
        if job.get("amplitude_type") == "quasi-E":
            extra["normalisations_for"] = charge_flipping.amplitude_quasi_normalisations
        t0 = time.perf_counter()
        flipping = charge_flipping.weak_reflection_improved_iterator(delta=None)
        solving = _SolvingIterator(flipping, f_obs, **extra)
        try:
            charge_flipping.loop(solving, verbose=False, out=sys.stderr)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        raw = getattr(flipping, "f_calc", None)  # absent when smtbx failed before flipping
        if raw is None:
            p1_phases = [float("nan")] * len(hkl)
        else:
            raw_p1 = miller.array(
                miller.set(p1_sym, raw.indices(), anomalous_flag=False), raw.data()
            )
            p1_phases = _lookup(raw_p1, hkl)
        phases, height, shift = None, None, None
        if solving.f_calc_solutions:
            f_calc, shift, height = solving.f_calc_solutions[0]
            phases = _lookup(f_calc.map_to_asu(), [tuple(h) for h in ms.map_to_asu().indices()])
            # map_to_asu keeps the order; a reflection given outside the ASU changes phase by
            # its symmetry relation, so look such reflections up in P1 form instead
            if any(a != b for a, b in zip(ms.indices(), ms.map_to_asu().indices())):
                full = f_calc.expand_to_p1()
                phases = _lookup(full, hkl)
            shift = list(shift)
        runs.append(
            {
                "phases": phases,
                "p1_phases": p1_phases,
                "cc_peak_height": height,
                "shift": shift,
                "phase_transition": bool(solving.had_phase_transition),
                "seconds": seconds,
                "error": error,
            }
        )
    return runs


def main() -> None:
    payload = json.load(sys.stdin)
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # smtbx prints; keep stdout for JSON
    results = [_solve(job) for job in payload["jobs"]]
    json.dump({"results": results}, real_stdout)


if __name__ == "__main__":
    main()
