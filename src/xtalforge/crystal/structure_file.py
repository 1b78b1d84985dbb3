"""One entry point for structure files: small-molecule CIF, PDB or mmCIF, told apart by content."""

from __future__ import annotations

from pathlib import Path

import gemmi

from xtalforge.crystal.model import Crystal
from xtalforge.errors import CrystalError

__all__ = ["MODEL_TAGS", "holds_a_model", "read_structure"]

#: CIF tags that only a structure model has (small-molecule DDL1 and DDLm, mmCIF).
MODEL_TAGS = ("_atom_site_fract_x", "_atom_site.fract_x", "_atom_site.Cartn_x")


def holds_a_model(path: Path) -> bool:
    """A structure file (PDB, or a CIF/mmCIF with atom sites), not reflections."""
    suffix = path.suffix.lower()
    if suffix in (".pdb", ".ent"):
        return True
    if suffix not in (".cif", ".mmcif"):
        return False
    try:
        doc = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        raise CrystalError(f"{path}: not a readable CIF ({exc})") from None
    return any(b.find_value(t) is not None or b.find_loop(t) for b in doc for t in MODEL_TAGS)


def read_structure(path: str | Path) -> Crystal:
    """Read a structure file: ``.pdb``/``.ent`` (PDB), a CIF with Cartesian ``_atom_site``
    coordinates (mmCIF), or any other CIF (small molecule, DDL1 or DDLm names). Errors are
    :class:`~xtalforge.errors.CrystalError` naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pdb", ".ent"):
        return Crystal.from_pdb(path)
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(200_000).decode("latin-1")
        if "_atom_site.Cartn_x" in head:  # mmCIF model (Cartesian coordinates)
            return Crystal.from_pdb(path)
        if suffix not in (".cif", ".mmcif") and head.lstrip().startswith(
            ("HEADER", "CRYST1", "ATOM", "REMARK")
        ):
            return Crystal.from_pdb(path)
    return Crystal.from_cif(path)
