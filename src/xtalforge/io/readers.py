"""The two entry points for files: :func:`read_structure` (CIF, PDB, mmCIF) and
:func:`read_reflections` (SHELX .hkl, MTZ, XDS_ASCII, CIF ``_refln``). Both tell the format
from the content (:mod:`xtalforge.io.detect`) and hand the file to its one reader."""

from __future__ import annotations

from pathlib import Path

import gemmi

from xtalforge.crystal.model import Crystal
from xtalforge.errors import CrystalError, ReflectionFileError
from xtalforge.io.cif_refln import read_cif_refln
from xtalforge.io.cif_structure import from_small_structure, read_cif
from xtalforge.io.detect import sniff
from xtalforge.io.mtz import read_mtz
from xtalforge.io.pdb import from_structure, read_pdb
from xtalforge.io.shelx_hkl import read_hkl
from xtalforge.io.shelx_model import read_res
from xtalforge.io.types import HklfInstruction, ReflectionData
from xtalforge.io.xds_ascii import read_xds_ascii

__all__ = ["from_gemmi", "read_reflections", "read_structure"]

#: Bytes of a CIF searched for Cartesian atom sites (an mmCIF model).
MMCIF_HEAD_BYTES = 200_000


def read_structure(path: str | Path) -> Crystal:
    """Read a structure file: a SHELX .ins/.res with atoms, PDB (``.pdb``/``.ent``, or PDB
    records in any file), a CIF with
    Cartesian ``_atom_site`` coordinates (mmCIF), or any other CIF (small molecule, DDL1 or
    DDLm names). Errors are :class:`~xtalforge.errors.CrystalError` naming the file."""
    path = Path(path)
    kind = sniff(path)
    if kind == "missing":
        raise CrystalError(f"{path}: no such file")
    if kind == "pdb":
        return read_pdb(path)
    if kind == "shelx_ins":
        return read_res(path)
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(MMCIF_HEAD_BYTES).decode("latin-1")
        if "_atom_site.Cartn_x" in head:  # mmCIF model (Cartesian coordinates)
            return read_pdb(path)
    return read_cif(path)


def from_gemmi(obj: gemmi.SmallStructure | gemmi.Structure, source: str | None = None) -> Crystal:
    """Convert a ``gemmi.SmallStructure`` or ``gemmi.Structure`` (first model)."""
    if isinstance(obj, gemmi.SmallStructure):
        return from_small_structure(obj, source=source)
    if isinstance(obj, gemmi.Structure):
        return from_structure(obj, source=source)
    raise CrystalError(f"cannot convert {type(obj).__name__} to a Crystal")


def read_reflections(path: str | Path, hklf: int | HklfInstruction = 4) -> ReflectionData:
    """Read reflections from an MTZ, a CIF (``_refln`` loop or embedded hkl), an XDS_ASCII or a
    SHELX .hkl file; the format is recognised from the content.

    ``hklf`` says how to read SHELX hkl data: 4 (I, σ(I)) or 3 (F, σ(F)), or the
    :class:`~xtalforge.io.types.HklfInstruction` of the structure's .ins/.res (format, scale and
    index matrix, applied). Hkl data embedded in a CIF follow the ``HKLF`` line of the CIF's own
    ``_shelx_res_file`` unless an instruction is given.
    """
    path = Path(path)
    try:
        return _read_reflections(path, hklf)
    except UnicodeDecodeError as exc:  # gemmi keeps bytes that are not UTF-8 in its strings
        raise ReflectionFileError(f"{path}: bytes that are not text ({exc.reason})") from None


def _read_reflections(path: Path, hklf: int | HklfInstruction) -> ReflectionData:
    kind = sniff(path)
    if kind in ("missing", "folder", "dataset"):
        raise ReflectionFileError(f"{path}: no such file")
    if kind == "mtz":
        return read_mtz(path)
    if kind in ("binary", "checkpoint"):
        what = " (a zip archive: a checkpoint?)" if kind == "checkpoint" else ""
        raise ReflectionFileError(
            f"{path}: a binary file{what}, not reflections (SHELX .hkl, "
            "MTZ, XDS_ASCII or a CIF with _refln)"
        )
    if kind == "xds_ascii":
        return read_xds_ascii(path)
    instruction = hklf if isinstance(hklf, HklfInstruction) else None
    if kind == "cif":
        return read_cif_refln(path, instruction=instruction)
    if not isinstance(hklf, HklfInstruction):
        return read_hkl(path, hklf=int(hklf))
    return hklf.apply(read_hkl(path, hklf=hklf.hkl_format()))
