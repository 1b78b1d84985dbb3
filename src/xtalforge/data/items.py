"""Items for training and evaluation, whatever the task: structures generated on the fly
(:class:`GeneratedItems`, deterministic per index), the rows of a dataset folder
(:class:`~xtalforge.data.torch_data.ShardDataset`), the Lightning DataModule over them
(:class:`ItemsDataModule`) and the structures a model is evaluated on
(:func:`evaluation_structures`).

A *maker* turns one structure into an item dict of tensors; it must be picklable (a
module-level function or a ``functools.partial`` of one) so that DataLoader workers can run it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from xtalforge.crystal.model import Crystal
from xtalforge.data.spec import TEST_OFFSET, VAL_OFFSET, sample_seed
from xtalforge.data.torch_data import BlockShuffleSampler, LengthGroupedBatchSampler, ShardDataset
from xtalforge.errors import XtalforgeError
from xtalforge.io.cif_structure import cif_entries, entry_name, read_cif

__all__ = [
    "GeneratedItems",
    "ItemsDataModule",
    "evaluation_structures",
    "generated_datamodule",
]

Maker = Callable[[Crystal, int], Any]


class GeneratedItems(IterableDataset):
    """``length`` structures from ``generator`` (sample i of epoch e has seed
    ``sample_seed(seed, e·length + i)``), each made into an item by ``make(crystal, i)``.
    Worker w of W makes samples w, w+W, …: the items do not depend on the worker count.
    ``make_batch(crystals, ids)`` (optional) makes a list of items at once instead, ``batch``
    structures at a time (structure factors of many structures share one vectorised call)."""

    def __init__(
        self,
        generator: Any,
        make: Maker | None,
        length: int,
        seed: int = 0,
        make_batch: Callable[[list[Crystal], list[int]], list[Any]] | None = None,
        batch: int = 32,
    ) -> None:
        from xtalforge.generate import Generator

        self.generator = (
            generator if isinstance(generator, Generator) else Generator.from_config(generator)
        )
        self.make, self.make_batch, self.batch = make, make_batch, batch
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def crystal(self, i: int) -> Crystal:
        """Structure ``i`` of the current epoch."""
        return self.generator.sample(sample_seed(self.seed, self.epoch * self.length + i))

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        w, n_w = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = list(range(w, self.length, n_w))
        if self.make_batch is None:
            assert self.make is not None
            for i in mine:
                yield self.make(self.crystal(i), i)
            return
        for start in range(0, len(mine), self.batch):
            ids = mine[start : start + self.batch]
            yield from self.make_batch([self.crystal(i) for i in ids], ids)


class ItemsDataModule(L.LightningDataModule):
    """Train / val / test loaders over given datasets. Map-style training data
    (:class:`ShardDataset`) is shuffled by row group (seeded per epoch), or with
    ``length_grouping`` > 0 batched by similar length (list-mode items; pools of that many
    batches); generated training data gets the trainer's epoch. ``collate`` batches list-mode
    items (default: stacking)."""

    def __init__(
        self,
        train: Any,
        val: Any,
        test: Any = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        collate: Callable | None = None,
        length_grouping: int = 0,
    ) -> None:
        super().__init__()
        if length_grouping and not isinstance(train, ShardDataset):
            raise XtalforgeError("length grouping batches the rows of a dataset folder")
        self.train, self.val, self.test = train, val, test
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.collate, self.length_grouping = collate, length_grouping

    def _loader(self, ds: Any, sampler: Any = None, batch_sampler: Any = None) -> DataLoader:
        # generated data: workers are not persistent, so each epoch's workers see its seeds
        persistent = self.num_workers > 0 and not isinstance(ds, GeneratedItems)
        batching = (
            {"batch_sampler": batch_sampler}
            if batch_sampler is not None
            else {"batch_size": self.batch_size, "sampler": sampler}
        )
        return DataLoader(
            ds,
            **batching,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=persistent,
            pin_memory=False,
        )

    def train_dataloader(self) -> DataLoader:
        if isinstance(self.train, GeneratedItems):
            if self.trainer is not None:
                self.train.set_epoch(self.trainer.current_epoch)
            return self._loader(self.train)
        if self.length_grouping:
            return self._loader(
                self.train,
                batch_sampler=LengthGroupedBatchSampler(
                    self.train, self.batch_size, self.length_grouping, self.seed
                ),
            )
        return self._loader(self.train, BlockShuffleSampler(self.train, self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test if self.test is not None else self.val)


def generated_datamodule(
    generator: Any,
    lengths: tuple[int, int, int],
    seed: int,
    batch_size: int,
    num_workers: int,
    make: Maker | None = None,
    collate: Callable | None = None,
    make_batch: Callable[[list[Crystal], list[int]], list[Any]] | None = None,
) -> ItemsDataModule:
    """Train / val / test sets of ``generator`` (``lengths`` structures each; val and test fixed
    by their seed offsets :data:`VAL_OFFSET` and :data:`TEST_OFFSET`) made into items."""
    train, val, test = (
        GeneratedItems(generator, make, n, seed + offset, make_batch)
        for n, offset in zip(lengths, (0, VAL_OFFSET, TEST_OFFSET), strict=True)
    )
    return ItemsDataModule(
        train,
        val,
        test,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        collate=collate,
    )


def evaluation_structures(
    source: dict[str, Any] | None, data: Path | None, limit: int | None, split: str | None = "test"
) -> list[tuple[str, Crystal]]:
    """(name, structure) of an evaluation set: with ``data`` the ``split`` of a dataset folder
    or the CIFs of a folder (those that fail to load are reported on stderr and skipped);
    without it the training source recorded in a checkpoint (``source``: its ``generator``'s
    fixed test structures, or its dataset folder's ``path``)."""
    if data is None:
        if not source:
            raise XtalforgeError("this checkpoint records no training data: give --data")
        if source.get("path"):
            data = Path(source["path"])
        else:
            gen = GeneratedItems(
                source["generator"],
                None,
                limit or source["test_length"],
                source["seed"] + TEST_OFFSET,
            )
            return [(f"generated-{i}", gen.crystal(i)) for i in range(len(gen))]
    if (Path(data) / "manifest.json").is_file():  # a dataset folder
        from xtalforge.data.rows import crystal_from_row

        rows = ShardDataset(data, split, extra_columns=("frac", "u_iso", "occ", "metadata"))
        n = len(rows) if limit is None else min(limit, len(rows))
        return [(f"entry-{rows.row(i)['id']}", crystal_from_row(rows.row(i))) for i in range(n)]
    out: list[tuple[str, Crystal]] = []
    for path, block in cif_entries(data):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append((entry_name(path, block), read_cif(path, block=block)))
        except XtalforgeError as exc:
            print(f"skipped {entry_name(path, block)}: {exc}", file=sys.stderr)
    return out
