"""Calculated structure factors written for other programs: MTZ (CCP4, Phenix, Coot) and CIF
``_refln`` loops (small-molecule programs), both through gemmi."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import ReflectionFileError
from xtalforge.io.cif_structure import set_cell_and_symmetry
from xtalforge.io.shelx_hkl import write_hkl

__all__ = [
    "SF_FORMATS",
    "write_calculated_cif",
    "write_calculated_mtz",
    "write_structure_factors",
]


def _check(refl: Reflections, f: np.ndarray, e: np.ndarray | None, path: Path) -> None:
    if len(f) != len(refl) or (e is not None and len(e) != len(refl)):
        raise ReflectionFileError(
            f"{path}: {len(refl)} reflections but {len(f)} structure "
            f"factors{'' if e is None else f' and {len(e)} E values'}"
        )
    if not np.isfinite(f).all():
        raise ReflectionFileError(f"{path}: non-finite structure factors")


def write_calculated_mtz(
    path: str | Path, refl: Reflections, f: np.ndarray, e: np.ndarray | None = None
) -> None:
    """Write columns FC (|F|), PHIC (phase, degrees) and, when given, E (|E|) with the cell and
    space group of ``refl``."""
    path = Path(path)
    _check(refl, f, e, path)
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = refl.spacegroup
    mtz.set_cell_for_all(gemmi.UnitCell(*refl.cell))
    mtz.add_dataset("xtalforge")
    mtz.add_column("FC", "F")
    mtz.add_column("PHIC", "P")
    columns = [refl.hkl.astype(np.float32), np.abs(f)[:, None], np.degrees(np.angle(f))[:, None]]
    if e is not None:
        mtz.add_column("E", "E")
        columns.append(np.asarray(e)[:, None])
    mtz.set_data(np.hstack(columns).astype(np.float32))
    mtz.write_to_file(str(path))


def write_calculated_cif(
    path: str | Path, refl: Reflections, f: np.ndarray, name: str = "xtalforge"
) -> None:
    """Write a small-molecule CIF block: cell, space group (H-M, Hall, operators) and a
    ``_refln`` loop of h, k, l, d (Å), F_calc and phase_calc (degrees), core-dictionary names
    only."""
    path = Path(path)
    _check(refl, f, None, path)
    doc = gemmi.cif.Document()
    block = doc.add_new_block(name)
    set_cell_and_symmetry(block, refl.cell, refl.spacegroup)
    loop = block.init_loop(
        "_refln_", ["index_h", "index_k", "index_l", "d_spacing", "F_calc", "phase_calc"]
    )
    amp, phase = np.abs(f), np.degrees(np.angle(f))
    for i, (h, k, l) in enumerate(refl.hkl.tolist()):
        loop.add_row(
            [str(h), str(k), str(l), f"{refl.d[i]:.5f}", f"{amp[i]:.5f}", f"{phase[i]:.3f}"]
        )
    doc.write_file(str(path))


#: Output formats of :func:`write_structure_factors`, by suffix.
SF_FORMATS = (".mtz", ".cif", ".hkl", ".csv", ".parquet")


def write_structure_factors(
    path: str | Path, refl: Reflections, f: np.ndarray, e: np.ndarray
) -> float:
    """Write calculated structure factors in the format the suffix of ``path`` names: .mtz
    (FC, PHIC, E), .cif (``_refln`` F_calc, phase_calc), .hkl (HKLF 4 intensities), .csv or
    .parquet (h, k, l, d, ε, centric, F, phase in radians, E). Returns the factor the
    intensities were scaled by to fit the HKLF columns (1.0 otherwise)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SF_FORMATS:
        raise ReflectionFileError(f"{path}: unknown output format (use {', '.join(SF_FORMATS)})")
    if suffix == ".hkl":
        return write_hkl(path, refl.hkl, np.abs(f) ** 2, hklf=4)
    if suffix == ".mtz":
        write_calculated_mtz(path, refl, f, e)
    elif suffix == ".cif":
        write_calculated_cif(path, refl, f, name=path.stem)
    else:
        import pyarrow as pa

        table = pa.table(
            {
                "h": refl.hkl[:, 0],
                "k": refl.hkl[:, 1],
                "l": refl.hkl[:, 2],
                "d": refl.d,
                "epsilon": refl.epsilon,
                "centric": refl.centric,
                "F": np.abs(f),
                "phase": np.angle(f),
                "E": e,
            }
        )
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, path)
    return 1.0
