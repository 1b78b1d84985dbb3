"""Torch datasets over dataset folders: a split's rows streamed by Parquet row group
(:class:`ShardDataset`), and the samplers that keep reads sequential
(:class:`BlockShuffleSampler`) or batches of similar length (:class:`LengthGroupedBatchSampler`).
What an item holds is the task's business (a ``make(row)`` function); see
:mod:`xtalforge.data.items` for structures generated on the fly."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from torch.utils.data import Dataset, Sampler

from xtalforge.data.shards import read_manifest
from xtalforge.data.spec import DatasetError

__all__ = ["BlockShuffleSampler", "LengthGroupedBatchSampler", "ShardDataset"]


class ShardDataset(Dataset):
    """Map-style dataset over a dataset folder's split, streamed: each item decodes only its
    Parquet row group (a few are cached per worker), never the whole shard.

    ``make(row)`` turns a raw row (:meth:`row`: numpy arrays for list columns) into an item; a
    task passes its own (it must be picklable for DataLoader workers: a module-level function
    or a ``functools.partial`` of one). Without it an item is the raw row.
    """

    COLUMNS = ("id", "cell", "spacegroup", "hkl", "F", "E", "z")

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        make: Callable[[dict[str, Any]], Any] | None = None,
        extra_columns: tuple[str, ...] = (),
        cache_row_groups: int = 4,
    ) -> None:
        self.root = Path(root)
        self.make = make
        self.manifest = read_manifest(self.root)
        if self.manifest.get("status") != "complete":
            raise DatasetError(f"{self.root}: dataset is not complete; rerun its generation")
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

    def __getitem__(self, i: int) -> Any:
        row = self.row(i)
        return row if self.make is None else self.make(row)

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
