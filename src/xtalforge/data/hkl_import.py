"""Measured data into the dataset format (``xtalforge import-hkl``).

Each reflection file becomes one row: merged to the reciprocal ASU by
:func:`xtalforge.io.merge.merged_amplitudes` (cell and symmetry from ``--structure`` or a file
beside it), E values from a Wilson fit with the structure's composition. There are no phases
(the ``phase`` column is absent); a CIF with atoms also stores them (for scoring).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from xtalforge.data.rows import flat_list
from xtalforge.data.shards import write_manifest, write_shard
from xtalforge.data.spec import DatasetError
from xtalforge.diffraction.wilson import normalize
from xtalforge.errors import XtalforgeError
from xtalforge.io.merge import merged_amplitudes, structure_for

__all__ = ["import_hkl"]


_COLUMNS = (
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


def _file_row(path: Path, structure: Path | None) -> tuple[dict[str, Any], list[str]]:
    """One reflection file's row (merged amplitudes, E, the structure's atoms when known) and
    the notes of what was done to it."""
    cell, sg, crystal, comp, hklf = structure_for(path, structure)
    refl, amp, sig, notes = merged_amplitudes(path, cell, sg, hklf)
    e = normalize(amp, refl, composition=comp or None)
    empty = np.zeros(0)
    row = {
        "cell": cell,
        "sg": sg,
        "z": crystal.z if crystal else empty.astype(np.int16),
        "frac": crystal.frac if crystal else empty,
        "u": crystal.u_iso if crystal else empty,
        "occ": crystal.occ if crystal else empty,
        "hkl": refl.hkl.astype(np.int16),
        "F": amp.astype(np.float32),
        "sigF": sig.astype(np.float32),
        "E": e.astype(np.float32),
        "d_min": refl.d_min,
        "source": path.name,
        "metadata": json.dumps({"notes": notes, "composition": comp}, sort_keys=True),
    }
    return row, notes


def _table(rows: dict[str, list]) -> pa.Table:
    """The dataset rows of the imported files (all in the test split)."""
    n = len(rows["F"])
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "seed": pa.array(np.zeros(n, np.int64)),
            "split": pa.array(["test"] * n),
            "spacegroup": pa.array([s.xhm() for s in rows["sg"]]),
            "sg_number": pa.array(np.array([s.number for s in rows["sg"]], np.int16)),
            "cell": pa.FixedSizeListArray.from_arrays(
                pa.array(np.array(rows["cell"], np.float64).ravel()), 6
            ),
            "z": flat_list(rows["z"], pa.int16()),
            "frac": flat_list(rows["frac"], pa.float64()),
            "u_iso": flat_list(rows["u"], pa.float64()),
            "occ": flat_list(rows["occ"], pa.float64()),
            "hkl": flat_list(rows["hkl"], pa.int16()),
            "F": flat_list(rows["F"], pa.float32()),
            "sigF": flat_list(rows["sigF"], pa.float32()),
            "E": flat_list(rows["E"], pa.float32()),
            "d_min": pa.array(np.array(rows["d_min"], np.float32)),
            "n_refl": pa.array(np.array([len(f) for f in rows["F"]], np.int32)),
            "source": pa.array(rows["source"]),
            "metadata": pa.array(rows["metadata"]),
        }
    )


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
    rows: dict[str, list] = {k: [] for k in _COLUMNS}
    report = []
    for path in map(Path, files):
        try:
            row, notes = _file_row(path, Path(structure) if structure else None)
        except XtalforgeError as exc:
            report.append({"file": path.name, "status": "skipped", "problems": [str(exc)]})
            continue
        report.append({"file": path.name, "status": "ok", "notes": notes})
        for k, v in row.items():
            rows[k].append(v)
    if not rows["F"]:
        why = "; ".join(f"{r['file']}: {p}" for r in report for p in r["problems"])
        raise DatasetError(f"no reflection file could be imported ({why})")
    n = len(rows["F"])
    table = _table(rows)
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
