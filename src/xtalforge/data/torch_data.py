"""Torch datasets for training: shards on disk (map-style, streamed) or structures generated on
the fly inside DataLoader workers.

Each item is a dict. Grid mode (default): ``input`` (1, *grid) known amplitudes, normalised,
zero elsewhere; ``target`` (1, *grid) amplitudes at known and target voxels; masks ``known``,
``target_mask`` and ``absent`` (1, *grid) bool; ``id``. List mode: ``hkl`` (n, 3), ``d`` (n,) Å,
``value`` (n,) normalised amplitudes, ``known`` / ``target_mask`` (n,) bool; batch it with
:func:`collate_reflections`. A task is (d_low, d_high) in Å: d ≥ d_low known, d_high ≤ d < d_low
to predict.

Normalisation: ``max`` divides by the largest known amplitude (the thesis's choice), ``e`` uses
normalised amplitudes |E| (exact expectation for generated data, Wilson fit for measured),
``wilson`` divides by √(ε k Σf² exp(−2B s²)) with k and B fitted on the known reflections only.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import DatasetError, sample_seed
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.reflections import at_or_above, d_spacing, reflections_from_hkl
from xtalforge.diffraction.wilson import ACENTRIC_MEAN, CENTRIC_MEAN, normalize, wilson_rms

__all__ = [
    "BlockShuffleSampler",
    "LengthGroupedBatchSampler",
    "OnTheFlyDataset",
    "ShardDataset",
    "Task",
    "collate_reflections",
    "make_item",
]

Normalization = Literal["max", "e", "wilson"]


@dataclass(frozen=True)
class Task:
    """Resolution-extension task: reflections with d ≥ ``d_low`` (Å) are known, those with
    ``d_high`` ≤ d < ``d_low`` are the targets."""

    d_low: float = 1.2
    d_high: float = 0.8
    normalization: Normalization = "max"

    def __post_init__(self) -> None:
        if not self.d_low > self.d_high > 0:
            raise DatasetError(f"task needs d_low > d_high > 0 Å, got {self.d_low}, {self.d_high}")
        if self.normalization not in ("max", "e", "wilson"):
            raise DatasetError(
                f"normalization must be max, e or wilson, got {self.normalization!r}"
            )


def _normalised(
    amp: np.ndarray,
    known: np.ndarray,
    task: Task,
    e: np.ndarray | None,
    hkl: np.ndarray,
    cell: tuple,
    sg: str,
    z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised amplitudes, Wilson fill, scale) in the task's normalisation.

    The fill is every reflection's Wilson expectation ⟨|F|⟩ (√π/2 or √(2/π) times √⟨|F|²⟩ for
    acentric or centric reflections), with scale K and B fitted on the known reflections only;
    for ``e`` it is ⟨|E|⟩ itself. ``scale`` turns normalised values back into amplitudes on the
    ``max`` scale (largest known |F| = 1), the units every R is computed in.
    """
    refl = reflections_from_hkl(hkl, cell, sg)
    mean_ratio = np.where(refl.centric, CENTRIC_MEAN, ACENTRIC_MEAN)
    top = float(amp[known].max()) if known.any() else 0.0
    top = top if top > 0 else 1.0
    if task.normalization == "max":
        rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
        return amp / top, mean_ratio * rms / top, np.ones_like(amp)
    if task.normalization == "e":
        if e is None:
            raise DatasetError("normalization 'e' needs E values in the dataset")
        rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
        scale = np.where(e > 0, amp / np.where(e > 0, e, 1.0), rms)
        return e, mean_ratio, scale / top
    rms = wilson_rms(amp, known, hkl, cell, sg, z, refl)
    return amp / rms, mean_ratio, rms / top


def make_item(
    hkl: np.ndarray,
    amp: np.ndarray,
    cell: tuple,
    sg: str,
    task: Task,
    grid: HKLGrid | None,
    e: np.ndarray | None = None,
    z: np.ndarray | None = None,
    sample_id: int = -1,
) -> dict[str, Any]:
    """One training item from a structure's reflections (ASU ``hkl``, amplitudes ``amp``).

    Besides the values and masks it holds ``wilson`` (the Wilson fill, the baseline every model
    is compared with, in the same units), ``scale`` (values × scale = amplitudes with the largest
    known one = 1, the units of every R) and ``d`` (Å; 0 at absent voxels in grid mode).
    """
    d = d_spacing(hkl, cell)
    use = at_or_above(d, task.d_high)
    hkl, amp, d = hkl[use], amp[use], d[use]
    e = e[use] if e is not None else None
    known = at_or_above(d, task.d_low)
    value, fill, scale = (
        v.astype(np.float32)
        for v in _normalised(
            amp.astype(np.float64),
            known,
            task,
            e,
            hkl,
            cell,
            sg,
            np.zeros(0, int) if z is None else z,
        )
    )
    if grid is None:
        return {
            "hkl": torch.from_numpy(hkl.astype(np.int64)),
            "d": torch.from_numpy(d.astype(np.float32)),
            "value": torch.from_numpy(value),
            "wilson": torch.from_numpy(fill),
            "scale": torch.from_numpy(scale),
            "known": torch.from_numpy(known),
            "target_mask": torch.from_numpy(~known),
            "id": sample_id,
        }
    i, j, k = grid.index(hkl)

    def dense(values: np.ndarray, dtype: Any = np.float32) -> torch.Tensor:
        out = np.zeros(grid.shape, dtype)
        out[i, j, k] = values
        return torch.from_numpy(out)[None]

    full = dense(value)
    known_m = dense(known, bool)
    target_m = dense(~known, bool)
    return {
        "input": torch.where(known_m, full, 0.0),
        "target": full,
        "wilson": dense(fill),
        "scale": dense(scale),
        "d": dense(d.astype(np.float32)),
        "known": known_m,
        "target_mask": target_m,
        "absent": ~(known_m | target_m),
        "id": sample_id,
    }


def collate_reflections(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad list-mode items to the longest: ``pad_mask`` is True at real reflections."""
    n = max(len(item["value"]) for item in batch)
    out: dict[str, torch.Tensor] = {
        "hkl": torch.zeros(len(batch), n, 3, dtype=torch.int64),
        "d": torch.zeros(len(batch), n),
        "value": torch.zeros(len(batch), n),
        "wilson": torch.zeros(len(batch), n),
        "scale": torch.zeros(len(batch), n),
        "known": torch.zeros(len(batch), n, dtype=torch.bool),
        "target_mask": torch.zeros(len(batch), n, dtype=torch.bool),
        "pad_mask": torch.zeros(len(batch), n, dtype=torch.bool),
        "id": torch.tensor([item["id"] for item in batch]),
    }
    for b, item in enumerate(batch):
        m = len(item["value"])
        for key in ("hkl", "d", "value", "wilson", "scale", "known", "target_mask"):
            out[key][b, :m] = item[key]
        out["pad_mask"][b, :m] = True
    return out


class ShardDataset(Dataset):
    """Map-style dataset over a dataset folder's shards, streamed: each item decodes only its
    Parquet row group (a few are cached per worker), never the whole shard.

    ``grid``: the dataset's hkl grid for ``task.d_high`` by default (from the manifest's cell and
    space-group bounds); ``mode="list"`` returns reflection lists instead.
    """

    COLUMNS = ("id", "cell", "spacegroup", "hkl", "F", "E", "z")

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        task: Task | None = None,
        mode: Literal["grid", "list"] = "grid",
        grid: HKLGrid | None = None,
        cache_row_groups: int = 4,
        extra_columns: tuple[str, ...] = (),
    ) -> None:
        self.root = Path(root)
        self.task = task or Task()
        self.manifest = read_manifest(self.root)
        if self.manifest.get("status") != "complete":
            raise DatasetError(f"{self.root}: dataset is not complete; rerun its generation")
        self.mode = mode
        if mode == "grid" and grid is None:
            grid = HKLGrid.from_bounds(
                tuple(self.manifest["max_edges"]),
                self.task.d_high,
                list(self.manifest["spacegroups"]),
            )
        self.grid = grid if mode == "grid" else None
        self._files = [self.root / s["file"] for s in self.manifest["shards"]]
        # (file, row group, row) of every selected item, from the small split column only
        self._index: list[tuple[int, int, int]] = []
        self._block_starts: list[int] = []
        for f, path in enumerate(self._files):
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
            self._columns = [c for c in (*self.COLUMNS, *extra_columns) if c in names]
            for rg in range(pf.num_row_groups):
                splits = pf.read_row_group(rg, columns=["split"]).column("split").to_pylist()
                self._block_starts.append(len(self._index))
                self._index.extend(
                    (f, rg, r) for r, s in enumerate(splits) if split is None or s == split
                )
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_row_groups

    def __len__(self) -> int:
        return len(self._index)

    def _row_group(self, f: int, rg: int) -> dict[str, list]:
        key = (f, rg)
        if key not in self._cache:
            table = pq.ParquetFile(self._files[f]).read_row_group(rg, columns=self._columns)
            self._cache[key] = {c: table.column(c) for c in self._columns}
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def row(self, i: int) -> dict[str, Any]:
        """Raw values of item ``i`` (numpy arrays for list columns)."""
        f, rg, r = self._index[i]
        cols = self._row_group(f, rg)
        out: dict[str, Any] = {}
        for c, arr in cols.items():
            v = arr[r]
            out[c] = v.values.to_numpy(zero_copy_only=False) if hasattr(v, "values") else v.as_py()
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.row(i)
        return make_item(
            row["hkl"].reshape(-1, 3).astype(np.int64),
            row["F"],
            tuple(row["cell"].tolist()),
            row["spacegroup"],
            self.task,
            self.grid,
            e=row.get("E"),
            z=row.get("z"),
            sample_id=int(row["id"]),
        )

    def lengths(self) -> np.ndarray:
        """Stored reflections per item (int64, from the ``hkl`` column only): proportional to
        the tokens a list-mode item has for any task (both scale as cell volume / |G|)."""
        out: list[np.ndarray] = []
        # the index lists each row group's rows together, in order
        for (f, rg), rows in itertools.groupby(self._index, key=lambda t: t[:2]):
            col = pq.ParquetFile(self._files[f]).read_row_group(rg, columns=["hkl"]).column(0)
            per_row = np.diff(col.combine_chunks().offsets.to_numpy()) // 3
            out.append(per_row[[r for _, _, r in rows]])
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def blocks(self) -> list[range]:
        """Item ranges that share a row group (for :class:`BlockShuffleSampler`)."""
        starts = sorted(set([*self._block_starts, len(self._index)]))
        return [range(a, b) for a, b in itertools.pairwise(starts) if b > a]


class BlockShuffleSampler(Sampler[int]):
    """Shuffles row groups, then the items inside each: random order with few decodes."""

    def __init__(self, dataset: ShardDataset, seed: int = 0) -> None:
        self.blocks = dataset.blocks()
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for b in rng.permutation(len(self.blocks)):
            yield from (int(i) for i in rng.permutation(np.array(self.blocks[b])))


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of items of similar length, for list-mode (transformer) training.

    The items come in :class:`BlockShuffleSampler` order; each pool of ``pool_batches`` ×
    ``batch_size`` consecutive items is sorted by length, cut into batches, and the pool's batches
    are shuffled. Batches then pad to their own longest item instead of a random one's (1.9×
    the transformer's samples/s of random batches on ``monoclinic-20``: BENCHMARKS.md), while
    the order stays random and seeded per epoch. Single device (no distributed sharding).
    ``sampler`` is the underlying :class:`BlockShuffleSampler` (Lightning sets its epoch, which
    this sampler follows).
    """

    def __init__(
        self, dataset: ShardDataset, batch_size: int, pool_batches: int = 32, seed: int = 0
    ) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ValueError(
                f"batch_size and pool_batches must be ≥ 1, got {batch_size}, {pool_batches}"
            )
        self.sampler = BlockShuffleSampler(dataset, seed)
        self.lengths = dataset.lengths()
        self.batch_size, self.pool_batches = batch_size, pool_batches
        self.pool = pool_batches * batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.pool)
        return full * self.pool_batches + -(-rest // self.batch_size)

    def __iter__(self):
        order = np.fromiter(self.sampler, np.int64, len(self.sampler))
        rng = np.random.default_rng([self.sampler.seed, self.sampler.epoch, 1])
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            for j in rng.permutation(len(batches)):
                yield batches[j].tolist()


class OnTheFlyDataset(IterableDataset):
    """Structures generated inside DataLoader workers, structure factors in batches.

    Sample i (of epoch e) has seed ``sample_seed(seed, e·length + i)``; worker w of W makes
    samples w, w+W, …, so every sample is the same whatever the number of workers. ``device``
    runs the structure-factor sums (``"cuda"`` in the main process only; workers use the CPU).
    """

    def __init__(
        self,
        generator: Any,
        task: Task | None = None,
        length: int = 1024,
        seed: int = 0,
        sf_batch: int = 32,
        mode: Literal["grid", "list"] = "grid",
        grid: HKLGrid | None = None,
        device: str = "cpu",
    ) -> None:
        from xtalforge.generate import Generator

        self.generator = (
            generator if isinstance(generator, Generator) else Generator.from_config(generator)
        )
        self.task = task or Task()
        self.length, self.seed, self.sf_batch, self.mode = length, seed, sf_batch, mode
        self.device = device
        self.epoch = 0
        if mode == "grid" and grid is None:
            cfg = self.generator.config
            grid = HKLGrid.from_bounds(cfg.cell.a_max, self.task.d_high, list(cfg.spacegroups))
        self.grid = grid if mode == "grid" else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        from xtalforge.diffraction.batch import structure_factors_batch
        from xtalforge.diffraction.reflections import reflections

        info = get_worker_info()
        w, n_w = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = list(range(w, self.length, n_w))
        for start in range(0, len(mine), self.sf_batch):
            idx = mine[start : start + self.sf_batch]
            crystals = [
                self.generator.sample(sample_seed(self.seed, self.epoch * self.length + i))
                for i in idx
            ]
            refls = [reflections(c, self.task.d_high) for c in crystals]
            fs = structure_factors_batch(crystals, refls, device=self.device)
            for i, c, r, f in zip(idx, crystals, refls, fs):
                amp = np.abs(f)
                e = normalize(amp, r, crystal=c) if self.task.normalization == "e" else None
                yield make_item(
                    r.hkl.astype(np.int64),
                    amp,
                    c.cell,
                    c.spacegroup.xhm(),
                    self.task,
                    self.grid,
                    e=e,
                    z=c.z,
                    sample_id=i,
                )
