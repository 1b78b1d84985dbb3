"""Measured data into the dataset format (``xtalforge import-hkl``).

Each reflection file becomes one row: unmerged intensities are merged to the reciprocal ASU
(gemmi, inverse-variance mean), systematic absences removed, |F| = √max(I, 0), E values from a
Wilson fit with the structure's composition. There are no phases (the ``phase`` column is
absent). Cell and symmetry come from ``--structure`` (CIF or SHELX .ins/.res) or from the
reflection file itself (MTZ, CIF wrapper); a CIF with atoms also stores them (for scoring).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gemmi
import numpy as np
import pyarrow as pa

from xtalforge.crystal import Crystal, read_structure
from xtalforge.data.rows import _flat_list
from xtalforge.data.shards import write_manifest, write_shard
from xtalforge.data.spec import DatasetError
from xtalforge.diffraction.reflections import Reflections, reflections_from_hkl
from xtalforge.diffraction.wilson import normalize
from xtalforge.errors import XtalforgeError
from xtalforge.io import read_reflections
from xtalforge.io.reflection_data import embedded_hklf
from xtalforge.io.shelx import HklfInstruction, read_ins

__all__ = ["import_hkl", "load_measured", "merged_amplitudes"]


def _structure_for(
    path: Path, structure: Path | None
) -> tuple[tuple, gemmi.SpaceGroup, Crystal | None, dict, HklfInstruction | None]:
    """(cell, space group, crystal or None, composition, HKLF instruction or None) from the
    structure file (.ins/.res, or a CIF whose ``_shelx_res_file`` has the HKLF line)."""
    if structure is not None and not Path(structure).is_file():
        raise DatasetError(f"{structure}: no such file (the cell and symmetry for {path.name})")
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
        raise DatasetError(
            f"{path}: no cell/symmetry in the file and no structure given (--structure CIF or .ins)"
        )
    return data.cell, data.spacegroup, None, {}, None


def load_measured(
    path: Path,
    structure: Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
) -> tuple[Reflections, np.ndarray, np.ndarray, list[str], dict]:
    """A reflection file merged to the ASU with cell and symmetry from ``structure`` (.ins/.res
    or CIF; default: beside the file) or from ``cell`` (Å, degrees) + ``spacegroup``.
    Returns (reflections, |F|, σ(|F|), notes, composition)."""
    from xtalforge.crystal.symmetry import resolve_space_group

    hklf = None
    if cell is not None:
        if spacegroup is None:
            raise DatasetError("--cell needs --spacegroup")
        sg, comp = resolve_space_group(spacegroup), {}
    else:
        cell, sg, _, comp, hklf = _structure_for(path, structure)
    refl, amp, sig, notes = merged_amplitudes(path, tuple(cell), sg, hklf)
    return refl, amp, sig, notes, dict(comp)


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


def merged_amplitudes(
    path: Path, cell: tuple, sg: gemmi.SpaceGroup, hklf: HklfInstruction | None = None
) -> tuple[Reflections, np.ndarray, np.ndarray, list[str]]:
    """Reflections (ASU), |F| and σ(|F|) of a reflection file, merged; notes on what was done.
    ``hklf``: the structure's HKLF instruction, for SHELX hkl data (see ``read_reflections``)."""
    data = read_reflections(path, hklf=hklf or 4)
    notes = list(data.notes)
    if len(data) == 0:
        raise DatasetError(f"{path}: no reflections")
    values = np.asarray(data.values, dtype=np.float64)
    sig = (
        np.asarray(data.sigmas, dtype=np.float64)
        if data.sigmas is not None
        else np.ones_like(values)
    )
    if not (np.isfinite(values).all() and np.isfinite(sig).all()):
        raise DatasetError(f"{path}: non-finite values or sigmas")
    sig = np.where(sig > 0, sig, np.nan)
    sig = np.where(np.isnan(sig), np.nanmedian(sig) if np.isfinite(sig).any() else 1.0, sig)
    it = gemmi.Intensities()
    it.set_data(gemmi.UnitCell(*cell), sg, data.hkl.astype(np.int32), values, sig)
    it.type = gemmi.DataType.Unmerged
    it.merge_in_place(gemmi.DataType.Mean)
    violated = _absence_violation(it, sg, path, data.kind)
    if violated:
        notes.append(violated)
        warnings.warn(violated, stacklevel=2)
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
        raise DatasetError(f"{path}: {exc}") from None
    if data.kind == "intensity":
        amp = np.sqrt(np.clip(val, 0.0, None))
        sig_amp = np.where(amp > 0, sv / (2 * np.maximum(amp, 1e-12)), np.sqrt(sv))
        notes.append(f"{len(data)} intensities merged to {len(hkl)} unique; |F| = √max(I, 0)")
    else:
        amp, sig_amp = val, sv
        notes.append(f"{len(data)} amplitudes merged to {len(hkl)} unique")
    return refl, amp, sig_amp, notes


def import_hkl(
    files: Sequence[str | Path], out: str | Path, structure: str | Path | None = None
) -> dict[str, Any]:
    """Write measured reflection files as a dataset (one row per file, one shard)."""
    root = Path(out)
    if structure is not None and len(files) > 1:
        raise DatasetError(
            "--structure applies to a single reflection file; with several, put "
            "each structure beside its file (same name, .cif/.ins/.res)"
        )
    rows: dict[str, list] = {
        k: []
        for k in (
            "cell",
            "sg",
            "z",
            "frac",
            "u",
            "occ",
            "hkl",
            "F",
            "sigF",
            "E",
            "d_min",
            "source",
            "metadata",
        )
    }
    report = []
    for path in map(Path, files):
        try:
            cell, sg, crystal, comp, hklf = _structure_for(
                path, Path(structure) if structure else None
            )
            refl, amp, sig, notes = merged_amplitudes(path, cell, sg, hklf)
            e = normalize(amp, refl, composition=comp or None)
        except XtalforgeError as exc:
            report.append({"file": path.name, "status": "skipped", "problems": [str(exc)]})
            continue
        report.append({"file": path.name, "status": "ok", "notes": notes})
        rows["cell"].append(cell)
        rows["sg"].append(sg)
        empty = np.zeros(0)
        rows["z"].append(crystal.z if crystal else empty.astype(np.int16))
        rows["frac"].append(crystal.frac if crystal else empty)
        rows["u"].append(crystal.u_iso if crystal else empty)
        rows["occ"].append(crystal.occ if crystal else empty)
        rows["hkl"].append(refl.hkl.astype(np.int16))
        rows["F"].append(amp.astype(np.float32))
        rows["sigF"].append(sig.astype(np.float32))
        rows["E"].append(e.astype(np.float32))
        rows["d_min"].append(refl.d_min)
        rows["source"].append(path.name)
        rows["metadata"].append(json.dumps({"notes": notes, "composition": comp}, sort_keys=True))
    if not rows["F"]:
        why = "; ".join(f"{r['file']}: {p}" for r in report for p in r["problems"])
        raise DatasetError(f"no reflection file could be imported ({why})")
    n = len(rows["F"])
    table = pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "seed": pa.array(np.zeros(n, np.int64)),
            "split": pa.array(["test"] * n),
            "spacegroup": pa.array([s.xhm() for s in rows["sg"]]),
            "sg_number": pa.array(np.array([s.number for s in rows["sg"]], np.int16)),
            "cell": pa.FixedSizeListArray.from_arrays(
                pa.array(np.array(rows["cell"], np.float64).ravel()), 6
            ),
            "z": _flat_list(rows["z"], pa.int16()),
            "frac": _flat_list(rows["frac"], pa.float64()),
            "u_iso": _flat_list(rows["u"], pa.float64()),
            "occ": _flat_list(rows["occ"], pa.float64()),
            "hkl": _flat_list(rows["hkl"], pa.int16()),
            "F": _flat_list(rows["F"], pa.float32()),
            "sigF": _flat_list(rows["sigF"], pa.float32()),
            "E": _flat_list(rows["E"], pa.float32()),
            "d_min": pa.array(np.array(rows["d_min"], np.float32)),
            "n_refl": pa.array(np.array([len(f) for f in rows["F"]], np.int32)),
            "source": pa.array(rows["source"]),
            "metadata": pa.array(rows["metadata"]),
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    info = write_shard(root, 0, table, 64, {"ids": [0, n], "splits": {"test": n}})
    from xtalforge import __version__

    edges = np.max([c[:3] for c in rows["cell"]], axis=0)
    manifest = {
        "format": "xtalforge-dataset",
        "format_version": 1,
        "name": "measured",
        "kind": "measured",
        "status": "complete",
        "version": __version__,
        "n": n,
        "n_shards": 1,
        "rows": n,
        "splits": {"train": 0, "val": 0, "test": n},
        "spacegroups": dict(Counter(s.xhm() for s in rows["sg"])),
        "max_edges": edges.tolist(),
        "n_reflections": int(sum(len(f) for f in rows["F"])),
        "shards": [{k: info[k] for k in ("index", "file", "rows", "sha256", "ids")}],
        "import_report": {
            "files": report,
            "status": {s: sum(r["status"] == s for r in report) for s in ("ok", "skipped")},
        },
    }
    write_manifest(root, manifest)
    return manifest
