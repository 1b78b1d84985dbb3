"""XDS_ASCII reflection files (XDS, XSCALE, DIALS ``export format=xds_ascii``) through gemmi."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.errors import ReflectionFileError
from xtalforge.io.types import ReflectionData

__all__ = ["read_xds_ascii"]


def read_xds_ascii(path: str | Path) -> ReflectionData:
    """Read an XDS_ASCII file (XDS, XSCALE, DIALS ``export format=xds_ascii``; merged or not)
    through gemmi. Reflections with a negative σ (XDS marks rejected misfits so) are dropped and
    counted in ``notes``; cell and space group come from the header."""
    path = Path(path)
    try:
        xds = gemmi.read_xds_ascii(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ReflectionFileError(f"{path}: cannot read XDS_ASCII: {exc}") from None
    hkl = np.array(xds.miller_array, dtype=np.int32).reshape(-1, 3)
    values = np.array(xds.iobs_array, dtype=np.float64)
    sigmas = np.array(xds.sigma_array, dtype=np.float64)
    keep = (sigmas >= 0) & np.isfinite(values)
    notes = (
        [] if keep.all() else [f"dropped {(~keep).sum()} reflections with σ < 0 (rejected by XDS)"]
    )
    cell = tuple(float(v) for v in xds.cell_constants)
    sg = gemmi.find_spacegroup_by_number(xds.spacegroup_number) if xds.spacegroup_number else None
    return ReflectionData(
        hkl[keep],
        values[keep],
        sigmas[keep],
        "intensity",
        None,
        cell if all(cell) else None,
        sg,
        str(path),
        notes,
    )
