"""Measured reflection files merged to the reciprocal asymmetric unit: the cell and symmetry
found for them (a structure file beside them, an .ins/.res with its HKLF instruction, or the
file's own header), intensities merged with gemmi (inverse-variance mean), systematic absences
checked and removed, |F| = √max(I, 0)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.diffraction.reflections import Reflections, reflections_from_hkl
from xtalforge.errors import ReflectionFileError, XtalforgeError
from xtalforge.io.cif_refln import embedded_hklf
from xtalforge.io.readers import read_reflections, read_structure
from xtalforge.io.shelx_ins import read_ins
from xtalforge.io.types import HklfInstruction

__all__ = [
    "ABSENCE_SIGNAL",
    "load_measured",
    "merged_amplitudes",
    "merged_intensities",
    "structure_for",
]


def structure_for(
    path: Path, structure: Path | None
) -> tuple[tuple, gemmi.SpaceGroup, Crystal | None, dict, HklfInstruction | None]:
    """(cell, space group, crystal or None, composition, HKLF instruction or None) from the
    structure file (.ins/.res, or a CIF whose ``_shelx_res_file`` has the HKLF line)."""
    if structure is not None and not Path(structure).is_file():
        raise ReflectionFileError(
            f"{structure}: no such file (the cell and symmetry for {path.name})"
        )
    candidates = (
        [structure] if structure else [path.with_suffix(s) for s in (".cif", ".ins", ".res")]
    )
    for cand in candidates:
        if cand is None or not cand.is_file() or cand == path:
            continue
        if cand.suffix.lower() in (".ins", ".res"):
            ins = read_ins(cand)
            return ins.cell, ins.spacegroup, None, ins.composition(), ins.hklf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = read_structure(cand)  # CIF, PDB or mmCIF
            block = None
            if "block" in c.metadata:  # a small-molecule CIF: its embedded .res may have HKLF
                block = gemmi.cif.read(str(cand)).find_block(c.metadata["block"])
        hklf = embedded_hklf(block, cand) if block is not None else None
        return c.cell, c.spacegroup, c, c.composition(), hklf
    data = read_reflections(path)
    if data.cell is None or data.spacegroup is None:
        raise ReflectionFileError(
            f"{path}: no cell/symmetry in the file and no structure given (--structure CIF or .ins)"
        )
    return data.cell, data.spacegroup, None, {}, None


def _cell_and_group(
    path: Path,
    structure: Path | None,
    cell: tuple[float, ...] | None,
    spacegroup: str | None,
) -> tuple[tuple, gemmi.SpaceGroup, dict, HklfInstruction | None]:
    if cell is not None:
        if spacegroup is None:
            raise ReflectionFileError("--cell needs --spacegroup")
        return tuple(cell), resolve_space_group(spacegroup), {}, None
    cell, sg, _, comp, hklf = structure_for(path, structure)
    return tuple(cell), sg, dict(comp), hklf


def load_measured(
    path: Path,
    structure: Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
    intensities: bool = False,
) -> tuple[Reflections, np.ndarray, np.ndarray, list[str], dict]:
    """A reflection file merged to the ASU with cell and symmetry from ``structure`` (.ins/.res
    or CIF; default: beside the file) or from ``cell`` (Å, degrees) + ``spacegroup``.
    Returns (reflections, |F|, σ(|F|), notes, composition); with ``intensities``, Fo² and
    σ(Fo²) in place of |F| and σ(|F|) (see :func:`merged_intensities`)."""
    cell, sg, comp, hklf = _cell_and_group(path, structure, cell, spacegroup)
    merge = merged_intensities if intensities else merged_amplitudes
    refl, val, sig, notes = merge(path, cell, sg, hklf)
    return refl, val, sig, notes, comp


#: Mean I/σ(I) (or F/σ(F)) of the merged reflections the space group makes absent above which
#: the data are said to contradict the space group (measured absences scatter around 0–1).
ABSENCE_SIGNAL = 3.0


def _absence_violation(
    it: gemmi.Intensities, sg: gemmi.SpaceGroup, path: Path, kind: str
) -> str | None:
    """A note when the reflections ``sg`` makes systematically absent are clearly observed
    (at least 5 of them, mean value/σ above :data:`ABSENCE_SIGNAL`): a wrong space group or
    setting, or a wrong HKLF matrix."""
    hkl = np.array(it.miller_array, dtype=np.int32)
    absent = np.asarray(sg.operations().systematic_absences(hkl), dtype=bool)
    if absent.sum() < 5:
        return None
    ratio = np.array(it.value_array)[absent] / np.array(it.sigma_array)[absent]
    if np.mean(ratio) <= ABSENCE_SIGNAL:
        return None
    what = "I/σ(I)" if kind == "intensity" else "F/σ(F)"
    return (
        f"{path}: the {absent.sum()} reflections that {sg.xhm()} makes absent are observed "
        f"(mean {what} {np.mean(ratio):.1f}): check the space group, its setting and any "
        "HKLF matrix"
    )


def _merge(
    path: Path, cell: tuple, sg: gemmi.SpaceGroup, hklf: HklfInstruction | None
) -> tuple[Reflections, np.ndarray, np.ndarray, str, list[str]]:
    """(reflections, merged values, sigmas, kind, notes) of a reflection file."""
    data = read_reflections(path, hklf=hklf or 4)
    notes = list(data.notes)
    if len(data) == 0:
        raise ReflectionFileError(f"{path}: no reflections")
    values = np.asarray(data.values, dtype=np.float64)
    sig = (
        np.asarray(data.sigmas, dtype=np.float64)
        if data.sigmas is not None
        else np.ones_like(values)
    )
    if not (np.isfinite(values).all() and np.isfinite(sig).all()):
        raise ReflectionFileError(f"{path}: non-finite values or sigmas")
    sig = np.where(sig > 0, sig, np.nan)
    sig = np.where(np.isnan(sig), np.nanmedian(sig) if np.isfinite(sig).any() else 1.0, sig)
    it = gemmi.Intensities()
    it.set_data(gemmi.UnitCell(*cell), sg, data.hkl.astype(np.int32), values, sig)
    it.type = gemmi.DataType.Unmerged
    it.merge_in_place(gemmi.DataType.Mean)
    violated = _absence_violation(it, sg, path, data.kind)
    if violated:
        notes.append(violated)
        warnings.warn(violated, stacklevel=3)
    n_before = len(it.miller_array)
    it.remove_systematic_absences()
    if len(it.miller_array) < n_before:
        notes.append(f"{n_before - len(it.miller_array)} systematically absent reflections removed")
    hkl = np.array(it.miller_array, dtype=np.int32)
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0]))
    hkl = hkl[order]
    val = np.array(it.value_array)[order]
    sv = np.array(it.sigma_array)[order]
    try:
        refl = reflections_from_hkl(hkl, cell, sg)
    except XtalforgeError as exc:
        raise ReflectionFileError(f"{path}: {exc}") from None
    what = "intensities" if data.kind == "intensity" else "amplitudes"
    notes.append(f"{len(data)} {what} merged to {len(hkl)} unique")
    return refl, val, sv, data.kind, notes


def merged_amplitudes(
    path: Path, cell: tuple, sg: gemmi.SpaceGroup, hklf: HklfInstruction | None = None
) -> tuple[Reflections, np.ndarray, np.ndarray, list[str]]:
    """Reflections (ASU), |F| and σ(|F|) of a reflection file, merged; notes on what was done.
    ``hklf``: the structure's HKLF instruction, for SHELX hkl data (see ``read_reflections``)."""
    refl, val, sv, kind, notes = _merge(path, cell, sg, hklf)
    if kind != "intensity":
        return refl, val, sv, notes
    amp = np.sqrt(np.clip(val, 0.0, None))
    sig_amp = np.where(amp > 0, sv / (2 * np.maximum(amp, 1e-12)), np.sqrt(sv))
    notes[-1] += "; |F| = √max(I, 0)"
    return refl, amp, sig_amp, notes


def merged_intensities(
    path: Path, cell: tuple, sg: gemmi.SpaceGroup, hklf: HklfInstruction | None = None
) -> tuple[Reflections, np.ndarray, np.ndarray, list[str]]:
    """Reflections (ASU), intensities Fo² and σ(Fo²) of a reflection file, merged (amplitude
    data squared: Fo², σ = 2 Fo σ(Fo)), as refinement needs them; notes on what was done."""
    refl, val, sv, kind, notes = _merge(path, cell, sg, hklf)
    if kind == "intensity":
        return refl, val, sv, notes
    notes[-1] += "; Fo² = Fo², σ(Fo²) = 2 Fo σ(Fo)"
    return refl, val**2, np.maximum(2 * np.abs(val) * sv, 1e-12), notes
