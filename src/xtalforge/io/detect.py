"""What a file is, told by its content (suffixes are only a hint): the one place that decides
whether a path holds a structure model, reflections, a SHELX instruction file, a checkpoint or
a dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import gemmi

from xtalforge.errors import CrystalError

__all__ = [
    "MODEL_TAGS",
    "REFLECTION_TAGS",
    "FileKind",
    "file_kind",
    "holds_a_model",
    "sniff",
]

#: CIF tags that only a structure model has (small-molecule DDL1 and DDLm, mmCIF).
MODEL_TAGS = ("_atom_site_fract_x", "_atom_site.fract_x", "_atom_site.Cartn_x")
#: CIF tags of reflection data (a ``_refln`` loop, or SHELX hkl data embedded in the CIF).
REFLECTION_TAGS = (
    "_refln_index_h",
    "_refln.index_h",
    "_diffrn_refln_index_h",
    "_diffrn_refln.index_h",
    "_shelx_hkl_file",
)
#: Bytes read to recognise a file.
HEAD_BYTES = 4096

FileKind = Literal[
    "missing",
    "folder",
    "dataset",
    "checkpoint",
    "binary",
    "mtz",
    "xds_ascii",
    "shelx_ins",
    "shelx_hkl",
    "cif_model",
    "mmcif_model",
    "cif_reflections",
    "cif",
    "pdb",
]

_PDB_RECORDS = ("HEADER", "CRYST1", "ATOM", "HETATM", "REMARK", "TITLE", "COMPND")
_INS_RECORDS = ("TITL", "CELL", "ZERR", "LATT", "SYMM", "SFAC", "UNIT", "REM")


def _has(block: gemmi.cif.Block, tag: str) -> bool:
    return block.find_value(tag) is not None or bool(block.find_loop(tag))


def _cif_kind(path: Path) -> FileKind:
    try:
        doc = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        raise CrystalError(f"{path}: not a readable CIF ({exc})") from None
    if any(_has(b, "_atom_site.Cartn_x") for b in doc):
        return "mmcif_model"
    if any(_has(b, t) for b in doc for t in MODEL_TAGS):
        return "cif_model"
    if any(_has(b, t) for b in doc for t in REFLECTION_TAGS):
        return "cif_reflections"
    return "cif"


def sniff(path: str | Path) -> FileKind:
    """The kind of ``path`` from its first bytes and suffix alone: as :func:`file_kind`, but
    every CIF is ``cif`` (nothing is parsed)."""
    path = Path(path)
    if path.is_dir():
        return "dataset" if (path / "manifest.json").is_file() else "folder"
    if not path.is_file():
        return "missing"
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if head[:4] == b"MTZ ":
        return "mtz"
    if head[:2] == b"PK":
        return "checkpoint"
    if b"\x00" in head:
        return "binary"
    text = head.decode("latin-1").lstrip()
    suffix = path.suffix.lower()
    if text.startswith("!FORMAT=XDS_ASCII"):
        return "xds_ascii"
    if text.startswith(("data_", "#", "loop_", "global_")):
        return "cif"
    if suffix in (".pdb", ".ent") or text.startswith(_PDB_RECORDS):
        return "pdb"
    if suffix in (".cif", ".mmcif"):
        return "cif"
    first = text.split(None, 1)[0].upper() if text else ""
    if suffix in (".ins", ".res") or first in _INS_RECORDS:
        return "shelx_ins"
    return "shelx_hkl"


def file_kind(path: str | Path) -> FileKind:
    """The kind of ``path``: a folder (``dataset`` when it has a ``manifest.json``), a
    ``checkpoint`` (a zip archive, as torch saves them), ``mtz``, ``xds_ascii``, a CIF
    (``cif_model``, ``mmcif_model``, ``cif_reflections``, or plain ``cif``), ``pdb``,
    ``shelx_ins`` (.ins/.res), ``shelx_hkl`` (any other text), another ``binary`` file, or
    ``missing``. Raises :class:`CrystalError` for a CIF that cannot be parsed."""
    kind = sniff(path)
    return _cif_kind(Path(path)) if kind == "cif" else kind


def holds_a_model(path: str | Path) -> bool:
    """A structure file (PDB, a CIF/mmCIF with atom sites, or a SHELX .ins/.res with atoms),
    not reflections."""
    kind = file_kind(path)
    if kind == "shelx_ins":
        from xtalforge.io.shelx_model import res_has_atoms

        return res_has_atoms(Path(path).read_text(encoding="latin-1"))
    return kind in ("cif_model", "mmcif_model", "pdb")
