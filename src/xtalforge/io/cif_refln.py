"""CIF reflection data: a ``_refln`` loop (small-molecule ``_refln_*``, mmCIF ``_refln.*``,
``_diffrn_refln``) or a SHELX hkl file embedded as ``_shelx_hkl_file``, with the cell and
symmetry of the block."""

from __future__ import annotations

import warnings
from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.symmetry import resolve_space_group, space_group_from_ops
from xtalforge.errors import CrystalError, ReflectionFileError, XtalforgeError
from xtalforge.io.shelx_hkl import parse_hkl_text
from xtalforge.io.shelx_ins import hklf_from_ins_text
from xtalforge.io.types import HklfInstruction, ReflectionData

__all__ = ["embedded_hklf", "read_cif_refln"]


_CIF_COLUMNS = [  # (value tag, sigma tag, kind), in order of preference
    ("F_squared_meas", "F_squared_sigma", "intensity"),
    ("intensity_meas", "intensity_sigma", "intensity"),
    ("F_meas_au", "F_meas_sigma_au", "amplitude"),
    ("F_meas", "F_sigma", "amplitude"),
    ("F_squared_calc", None, "intensity"),
    ("F_calc", None, "amplitude"),
]


def _cif_values(block: gemmi.cif.Block, prefix: str, tag: str) -> list[str] | None:
    col = block.find_values(prefix + tag)
    return list(col) if len(col) else None


def read_cif_refln(
    path: str | Path, block: str | None = None, instruction: HklfInstruction | None = None
) -> ReflectionData:
    """Read a CIF ``_refln`` loop (small-molecule ``_refln_*`` or mmCIF ``_refln.*``) or a
    SHELX HKLF file embedded as ``_shelx_hkl_file``, read as ``instruction`` says or else as the
    HKLF line of the block's ``_shelx_res_file`` (format, scale, index matrix). Cell and
    symmetry come along when present."""

    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    try:
        doc = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        raise ReflectionFileError(f"{path}: malformed CIF: {exc}") from None
    blocks = [doc.find_block(block)] if block else list(doc)
    for blk in blocks:
        if blk is None:
            raise ReflectionFileError(f"{path}: no data block named {block!r}")
        cell, sg = _cif_cell_symmetry(blk, path)
        embedded = blk.find_value("_shelx_hkl_file")
        for prefix in ("_refln_", "_refln.", "_diffrn_refln_", "_diffrn_refln."):
            h = _cif_values(blk, prefix, "index_h")
            if h is None:
                continue
            k = _cif_values(blk, prefix, "index_k")
            l = _cif_values(blk, prefix, "index_l")
            for vtag, stag, kind in _CIF_COLUMNS:
                v = _cif_values(blk, prefix, vtag)
                if v is None:
                    continue
                s = _cif_values(blk, prefix, stag) if stag else None
                try:
                    hkl = np.array([h, k, l], dtype=np.int32).T
                    vals = np.array([np.nan if x in ("?", ".") else float(x) for x in v])
                    sig = (
                        None
                        if s is None
                        else np.array([np.nan if x in ("?", ".") else float(x) for x in s])
                    )
                except ValueError as exc:
                    raise ReflectionFileError(f"{path} [{prefix}{vtag}]: {exc}") from None
                keep = np.isfinite(vals)
                notes = [] if keep.all() else [f"dropped {(~keep).sum()} rows without a value"]
                return ReflectionData(
                    hkl[keep],
                    vals[keep],
                    None if sig is None else sig[keep],
                    kind,
                    None,
                    cell,
                    sg,
                    str(path),
                    notes,
                )
        if embedded:
            how = instruction or embedded_hklf(blk, path) or HklfInstruction()
            data = how.apply(
                parse_hkl_text(gemmi.cif.as_string(embedded), str(path), how.hkl_format())
            )
            data.cell, data.spacegroup = cell, sg
            return data
    raise ReflectionFileError(
        f"{path}: no _refln loop with measured values or embedded _shelx_hkl_file"
    )


#: Where CIFs embed the SHELXL .res file (current tag, then the older IUCr one).
_RES_TAGS = ("_shelx_res_file", "_iucr_refine_instructions_details")


def embedded_hklf(block: gemmi.cif.Block, path: Path | str) -> HklfInstruction | None:
    """The HKLF instruction of a CIF block's embedded .res file (``_shelx_res_file``, or the older
    ``_iucr_refine_instructions_details``), or None when there is none (or its HKLF line cannot
    be read: a warning says so)."""

    for tag in _RES_TAGS:
        res = block.find_value(tag)
        if res is not None and res not in ("?", "."):
            break
    else:
        return None
    try:
        return hklf_from_ins_text(gemmi.cif.as_string(res), f"{path} [{tag}]")
    except XtalforgeError as exc:
        warnings.warn(f"{exc}; its HKLF instruction is ignored", stacklevel=2)
        return None


def _cif_cell_symmetry(
    blk: gemmi.cif.Block, path: Path
) -> tuple[tuple[float, ...] | None, gemmi.SpaceGroup | None]:
    vals = []
    for tag in ("a", "b", "c", "alpha", "beta", "gamma"):
        kind = "length" if len(tag) == 1 else "angle"
        v = blk.find_value(f"_cell_{kind}_{tag}") or blk.find_value(f"_cell.{kind}_{tag}")
        vals.append(None if v is None else gemmi.cif.as_number(v))
    cell = tuple(vals) if all(v is not None and np.isfinite(v) for v in vals) else None
    sg = None
    try:
        for tag in (
            "_space_group_symop_operation_xyz",
            "_symmetry_equiv_pos_as_xyz",
            "_space_group_symop.operation_xyz",
        ):
            ops = blk.find_values(tag)
            if len(ops):
                sg = space_group_from_ops([gemmi.cif.as_string(o) for o in ops])
                break
        else:
            for tag in (
                "_space_group_name_H-M_alt",
                "_symmetry_space_group_name_H-M",
                "_symmetry.space_group_name_H-M",
            ):
                v = blk.find_value(tag)
                if v and v not in ("?", "."):
                    sg = resolve_space_group(gemmi.cif.as_string(v))
                    break
    except CrystalError as exc:
        raise ReflectionFileError(f"{path}: {exc}") from None
    return cell, sg
