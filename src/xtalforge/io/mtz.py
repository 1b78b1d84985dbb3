"""MTZ reflection files (CCP4) through gemmi: one data column and its sigma."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.errors import ReflectionFileError
from xtalforge.io.types import ReflectionData

__all__ = ["read_mtz"]


def _check_header_offset(path: Path) -> None:
    """Refuse a file whose header record would lie beyond its end (truncated or damaged), before
    gemmi seeks there: bytes 4–8 give the header's position in 4-byte words (little-endian
    unless the machine stamp at byte 9 says big-endian)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    size = path.stat().st_size
    if len(head) < 12:
        raise ReflectionFileError(f"{path}: not an MTZ file (only {size} bytes)")
    big = head[9] >> 4 == 1
    offset = int.from_bytes(head[4:8], "big" if big else "little", signed=True)
    if offset <= 0 or (offset - 1) * 4 >= size:
        raise ReflectionFileError(
            f"{path}: the MTZ header is said to start at byte {(offset - 1) * 4}, beyond the "
            f"file's {size} bytes: truncated or damaged"
        )


def read_mtz(path: str | Path, column: str | None = None) -> ReflectionData:
    """Read one data column (and its sigma) from an MTZ file via gemmi.

    Without ``column`` the first intensity column (type J) is taken, else the first amplitude
    column (type F); a file with only anomalous pairs (I(+)/I(-), type K, or F(+)/F(-), type G)
    gives the mean of each Friedel pair (or the one measured mate). Rows where the value is
    missing (NaN) are dropped and counted in ``notes``.
    """
    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    _check_header_offset(path)
    try:
        mtz = gemmi.read_mtz_file(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ReflectionFileError(f"{path}: cannot read MTZ: {exc}") from None
    labels = [c.label for c in mtz.columns]
    if column is None:
        for kind in ("J", "F"):
            found = [c for c in mtz.columns if c.type == kind]
            if found:
                column = found[0].label
                break
        else:
            for kind, sig_kind in (("K", "M"), ("G", "L")):
                if sum(c.type == kind for c in mtz.columns) >= 2:
                    return _friedel_mean(mtz, path, kind, sig_kind)
            raise ReflectionFileError(
                f"{path}: no intensity (J, or K pairs) or amplitude (F, or "
                f"G pairs) column; columns are {labels}"
            )
    if column not in labels:
        raise ReflectionFileError(f"{path}: no column {column!r}; columns are {labels}")
    col = mtz.column_with_label(column)
    idx = labels.index(column)
    sig = None
    if idx + 1 < len(labels) and mtz.columns[idx + 1].type == "Q":
        sig = np.array(mtz.columns[idx + 1], dtype=np.float64)
    values = np.array(col, dtype=np.float64)
    hkl = np.array(mtz.make_miller_array(), dtype=np.int32)
    keep = np.isfinite(values)
    notes = []
    if (~keep).any():
        notes.append(f"dropped {(~keep).sum()} reflections with no value in {column}")
    return ReflectionData(
        hkl[keep],
        values[keep],
        None if sig is None else sig[keep],
        "intensity" if col.type == "J" else "amplitude",
        None,
        tuple(mtz.cell.parameters),
        mtz.spacegroup,
        str(path),
        notes,
    )


def _friedel_mean(mtz: gemmi.Mtz, path: Path, kind: str, sig_kind: str) -> ReflectionData:
    """Mean of the first anomalous pair of columns of type ``kind`` (K: I(+)/I(-), G: F(+)/F(-));
    σ of the mean ``sqrt(σ₊² + σ₋²)/2``, or the single mate's value and σ."""
    cols = list(mtz.columns)
    pair = [i for i, c in enumerate(cols) if c.type == kind][:2]
    values = [np.array(cols[i], dtype=np.float64) for i in pair]
    sigmas = [
        np.array(cols[i + 1], dtype=np.float64)
        if i + 1 < len(cols) and cols[i + 1].type == sig_kind
        else None
        for i in pair
    ]
    plus, minus = values
    both = np.isfinite(plus) & np.isfinite(minus)
    mean = np.where(both, 0.5 * (plus + minus), np.where(np.isfinite(plus), plus, minus))
    sig = None
    sp, sm = sigmas
    if sp is not None and sm is not None:
        sig = np.where(both, 0.5 * np.sqrt(sp**2 + sm**2), np.where(np.isfinite(plus), sp, sm))
    keep = np.isfinite(mean)
    names = f"{cols[pair[0]].label}/{cols[pair[1]].label}"
    notes = [f"merged the Friedel pairs {names} into their mean ({both.sum()} with both mates)"]
    if (~keep).any():
        notes.append(f"dropped {(~keep).sum()} reflections with neither mate in {names}")
    hkl = np.array(mtz.make_miller_array(), dtype=np.int32)
    return ReflectionData(
        hkl[keep],
        mean[keep],
        None if sig is None else sig[keep],
        "intensity" if kind == "K" else "amplitude",
        None,
        tuple(mtz.cell.parameters),
        mtz.spacegroup,
        str(path),
        notes,
    )
