"""Small-molecule CIF input and output (through gemmi's CIF parser)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from xtalforge.crystal.model import OCC_SLACK, Crystal
from xtalforge.crystal.symmetry import resolve_space_group, space_group_from_ops
from xtalforge.errors import CrystalError

__all__ = [
    "cif_entries",
    "cif_files",
    "ddl1_block",
    "entry_name",
    "from_small_structure",
    "read_cif",
    "set_cell_and_symmetry",
    "symmetry_duplicates",
    "write_cif",
]

_U_TAGS = ("_atom_site_U_iso_or_equiv", "_atom_site.U_iso_or_equiv")
_B_TAGS = ("_atom_site_B_iso_or_equiv", "_atom_site.B_iso_or_equiv")
#: Refined occupancies up to this are read as 1 (with a warning); larger ones are an error.
MAX_REFINED_OCC = 1.05
_DUMMY = re.compile(r"^[Qq]\d*$")  # residual density peaks (SHELXL "Q1", "Q12")


def cif_files(folder: str | Path) -> list[Path]:
    """The structure files of a folder, sorted by name: ``.cif`` (any case of the suffix) and
    SHELX ``.res``/``.ins`` files that hold atoms; raises :class:`CrystalError` when the folder
    is missing or holds none."""
    from xtalforge.io.shelx_model import res_has_atoms

    folder = Path(folder)
    if not folder.is_dir():
        raise CrystalError(f"{folder}: not a folder")
    files = []
    for p in sorted(folder.iterdir()):
        suffix = p.suffix.lower()
        if not p.is_file() or suffix not in (".cif", ".res", ".ins"):
            continue
        if suffix == ".cif" or res_has_atoms(p.read_text(encoding="latin-1")):
            files.append(p)
    if not files:
        raise CrystalError(f"{folder}: no *.cif files (nor SHELX .res/.ins with atoms)")
    return files


def cif_entries(folder: str | Path) -> list[tuple[Path, str | None]]:
    """One (file, block) per structure in a folder of CIFs: ``(path, None)`` for a file with one
    data block (or one that cannot be parsed: its reader reports why), and one entry per block
    with atom sites for a file that holds several structures (journal supplements often do)."""
    out: list[tuple[Path, str | None]] = []
    for path in cif_files(folder):
        if path.suffix.lower() != ".cif":
            out.append((path, None))
            continue
        with open(path, "rb") as fh:
            n_blocks = sum(line[:5].lower() == b"data_" for line in fh)
        if n_blocks <= 1:
            out.append((path, None))
            continue
        try:
            doc = gemmi.cif.read(str(path))
        except (RuntimeError, ValueError):
            out.append((path, None))
            continue
        names = [
            b.name
            for b in doc
            if any(
                b.find_value(t) is not None or b.find_loop(t)
                for t in ("_atom_site_fract_x", "_atom_site.fract_x")
            )
        ]
        out.extend([(path, name) for name in names] if len(names) > 1 else [(path, None)])
    return out


def entry_name(path: Path, block: str | None) -> str:
    """How reports name a structure: the file name, with ``[block]`` when a file holds several."""
    return path.name if block is None else f"{path.name} [{block}]"


def _read_document(path: Path) -> gemmi.cif.Document:
    if not path.is_file():
        raise CrystalError(f"{path}: no such file")
    try:
        return gemmi.cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        msg = str(exc).replace(str(path), "").lstrip(":")
        raise CrystalError(f"{path}: malformed CIF: {msg}") from None


def _pick_block(doc: gemmi.cif.Document, block: str | int | None, path: Path) -> gemmi.cif.Block:
    if isinstance(block, int):
        if not 0 <= block < len(doc):
            raise CrystalError(f"{path}: no data block #{block} (file has {len(doc)})")
        return doc[block]
    if isinstance(block, str):
        found = doc.find_block(block)
        if found is None:
            raise CrystalError(f"{path}: no data block named {block!r}")
        return found
    for b in doc:
        if any(
            b.find_value(t) is not None or b.find_loop(t)
            for t in ("_atom_site_fract_x", "_atom_site.fract_x")
        ):
            return b
    raise CrystalError(f"{path}: no data block with atom sites (_atom_site_fract_x)")


def _item_tags(item: gemmi.cif.Item) -> list[str]:
    if item.pair is not None:
        pair: tuple[str, str] = item.pair  # type: ignore[assignment]  # gemmi's stub
        return [pair[0]]
    return list(item.loop.tags) if item.loop is not None else []


def ddl1_block(block: gemmi.cif.Block) -> gemmi.cif.Block:
    """A copy of a block written with DDLm/CIF2 names (``_cell.length_a``,
    ``_atom_site.fract_x``) under their DDL1 aliases (``_cell_length_a``), which gemmi's
    small-structure reader expects; also mixed blocks, as cctbx's ``as_cif_simple`` writes them
    (DDL1 atom sites, DDLm ``_space_group_symop.operation_xyz`` and ``_cell.length_a``). Blocks
    already in DDL1 form are returned unchanged."""
    tags = [t for item in block for t in _item_tags(item)]
    dotted = any("." in tag for tag in tags)
    if not dotted:
        return block
    out = gemmi.cif.Document().add_new_block(block.name)
    for item in block:
        if item.pair is not None:
            pair: tuple[str, str] = item.pair  # type: ignore[assignment]  # gemmi's stub
            out.set_pair(pair[0].replace(".", "_", 1), pair[1])
        elif item.loop is not None:
            loop = item.loop
            new = out.init_loop("", [t.replace(".", "_", 1) for t in loop.tags])
            values, width = list(loop.values), loop.width()
            for start in range(0, len(values), width):
                new.add_row(values[start : start + width])
    return out


def _missing_u(block: gemmi.cif.Block, n: int) -> np.ndarray:
    """Mask of sites whose CIF gives neither U_iso nor B_iso (``?``, ``.`` or no column)."""
    missing = np.ones(n, dtype=bool)
    for tag in _U_TAGS + _B_TAGS:
        col = block.find_values(tag)
        if len(col) == n:
            missing &= np.array([v in ("?", ".") for v in col], dtype=bool)
    return missing


def _space_group(small: gemmi.SmallStructure, where: str) -> tuple[gemmi.SpaceGroup, str | None]:
    """The space group and, when the operators contradict the stated symbol, a note saying so."""
    try:
        if small.symops:
            sg = space_group_from_ops(list(small.symops))
            return sg, _symbol_conflict(small, sg, where)
        for value in (small.spacegroup_hall, small.spacegroup_hm):
            if value and value not in ("?", "."):
                return resolve_space_group(value), None
        if small.spacegroup_number:
            return resolve_space_group(int(small.spacegroup_number)), None
    except CrystalError as exc:
        raise CrystalError(f"{where}{exc}") from None
    raise CrystalError(
        f"{where}missing symmetry: no symmetry operators, Hall or H-M symbol, or space-group number"
    )


def _symbol_conflict(small: gemmi.SmallStructure, sg: gemmi.SpaceGroup, where: str) -> str | None:
    """A note when the H-M symbol or IT number names another space-group type than the operators
    (settings of the same type, e.g. P 21/c for P 1 21/n 1 operators, are not a conflict)."""
    stated = small.spacegroup_number or None
    if small.spacegroup_hm and small.spacegroup_hm not in ("?", "."):
        try:
            stated = resolve_space_group(small.spacegroup_hm).number
        except CrystalError:
            pass
    if stated is None or stated == sg.number:
        return None
    return (
        f"{where}the symmetry operators generate {sg.xhm()} (No. {sg.number}) but the file "
        f"states No. {stated} ({small.spacegroup_hm or 'no symbol'}); used the operators"
    )


#: Å: atoms of one element closer than this to a symmetry image of another are one site.
DUPLICATE_DISTANCE = 0.1


def symmetry_duplicates(
    cell: gemmi.UnitCell,
    sg: gemmi.SpaceGroup,
    z: np.ndarray,
    frac: np.ndarray,
    occ: np.ndarray,
) -> list[tuple[int, int]]:
    """(i, j) pairs, j < i, where atom i lies within :data:`DUPLICATE_DISTANCE` Å of a symmetry
    image of an earlier atom j of the same element and the two occupancies add up to more than
    a full site (``MAX_REFINED_OCC``): atom i is j again, as a CIF that also lists the
    symmetry-generated atoms of a molecule on a special position has it (COD's ``C1B*``).
    Split sites of a disorder (occupancies adding to one) are not duplicates."""
    ops = sg.operations()
    rot = np.array([op.rot for op in ops], float) / gemmi.Op.DEN
    tran = np.array([op.tran for op in ops], float) / gemmi.Op.DEN
    orth = np.array(cell.orth.mat.tolist())
    images = np.einsum("sij,nj->nsi", rot, frac) + tran  # (n, s, 3)
    pairs = []
    for i in range(1, len(z)):
        same = np.flatnonzero((z[:i] == z[i]) & (occ[:i] + occ[i] > MAX_REFINED_OCC))
        if not len(same):
            continue
        d = frac[i] - images[same]
        d -= np.round(d)
        near = (np.linalg.norm(d @ orth.T, axis=2) < DUPLICATE_DISTANCE).any(axis=1)
        if near.any():
            pairs.append((i, int(same[near][0])))
    return pairs


def _some(labels: list[str]) -> str:
    """The first five labels, with an ellipsis when there are more."""
    return ", ".join(labels[:5]) + (" …" if len(labels) > 5 else "")


def _warn(notes: list[str], message: str) -> None:
    """Keep ``message`` for ``metadata["warnings"]`` and warn the caller of the reader."""
    notes.append(message)
    warnings.warn(message, stacklevel=4)


def _dummy_sites(block: gemmi.cif.Block | None, sites: list) -> np.ndarray:
    """Mask of sites that are not atoms: SHELXL residual peaks (type or, without a type, label
    ``Q<n>``) and rows flagged ``_atom_site_calc_flag dum``."""
    dummy = np.array([bool(_DUMMY.match(s.type_symbol or s.label)) for s in sites], dtype=bool)
    if block is not None:
        flags = block.find_values("_atom_site_calc_flag")
        if len(flags) == len(sites):
            dummy |= np.array([v.lower() == "dum" for v in flags], dtype=bool)
    return dummy


def _site(
    site: gemmi.SmallStructure.Site,
    no_u: bool,
    cell: gemmi.UnitCell,
    default_u_iso: float,
    where: str,
    filled: list[str],
    capped: list[str],
) -> tuple[int, list[float], float, float, str]:
    """(Z, fractional position, U_iso in Å², occupancy, label) of one atom site; U_eq when only
    U_aniso is given, ``default_u_iso`` when no U is (named in ``filled``); a refined
    occupancy slightly above 1 is taken as 1 (named in ``capped``)."""
    if site.element.atomic_number == 0:
        raise CrystalError(f"{where}atom {site.label}: unknown element {site.type_symbol!r}")
    site_occ = site.occ
    if site_occ > 1 + OCC_SLACK:
        if site_occ > MAX_REFINED_OCC:
            raise CrystalError(
                f"{where}atom {site.label}: occupancy {site_occ} > 1 (refined "
                f"values up to {MAX_REFINED_OCC} are taken as 1)"
            )
        capped.append(site.label)
        site_occ = 1.0
    uiso = site.u_iso
    if site.aniso.nonzero():
        ueq = cell.calculate_u_eq(site.aniso)
        if uiso <= 0 or no_u:
            uiso = ueq
    elif no_u:
        uiso = default_u_iso
        filled.append(site.label)
    return site.element.atomic_number, site.fract.tolist(), uiso, site_occ, site.label


def from_small_structure(
    small: gemmi.SmallStructure,
    source: str | None = None,
    block: gemmi.cif.Block | None = None,
    default_u_iso: float = 0.025,
) -> Crystal:
    """Convert a ``gemmi.SmallStructure``; U_aniso becomes U_eq, a missing U ``default_u_iso`` Å².

    A hydrogen atom refined to a negative U_iso gets ``default_u_iso`` (a negative U of a
    heavier atom is an error). Sites with zero occupancy are dropped, and atoms that repeat a
    symmetry image of another (:func:`symmetry_duplicates`); all are recorded in
    ``metadata["warnings"]``.
    """
    where = f"{source}: " if source else ""
    sg, conflict = _space_group(small, where)
    cell = small.cell
    sites = list(small.sites)
    if not sites:
        raise CrystalError(f"{where}no atom sites")
    notes: list[str] = []
    if conflict:
        _warn(notes, conflict)
    z: list[int] = []
    frac: list[list[float]] = []
    u: list[float] = []
    occ: list[float] = []
    labels: list[str] = []
    missing = _missing_u(block, len(sites)) if block is not None else np.zeros(len(sites), bool)
    dummy = _dummy_sites(block, sites)
    if dummy.any():
        names = [s.label for s, d in zip(sites, dummy) if d]
        _warn(
            notes,
            f"{where}skipped {len(names)} dummy site(s) (residual peaks or calc_flag "
            f"dum: {_some(names)})",
        )
    filled: list[str] = []
    capped: list[str] = []
    negative_h: list[str] = []
    for site, no_u, skip in zip(sites, missing, dummy, strict=True):
        if skip:
            continue
        if not 0 < site.occ:
            notes.append(f"dropped {site.label}: occupancy {site.occ}")
            continue
        zi, xyz, ui, oi, label = _site(site, no_u, cell, default_u_iso, where, filled, capped)
        if zi == 1 and ui < 0:  # a freely refined H within its esd of zero
            negative_h.append(label)
            ui = default_u_iso
        z.append(zi)
        frac.append(xyz)
        u.append(ui)
        occ.append(oi)
        labels.append(label)
    if capped:
        _warn(
            notes,
            f"{where}occupancy above 1 (at most {MAX_REFINED_OCC}) taken as 1 for "
            f"{len(capped)} atom(s) ({_some(capped)})",
        )
    if negative_h:
        _warn(
            notes,
            f"{where}negative U_iso of {len(negative_h)} hydrogen atom(s) "
            f"({_some(negative_h)}); used U_iso = {default_u_iso} Å²",
        )
    if filled:
        _warn(
            notes,
            f"{where}no displacement parameter for {len(filled)} atom(s) "
            f"({_some(filled)}); used U_iso = {default_u_iso} Å²",
        )
    if not z:
        raise CrystalError(f"{where}no atom with non-zero occupancy")
    twins = symmetry_duplicates(cell, sg, np.array(z), np.array(frac), np.array(occ))
    if twins:
        names = [f"{labels[i]} = {labels[j]}" for i, j in twins]
        _warn(
            notes,
            f"{where}{len(twins)} duplicated site(s) merged: atoms that repeat a symmetry "
            f"image of another ({_some(names)}), as a file listing symmetry-generated atoms has",
        )
        drop = {i for i, _ in twins}
        keep = [k for k in range(len(z)) if k not in drop]
        z, frac, labels = [z[k] for k in keep], [frac[k] for k in keep], [labels[k] for k in keep]
        u, occ = [u[k] for k in keep], [occ[k] for k in keep]
    meta: dict[str, Any] = {"source": source} if source else {}
    if notes:
        meta["warnings"] = notes
    try:
        return Crystal(
            cell.parameters,
            sg,
            np.array(z, dtype=np.int16),
            np.array(frac),
            np.array(u),
            np.array(occ),
            labels,
            meta,
        )
    except CrystalError as exc:
        raise CrystalError(str(exc) if source else f"{where}{exc}") from None


def read_cif(
    path: str | Path, block: str | int | None = None, default_u_iso: float = 0.025
) -> Crystal:
    """Read a small-molecule CIF into a :class:`Crystal`.

    Symmetry comes from the symmetry operators when given (any setting gemmi tabulates, e.g.
    P 1 21/n 1; a warning when they contradict the stated symbol), else from the Hall symbol,
    the H-M symbol or the IT number. DDLm/CIF2 names (``_cell.length_a``) are read as their DDL1
    aliases. Residual peaks (``Q1``…) and ``calc_flag dum`` sites are skipped with a warning.
    U_iso (or B_iso, converted) is taken as given; sites with only U_aniso get U_eq; sites with
    neither get ``default_u_iso`` Å² with a warning. Raises :class:`CrystalError` naming the file.
    A SHELX ``.res``/``.ins`` (as folders of structures may hold) is read as one.
    """
    path = Path(path)
    if path.suffix.lower() in (".res", ".ins"):
        from xtalforge.io.shelx_model import read_res

        return read_res(path)
    try:
        return _read_cif(path, block, default_u_iso)
    except UnicodeDecodeError as exc:  # gemmi keeps bytes that are not UTF-8 in its strings
        raise CrystalError(f"{path}: bytes that are not text ({exc.reason})") from None


def _read_cif(path: Path, block: str | int | None, default_u_iso: float) -> Crystal:
    doc = _read_document(path)
    blk = ddl1_block(_pick_block(doc, block, path))
    for tag in ("_cell_length_a", "_cell_length_b", "_cell_length_c"):
        value = blk.find_value(tag) or blk.find_value(tag.replace("_cell_", "_cell."))
        if value is None or value in ("?", "."):
            raise CrystalError(f"{path} [{tag}]: missing cell parameter")
    try:
        small = gemmi.make_small_structure_from_block(blk)
    except (RuntimeError, ValueError) as exc:
        raise CrystalError(f"{path}: cannot read atom sites: {exc}") from None
    crystal = from_small_structure(small, source=str(path), block=blk, default_u_iso=default_u_iso)
    crystal.metadata["block"] = blk.name
    return crystal


def set_cell_and_symmetry(
    block: gemmi.cif.Block, cell: tuple[float, ...], sg: gemmi.SpaceGroup
) -> None:
    """Write the cell (Å, degrees), H-M and Hall symbols, IT number and symmetry operators."""
    for key, value in zip(
        ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"), cell
    ):
        block.set_pair(f"_cell_{key}", f"{value:.6f}")
    block.set_pair("_space_group_name_H-M_alt", gemmi.cif.quote(sg.xhm()))
    block.set_pair("_space_group_name_Hall", gemmi.cif.quote(sg.hall))
    block.set_pair("_space_group_IT_number", str(sg.number))
    loop = block.init_loop("_space_group_symop_", ["operation_xyz"])
    for op in sg.operations():
        loop.add_row([gemmi.cif.quote(op.triplet())])


def write_cif(crystal: Crystal, path: str | Path | None = None, name: str | None = None) -> str:
    """Write ``crystal`` as a small-molecule CIF (cell, symmetry operators, U_iso, occupancy).

    Provenance metadata is stored as JSON in ``_xtalforge_metadata``. Returns the CIF text.
    """
    doc = gemmi.cif.Document()
    block = doc.add_new_block(name or crystal.metadata.get("name", "xtalforge"))
    set_cell_and_symmetry(block, crystal.cell, crystal.spacegroup)
    labels = crystal.labels or [f"{el}{i + 1}" for i, el in enumerate(crystal.elements)]
    loop = block.init_loop(
        "_atom_site_",
        [
            "label",
            "type_symbol",
            "fract_x",
            "fract_y",
            "fract_z",
            "U_iso_or_equiv",
            "adp_type",
            "occupancy",
        ],
    )
    for lab, el, xyz, u, o in zip(
        labels, crystal.elements, crystal.frac, crystal.u_iso, crystal.occ
    ):
        loop.add_row(
            [gemmi.cif.quote(lab), el, *(f"{v:.6f}" for v in xyz), f"{u:.6f}", "Uiso", f"{o:.6f}"]
        )
    meta = {k: v for k, v in crystal.metadata.items() if k not in ("source", "block")}
    if meta:
        text = json.dumps(meta, default=str, sort_keys=True)
        block.set_pair("_xtalforge_metadata", gemmi.cif.quote(text))
    text = doc.as_string()
    if path is not None:
        Path(path).write_text(text)
    return text
