"""Datasets of the map and phase tasks: items made by a task's function from generated
structures (on the fly, deterministic per index) or from the rows of a dataset folder.

A *maker* turns one structure into an item dict of tensors; it must be picklable (a module-level
function or a ``functools.partial`` of one) so that DataLoader workers can run it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from xtalforge.crystal.model import Crystal
from xtalforge.data.spec import sample_seed
from xtalforge.data.torch_data import BlockShuffleSampler, ShardDataset
from xtalforge.errors import XtalforgeError

__all__ = [
    "GeneratedItems",
    "RowItems",
    "TaskDataModule",
    "crystal_data",
    "evaluation_crystals",
    "generated_datamodule",
]

Maker = Callable[[Crystal, int], dict[str, Any]]

#: Seed offsets of the fixed validation and test structures of an on-the-fly run.
VAL_OFFSET, TEST_OFFSET = 1_000_003, 2_000_003


def crystal_data(crystal: Crystal, d_min: float) -> tuple[Any, np.ndarray]:
    """(ASU reflections to ``d_min`` Å, complex structure factors) of a structure."""
    from xtalforge.diffraction.reflections import reflections
    from xtalforge.diffraction.structure_factors import structure_factors

    refl = reflections(crystal, d_min)
    return refl, structure_factors(crystal, refl)


class GeneratedItems(IterableDataset):
    """``length`` structures from ``generator`` (sample i of epoch e has seed
    ``sample_seed(seed, e·length + i)``), each made into an item by ``make(crystal, i)``.
    Worker w of W makes samples w, w+W, …: the items do not depend on the worker count."""

    def __init__(self, generator: Any, make: Maker, length: int, seed: int = 0) -> None:
        from xtalforge.generate import Generator

        self.generator = (
            generator if isinstance(generator, Generator) else Generator.from_config(generator)
        )
        self.make, self.length, self.seed, self.epoch = make, length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def crystal(self, i: int) -> Crystal:
        """Structure ``i`` of the current epoch."""
        return self.generator.sample(sample_seed(self.seed, self.epoch * self.length + i))

    def __iter__(self):
        info = get_worker_info()
        w, n_w = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in range(w, self.length, n_w):
            yield self.make(self.crystal(i), i)


class RowItems(Dataset):
    """Map-style items from a dataset folder's split: ``make(row)`` on the raw row (hkl, F,
    cell, spacegroup, z, id), streamed by row group like :class:`ShardDataset`."""

    def __init__(self, root: str | Path, split: str | None, make: Callable[[dict], dict]) -> None:
        self.rows = ShardDataset(root, split, mode="list")
        self.make = make

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.make(self.rows.row(i))


class TaskDataModule(L.LightningDataModule):
    """Train / val / test loaders over given datasets; map-style training data is shuffled by
    row group (seeded per epoch), generated training data gets the trainer's epoch."""

    def __init__(
        self,
        train: Any,
        val: Any,
        test: Any = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train, self.val, self.test = train, val, test
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, ds: Any, sampler: Any = None) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        if isinstance(self.train, GeneratedItems):
            if self.trainer is not None:
                self.train.set_epoch(self.trainer.current_epoch)
            return self._loader(self.train)
        return self._loader(self.train, BlockShuffleSampler(self.train.rows, self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test if self.test is not None else self.val)


def generated_datamodule(cfg: Any, make: Maker) -> TaskDataModule:
    """Train / val / test sets of ``cfg.data.generator`` (lengths from ``cfg.data``; val and
    test fixed by their seed offsets) made into items by ``make``."""
    gen, d = cfg.data.generator, cfg.data
    return TaskDataModule(
        GeneratedItems(gen, make, d.train_length, cfg.seed),
        GeneratedItems(gen, make, d.val_length, cfg.seed + VAL_OFFSET),
        GeneratedItems(gen, make, d.test_length, cfg.seed + TEST_OFFSET),
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        seed=cfg.seed,
    )


def evaluation_crystals(
    info: dict[str, Any], data: Path | None, limit: int | None
) -> list[tuple[str, Crystal]]:
    """(name, structure) of the evaluation set: the run's generated test structures, the test
    split of a dataset folder, or the CIFs of a folder (those that fail to load are reported
    on stderr and skipped)."""
    if data is None:
        if not info:
            raise XtalforgeError("this checkpoint records no generator: give --data")
        gen = GeneratedItems(
            info["generator"],
            lambda c, i: None,
            limit or info["test_length"],
            info["seed"] + TEST_OFFSET,
        )
        return [(f"generated-{i}", gen.crystal(i)) for i in range(len(gen))]
    import sys

    from xtalforge.io.cif_structure import cif_entries, entry_name, read_cif

    if (Path(data) / "manifest.json").is_file():  # a dataset folder: its test split
        from xtalforge.data.rows import crystal_from_row
        from xtalforge.data.torch_data import ShardDataset

        rows = ShardDataset(
            data, "test", mode="list", extra_columns=("frac", "u_iso", "occ", "metadata")
        )
        n = len(rows) if limit is None else min(limit, len(rows))
        return [(f"entry-{rows.row(i)['id']}", crystal_from_row(rows.row(i))) for i in range(n)]
    out = []
    for path, block in cif_entries(data):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append((entry_name(path, block), read_cif(path, block=block)))
        except XtalforgeError as exc:
            print(f"skipped {entry_name(path, block)}: {exc}", file=sys.stderr)
    return out
