"""Dataset rows: one structure per row with its diffraction data, as an Arrow table.

Columns (flattened lists are C order): ``id`` int64, ``seed`` int64, ``split`` string,
``spacegroup`` (xHM) string, ``sg_number`` int16, ``cell`` float64[6] (Å, degrees), ``z`` int16
list, ``frac`` float64 list (3 per atom), ``u_iso`` float64 list (Å²), ``occ`` float64 list,
``hkl`` int16 list (3 per reflection, CCP4 ASU, sorted), ``F`` float32 list (|F|, electrons),
``phase`` float32 list (radians), ``E`` float32 list, ``d_min`` float32 (Å), ``n_refl`` int32,
maps ``patterson_<name>`` / ``density_<name>`` float32 lists, ``powder`` float32 list with
``powder_instrument`` JSON, ``source`` string and ``metadata`` JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from xtalforge.crystal.model import Crystal
from xtalforge.data.spec import ComputeSpec, DatasetSpec
from xtalforge.diffraction.batch import amplitudes_and_phases, structure_factors_batch
from xtalforge.diffraction.maps import density_map, patterson_map
from xtalforge.diffraction.reflections import Reflections, at_or_above, reflections

__all__ = ["compute_rows", "crystal_from_row"]

#: Structures whose structure factors are computed together (the batched kernel's unit).
SF_BATCH = 64


def flat_list(arrays: Sequence[np.ndarray], dtype: pa.DataType) -> pa.ListArray:
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)
    values = pa.array(flat.astype(dtype.to_pandas_dtype(), copy=False), type=dtype)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _maps(
    refl: Reflections, amp: np.ndarray, f: np.ndarray, e: np.ndarray, comp: ComputeSpec
) -> dict[str, np.ndarray]:
    """The fixed-shape Patterson and density maps the spec asks for (float32, by column)."""
    out = {}
    for m in comp.patterson:
        use = at_or_above(refl.d, m.d_min or comp.d_high)
        p = patterson_map(
            refl.subset(use),
            amp[use],
            shape=m.shape,
            e_values=e[use] if m.sharpen else None,
            sharpen=m.sharpen,
            remove_origin=m.remove_origin,
            scale01=m.scale01,
        )
        out[f"patterson_{m.name}"] = p.astype(np.float32)
    for m in comp.density:
        use = at_or_above(refl.d, m.d_min or comp.d_high)
        rho = density_map(refl.subset(use), f[use], shape=m.shape, scale01=m.scale01)
        out[f"density_{m.name}"] = rho.astype(np.float32)
    return out


def _structure_columns(crystals: Sequence[Crystal]) -> dict[str, pa.Array]:
    """Space group, cell and atoms of each structure."""
    return {
        "spacegroup": pa.array([c.spacegroup.xhm() for c in crystals], pa.string()),
        "sg_number": pa.array(np.array([c.spacegroup.number for c in crystals], np.int16)),
        "cell": pa.FixedSizeListArray.from_arrays(
            pa.array(np.array([c.cell for c in crystals], np.float64).ravel()), 6
        ),
        "z": flat_list([c.z for c in crystals], pa.int16()),
        "frac": flat_list([c.frac for c in crystals], pa.float64()),
        "u_iso": flat_list([c.u_iso for c in crystals], pa.float64()),
        "occ": flat_list([c.occ for c in crystals], pa.float64()),
    }


def compute_rows(
    crystals: Sequence[Crystal],
    ids: Sequence[int],
    seeds: Sequence[int],
    splits: Sequence[str],
    spec: DatasetSpec,
    sources: Sequence[str] | None = None,
) -> pa.Table:
    """The rows of ``crystals``; deterministic per structure (batching does not change bytes)."""
    comp = spec.compute
    cols: dict[str, list] = {k: [] for k in ("F", "phase", "E", "hkl")}
    maps: dict[str, list[np.ndarray]] = {f"patterson_{m.name}": [] for m in comp.patterson}
    maps.update({f"density_{m.name}": [] for m in comp.density})
    powder, powder_ins = [], []
    d_min = []
    for start in range(0, len(crystals), SF_BATCH):
        chunk = crystals[start : start + SF_BATCH]
        refls = [reflections(c, comp.d_high) for c in chunk]
        fs, expected = structure_factors_batch(chunk, refls, with_expected=True)
        for k, (c, refl, f, ex) in enumerate(zip(chunk, refls, fs, expected, strict=True)):
            amp, phase = amplitudes_and_phases(f)
            cols["hkl"].append(refl.hkl.astype(np.int16))
            cols["F"].append(amp)
            cols["phase"].append(phase)
            e = amp / np.sqrt(refl.epsilon * ex)  # exact model expectation (= normalize)
            if comp.e_values:
                cols["E"].append(e.astype(np.float32))
            d_min.append(float(refl.d.min()) if len(refl) else np.nan)
            for name, m in _maps(refl, amp, np.asarray(f), e, comp).items():
                maps[name].append(m)
            if comp.powder is not None:
                from xtalforge.powder.sampler import training_sample

                sample = training_sample(
                    c, comp.powder.sampler, int(seeds[start + k]), noise=comp.powder.noise
                )
                powder.append(sample["pattern"])
                powder_ins.append(_json(sample["instrument"]))
    data: dict[str, pa.Array] = {
        "id": pa.array(np.asarray(ids, dtype=np.int64)),
        "seed": pa.array(np.asarray(seeds, dtype=np.int64)),
        "split": pa.array(list(splits), pa.string()),
        **_structure_columns(crystals),
        "hkl": flat_list(cols["hkl"], pa.int16()),
        "F": flat_list(cols["F"], pa.float32()),
        "d_min": pa.array(np.array(d_min, np.float32)),
        "n_refl": pa.array(np.array([len(a) for a in cols["F"]], np.int32)),
    }
    if comp.phases:
        data["phase"] = flat_list(cols["phase"], pa.float32())
    if comp.e_values:
        data["E"] = flat_list(cols["E"], pa.float32())
    for name, arrays in maps.items():
        data[name] = flat_list(arrays, pa.float32())
    if comp.powder is not None:
        data["powder"] = flat_list(powder, pa.float32())
        data["powder_instrument"] = pa.array(powder_ins, pa.string())
    data["source"] = pa.array(
        list(sources) if sources is not None else [""] * len(crystals), pa.string()
    )
    data["metadata"] = pa.array([_json(c.metadata) for c in crystals], pa.string())
    return pa.table(data)


def crystal_from_row(row: dict) -> Crystal:
    """The :class:`Crystal` of a row (as a dict of Python/numpy values, e.g. from
    ``table.slice(i, 1).to_pylist()[0]``)."""
    return Crystal(
        tuple(row["cell"]),
        row["spacegroup"],
        np.asarray(row["z"], np.int16),
        np.asarray(row["frac"], np.float64).reshape(-1, 3),
        np.asarray(row["u_iso"], np.float64),
        np.asarray(row["occ"], np.float64),
        metadata=json.loads(row.get("metadata") or "{}"),
    )
