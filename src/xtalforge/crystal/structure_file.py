"""One entry point for structure files: small-molecule CIF, PDB or mmCIF, told apart by content."""

from __future__ import annotations

from pathlib import Path

from xtalforge.crystal.model import Crystal

__all__ = ["read_structure"]


def read_structure(path: str | Path) -> Crystal:
    """Read a structure file: ``.pdb``/``.ent`` (PDB), a CIF with Cartesian ``_atom_site``
    coordinates (mmCIF), or any other CIF (small molecule, DDL1 or DDLm names). Errors are
    :class:`~xtalforge.errors.CrystalError` naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pdb", ".ent"):
        return Crystal.from_pdb(path)
    if path.is_file() and suffix != ".ins":
        with open(path, "rb") as fh:
            head = fh.read(200_000).decode("latin-1")
        if "_atom_site.Cartn_x" in head:  # mmCIF model (Cartesian coordinates)
            return Crystal.from_pdb(path)
        if suffix not in (".cif", ".mmcif") and head.lstrip().startswith(("HEADER", "CRYST1",
                                                                            "ATOM", "REMARK")):
            return Crystal.from_pdb(path)
    return Crystal.from_cif(path)
