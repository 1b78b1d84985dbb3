"""The data a solver phases, from wherever they are: a dataset folder's entries (with the
truth), a structure file (calculated amplitudes, the truth kept for scoring), or a measured
reflection file with its cell and symmetry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.data.torch_data import ShardDataset
from xtalforge.diffraction.reflections import reflections_from_hkl
from xtalforge.errors import XtalforgeError
from xtalforge.io import holds_a_model, load_measured, read_structure
from xtalforge.phasing.solve import SolveData, calculated_solve_data

__all__ = ["DEFAULT_CALCULATED_D_MIN", "dataset_entries", "load_solve_data", "with_truth"]

#: Resolution (Å) of the amplitudes calculated from a structure file when none is asked for.
DEFAULT_CALCULATED_D_MIN = 0.8


def dataset_entries(
    root: str | Path,
    split: str | None = None,
    limit: int | None = None,
    entry: int | None = None,
    d_min: float | None = None,
) -> list[SolveData]:
    """Structures of a dataset folder (``split``: train/val/test or all), with the truth."""
    root = Path(root)
    ds = ShardDataset(root, split, extra_columns=("phase", "frac", "u_iso", "occ"))
    out: list[SolveData] = []
    for i in range(len(ds)):
        if limit is not None and len(out) >= limit:
            break
        row = ds.row(i)
        if entry is not None and int(row["id"]) != entry:
            continue
        hkl = row["hkl"].reshape(-1, 3).astype(np.int64)
        refl = reflections_from_hkl(hkl, tuple(row["cell"].tolist()), row["spacegroup"])
        phase = row.get("phase")
        frac, z = row.get("frac"), row.get("z")
        true_frac = None
        if frac is not None and z is not None:
            true_frac = np.asarray(frac, float).reshape(-1, 3)[np.asarray(z) > 1]
        data = SolveData(
            refl,
            np.asarray(row["F"], float),
            f"{root}#{int(row['id'])}",
            None if phase is None else np.asarray(phase, float),
            true_frac,
            z=None if z is None else np.asarray(z),
            truth=_row_crystal(row),
        )
        out.append(data.cut(d_min) if d_min else data)
    if entry is not None and not out:
        raise XtalforgeError(f"{root}: no dataset entry with id {entry}")
    return out


def _row_crystal(row: dict) -> Crystal | None:
    """The structure of a dataset row, when the row holds its atoms."""
    from xtalforge.data.rows import crystal_from_row

    if any(row.get(k) is None for k in ("frac", "z", "u_iso", "occ")):
        return None
    return crystal_from_row({**row, "cell": row["cell"].tolist(), "metadata": None})


def load_solve_data(
    path: str | Path,
    structure: str | Path | None = None,
    cell: tuple[float, ...] | None = None,
    spacegroup: str | None = None,
    d_min: float | None = None,
    entry: int | None = None,
) -> SolveData:
    """Amplitudes to solve from ``path``: a reflection file (SHELX .hkl, MTZ, CIF with
    ``_refln``) with cell and symmetry from ``structure`` (.ins/.res/CIF) or ``cell`` +
    ``spacegroup``; a structure CIF/PDB (calculated F to ``d_min``, default 0.8 Å, and the truth
    kept for scoring); or a dataset folder (``entry``: sample id, default the first)."""
    p = Path(path)
    if not p.exists():
        raise XtalforgeError(f"{p}: no such file or folder")
    if p.is_dir():
        found = dataset_entries(p, None, 1, entry, d_min)
        if not found:
            raise XtalforgeError(f"{p}: the dataset holds no structures")
        return found[0]
    if structure is None and cell is None and holds_a_model(p):
        return calculated_solve_data(read_structure(p), d_min or DEFAULT_CALCULATED_D_MIN, str(p))
    where = Path(structure) if structure else None
    refl, i_obs, sig, _, comp = load_measured(p, where, cell, spacegroup, intensities=True)
    amp = np.sqrt(np.clip(i_obs, 0.0, None))
    truth = read_structure(where) if where is not None and holds_a_model(where) else None
    data = SolveData(refl, amp, str(p), composition=comp, intensities=i_obs, sigmas=sig)
    if truth is not None:
        data = with_truth(data, truth)
    return data.cut(d_min) if d_min else data


def with_truth(data: SolveData, truth: Crystal) -> SolveData:
    """The data with a known model as the truth to score against: the model's phases for the
    data's reflections, its non-H positions and atomic numbers (the model must be in the data's
    cell and space group)."""
    from xtalforge.diffraction.structure_factors import structure_factors

    if truth.spacegroup.hall != data.refl.spacegroup.hall:
        raise XtalforgeError(
            f"{truth.metadata.get('source', 'the model')}: in {truth.spacegroup.xhm()}, "
            f"the data in {data.refl.spacegroup.xhm()}"
        )
    model = truth.copy(cell=data.refl.cell)
    heavy = np.asarray(model.z) > 1
    data.true_phases = np.angle(structure_factors(model, data.refl))
    data.true_frac = model.frac[heavy]
    data.z = np.asarray(model.z)
    data.truth = model
    if not data.composition:
        data.composition = model.composition()
    return data
