"""SHELX reflection files: HKLF 4 (I, σ(I)) and HKLF 3 (F, σ(F)).

Lines are fixed-format ``(3I4, 2F8.2, I4)``: h, k, l, value, sigma and an optional batch
number; a line with h = k = l = 0 terminates the data. Free-format (whitespace-separated) lines
are read as a fallback.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from xtalforge.errors import ReflectionFileError
from xtalforge.io.types import ReflectionData

__all__ = ["parse_hkl_text", "read_hkl", "write_hkl"]


def _parse_line(line: str) -> tuple[int, int, int, float, float, int | None]:
    """Fixed columns first; whitespace-separated as a fallback for free-format writers."""
    try:
        h, k, l = int(line[0:4]), int(line[4:8]), int(line[8:12])
        if h == k == l == 0:
            return 0, 0, 0, 0.0, 0.0, None
        v, s = float(line[12:20]), float(line[20:28])
        rest = line[28:32].strip()
        return h, k, l, v, s, int(rest) if rest else None
    except ValueError:
        parts = line.split()
        if len(parts) not in (5, 6):
            raise
        batch = int(parts[5]) if len(parts) == 6 else None
        return (
            int(parts[0]),
            int(parts[1]),
            int(parts[2]),
            float(parts[3]),
            float(parts[4]),
            batch,
        )


def parse_hkl_text(text: str, source: str = "<string>", hklf: int = 4) -> ReflectionData:
    """Parse the text of an HKLF 4 or 3 file; errors name ``source`` and the line number."""
    if hklf not in (3, 4):
        raise ReflectionFileError(f"{source}: HKLF {hklf} is not supported (use 3 or 4)")
    rows: list[tuple[int, int, int, float, float, int | None]] = []
    terminated = False
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = _parse_line(line.rstrip("\r\n"))
        except ValueError:
            raise ReflectionFileError(
                f"{source}:{no}: cannot read h k l value sigma from {line.strip()!r}"
            ) from None
        if row[:3] == (0, 0, 0):
            terminated = True
            break
        if not (math.isfinite(row[3]) and math.isfinite(row[4])):
            raise ReflectionFileError(f"{source}:{no}: value or sigma is not a finite number")
        rows.append(row)
    if not rows:
        raise ReflectionFileError(f"{source}: no reflections")
    notes = []
    if not terminated:
        msg = f"{source}: no terminating '0 0 0' line; the file may be truncated"
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
    hkl = np.array([r[:3] for r in rows], dtype=np.int32)
    vals = np.array([r[3] for r in rows])
    sig = np.array([r[4] for r in rows])
    batches = [r[5] for r in rows]
    batch = (
        None
        if all(b is None for b in batches)
        else np.array([0 if b is None else b for b in batches], dtype=np.int32)
    )
    return ReflectionData(
        hkl, vals, sig, "intensity" if hklf == 4 else "amplitude", batch, source=source, notes=notes
    )


def read_hkl(path: str | Path, hklf: int = 4) -> ReflectionData:
    """Read a SHELX HKLF 4 (``hklf=4``: I, σ(I)) or HKLF 3 (F, σ(F)) file."""
    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise ReflectionFileError(f"{path}: {exc}") from None
    return parse_hkl_text(text, str(path), hklf)


def write_hkl(
    path: str | Path,
    hkl: np.ndarray,
    values: np.ndarray,
    sigmas: np.ndarray | None = None,
    hklf: int = 4,
    batch: np.ndarray | None = None,
) -> float:
    """Write an HKLF 4 (intensities) or HKLF 3 (amplitudes) file with its ``0 0 0`` line.

    Values that would overflow the F8.2 columns are scaled down by a power of ten; the factor
    applied is returned (1.0 when none). Sigmas default to 1 % of |value| (at least 0.01).
    """
    hkl = np.asarray(hkl, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if hklf not in (3, 4):
        raise ReflectionFileError(f"{path}: HKLF {hklf} is not supported (use 3 or 4)")
    if hkl.ndim != 2 or hkl.shape[1] != 3 or len(values) != len(hkl):
        raise ReflectionFileError(f"{path}: need (n, 3) indices and n values")
    if not np.isfinite(values).all():
        raise ReflectionFileError(f"{path}: values must be finite")
    if np.abs(hkl).max(initial=0) > 999:
        raise ReflectionFileError(f"{path}: Miller indices above 999 do not fit HKLF columns")
    sig = (
        np.maximum(0.01 * np.abs(values), 0.01)
        if sigmas is None
        else np.asarray(sigmas, dtype=np.float64)
    )
    biggest = max(float(np.abs(values).max(initial=0)), float(np.abs(sig).max(initial=0)))
    scale = 1.0
    while biggest * scale >= 99999.99:
        scale /= 10.0
    lines = []
    for i, (h, k, l) in enumerate(hkl):
        line = f"{h:4d}{k:4d}{l:4d}{values[i] * scale:8.2f}{sig[i] * scale:8.2f}"
        if batch is not None:
            line += f"{int(batch[i]):4d}"
        lines.append(line)
    lines.append(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}")
    Path(path).write_text("\n".join(lines) + "\n")
    return scale
