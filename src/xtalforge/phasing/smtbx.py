"""cctbx's charge flipping (smtbx) as a second, independent solver.

cctbx segfaults when gemmi, torch or scipy.fft were loaded before it in the same process, so
the solver runs as a script (``_smtbx_worker.py``, which imports nothing from xtalforge;
``-P`` keeps this folder, whose ``smtbx.py`` would shadow the real package, off its path) in
a fresh Python process; the structures travel as JSON on stdin. Needs the optional extra:
``pip install 'xtalforge[cctbx]'`` (the ``cctbx-base`` wheel from PyPI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import ReflectionError, XtalforgeError

__all__ = ["SmtbxRun", "smtbx_available", "smtbx_solve_batch"]

_WORKER = Path(__file__).with_name("_smtbx_worker.py")
INSTALL_HINT = (
    "the smtbx solver needs cctbx: pip install 'xtalforge[cctbx]' (or pip install cctbx-base)"
)


@dataclass(frozen=True)
class SmtbxRun:
    """One smtbx random start: symmetrised ASU phases (radians; None when smtbx found no
    solution), raw P1 phases of the same reflections, correlation-peak height of the origin
    search, whether a phase transition was detected, and the wall time (s) inside cctbx."""

    phases: np.ndarray | None
    p1_phases: np.ndarray
    cc_peak_height: float | None
    phase_transition: bool
    seconds: float
    error: str | None = None


def smtbx_available() -> bool:
    """True when cctbx/smtbx can be imported (checked without importing it here)."""
    return (
        importlib.util.find_spec("cctbx") is not None
        and importlib.util.find_spec("smtbx") is not None
    )


def smtbx_solve_batch(
    refls: list[Reflections],
    amplitudes: list[np.ndarray],
    starts: int = 1,
    seed: int = 0,
    amplitude_type: str = "F",
    timeout: float | None = None,
) -> list[list[SmtbxRun]]:
    """Solve each structure with smtbx's weak-reflection-improved charge flipping from
    ``starts`` random starts (``amplitude_type``: ``F`` as given, or ``quasi-E`` to let smtbx
    normalise). One subprocess for the whole batch."""
    if not smtbx_available():
        raise XtalforgeError(INSTALL_HINT)
    if len(refls) != len(amplitudes):
        raise ReflectionError("smtbx_solve_batch needs one amplitude array per Reflections")
    jobs = []
    for k, (refl, amp) in enumerate(zip(refls, amplitudes, strict=True)):
        amp = np.abs(np.asarray(amp, float))
        if amp.shape != (len(refl),) or not np.isfinite(amp).all():
            raise ReflectionError("amplitudes must be finite, one per reflection")
        jobs.append(
            {
                "cell": list(refl.cell),
                "hall": refl.spacegroup.hall,
                "hkl": refl.hkl.tolist(),
                "amplitudes": amp.tolist(),
                "starts": starts,
                "seed": seed * 1000003 + k + 1,
                "amplitude_type": amplitude_type,
            }
        )
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(
        [sys.executable, "-P", str(_WORKER)],
        input=json.dumps({"jobs": jobs}),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise XtalforgeError(
            f"smtbx solver failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    out = json.loads(proc.stdout)["results"]
    return [
        [
            SmtbxRun(
                None if r["phases"] is None else np.asarray(r["phases"], float),
                np.asarray(r["p1_phases"], float),
                r["cc_peak_height"],
                r["phase_transition"],
                r["seconds"],
                r["error"],
            )
            for r in runs
        ]
        for runs in out
    ]
