"""Macromolecular models (PDB and mmCIF) through gemmi."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.errors import CrystalError

__all__ = ["from_structure", "read_pdb"]


def from_structure(st: gemmi.Structure, source: str | None = None) -> Crystal:
    """Convert the first model of a ``gemmi.Structure``; B factors become U_iso = B/(8π²) Å²."""
    where = f"{source}: " if source else ""
    if len(st) == 0:
        raise CrystalError(f"{where}no model")
    if not st.cell.is_crystal():
        raise CrystalError(f"{where}no unit cell (CRYST1 / _cell) in the model")
    if not st.spacegroup_hm:
        raise CrystalError(f"{where}missing symmetry: no space group in the model")
    try:
        sg = resolve_space_group(st.spacegroup_hm)
    except CrystalError as exc:
        raise CrystalError(f"{where}{exc}") from None
    z, pos, b, occ, labels = [], [], [], [], []
    for chain in st[0]:
        for res in chain:
            for atom in res:
                if atom.element.atomic_number == 0:
                    raise CrystalError(
                        f"{where}atom {chain.name}/{res.name}{res.seqid.num}/"
                        f"{atom.name}: unknown element"
                    )
                if atom.occ <= 0:
                    continue
                z.append(atom.element.atomic_number)
                pos.append(atom.pos.tolist())
                b.append(atom.b_iso)
                occ.append(min(atom.occ, 1.0))
                alt = atom.altloc if atom.altloc != "\0" else ""
                labels.append(f"{chain.name}/{res.name}{res.seqid.num}/{atom.name}{alt}")
    if not z:
        raise CrystalError(f"{where}no atoms")
    frac_mat = np.array(st.cell.frac.mat.tolist())
    frac = np.array(pos) @ frac_mat.T + np.array(st.cell.frac.vec.tolist())
    meta = {"source": source} if source else {}
    try:
        return Crystal(
            st.cell.parameters,
            sg,
            np.array(z, dtype=np.int16),
            frac,
            np.array(b) / (8 * np.pi**2),
            np.array(occ),
            labels,
            meta,
        )
    except CrystalError as exc:
        raise CrystalError(f"{where}{exc}") from None


def read_pdb(path: str | Path) -> Crystal:
    """Read a PDB or mmCIF file (first model; all alternate conformations kept with occupancies)."""
    path = Path(path)
    if not path.is_file():
        raise CrystalError(f"{path}: no such file")
    try:
        st = gemmi.read_structure(str(path), format=gemmi.CoorFormat.Detect)  # by content
    except (RuntimeError, ValueError, OSError) as exc:  # gemmi reports some as OSError
        raise CrystalError(f"{path}: cannot read model: {exc}") from None
    st.setup_entities()
    try:
        return from_structure(st, source=str(path))
    except UnicodeDecodeError as exc:  # gemmi keeps bytes that are not UTF-8 in its strings
        raise CrystalError(f"{path}: bytes that are not text ({exc.reason})") from None
