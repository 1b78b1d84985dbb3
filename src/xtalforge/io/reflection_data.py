"""Measured or calculated reflection data read from files (SHELX .hkl, MTZ, CIF ``_refln``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import gemmi
import numpy as np

from xtalforge.crystal.symmetry import resolve_space_group, space_group_from_ops
from xtalforge.errors import CrystalError, ReflectionFileError, XtalforgeError

if TYPE_CHECKING:
    from xtalforge.io.shelx import HklfInstruction

__all__ = [
    "ReflectionData",
    "embedded_hklf",
    "read_cif_refln",
    "read_mtz",
    "read_reflections",
    "read_xds_ascii",
]


@dataclass(eq=False)
class ReflectionData:
    """Reflection values as read from a file.

    Attributes
    ----------
    hkl : (n, 3) int Miller indices as in the file (not merged).
    values : (n,) intensities (``kind == "intensity"``) or amplitudes (``"amplitude"``).
    sigmas : (n,) standard uncertainties, or None.
    kind : ``"intensity"`` or ``"amplitude"``.
    batch : (n,) batch numbers, or None.
    cell, spacegroup : when the file gives them (MTZ, CIF), else None.
    source : the file read.
    notes : what the reader did that a user should know (rows dropped …).
    """

    hkl: np.ndarray
    values: np.ndarray
    sigmas: np.ndarray | None
    kind: str
    batch: np.ndarray | None = None
    cell: tuple[float, ...] | None = None
    spacegroup: gemmi.SpaceGroup | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hkl)

    def amplitudes(self) -> np.ndarray:
        """|F|: square roots of intensities (negative ones set to 0), or the amplitudes."""
        if self.kind == "amplitude":
            return self.values
        return np.sqrt(np.clip(self.values, 0.0, None))


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
    if sigmas[0] is not None and sigmas[1] is not None:
        sp, sm = sigmas
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
    from xtalforge.io.shelx import HklfInstruction, parse_hkl_text

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
    from xtalforge.io.shelx import hklf_from_ins_text

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
    return cell, sg  # type: ignore[return-value]


def read_reflections(path: str | Path, hklf: int | HklfInstruction = 4) -> ReflectionData:
    """Read reflections from an MTZ, a CIF (``_refln`` loop or embedded hkl), an XDS_ASCII or a
    SHELX .hkl file; the format is recognised from the content.

    ``hklf`` says how to read SHELX hkl data: 4 (I, σ(I)) or 3 (F, σ(F)), or the
    :class:`~xtalforge.io.shelx.HklfInstruction` of the structure's .ins/.res (format, scale and
    index matrix, applied). Hkl data embedded in a CIF follow the ``HKLF`` line of the CIF's own
    ``_shelx_res_file`` unless an instruction is given.
    """
    from xtalforge.io.shelx import HklfInstruction, read_hkl

    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:4] == b"MTZ ":
        return read_mtz(path)
    if b"\x00" in head:
        kind = " (a zip archive: a checkpoint?)" if head[:2] == b"PK" else ""
        raise ReflectionFileError(
            f"{path}: a binary file{kind}, not reflections (SHELX .hkl, "
            "MTZ, XDS_ASCII or a CIF with _refln)"
        )
    text = head.decode("latin-1").lstrip()
    if text.startswith("!FORMAT=XDS_ASCII"):
        return read_xds_ascii(path)
    instruction = hklf if isinstance(hklf, HklfInstruction) else None
    if text.startswith(("data_", "#", "loop_", "global_")):
        return read_cif_refln(path, instruction=instruction)
    if instruction is None:
        return read_hkl(path, hklf=int(hklf))
    return instruction.apply(read_hkl(path, hklf=instruction.hkl_format()))
