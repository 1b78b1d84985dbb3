"""Lightning DataModules over shards on disk or structures generated on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader

from xtalforge.data.torch_data import (
    BlockShuffleSampler,
    LengthGroupedBatchSampler,
    OnTheFlyDataset,
    ShardDataset,
    Task,
    collate_reflections,
)

__all__ = ["OnTheFlyDataModule", "ShardDataModule"]


def _loader(
    ds: Any,
    batch_size: int,
    num_workers: int,
    mode: str,
    sampler: Any = None,
    persistent: bool = True,
    batch_sampler: Any = None,
) -> DataLoader:
    batching = (
        {"batch_sampler": batch_sampler}
        if batch_sampler is not None
        else {"batch_size": batch_size, "sampler": sampler}
    )
    return DataLoader(
        ds,
        **batching,
        num_workers=num_workers,
        collate_fn=collate_reflections if mode == "list" else None,
        persistent_workers=persistent and num_workers > 0,
        pin_memory=False,
    )


class ShardDataModule(L.LightningDataModule):
    """Train/val/test loaders over a dataset folder (splits from the manifest); training order
    shuffles row groups and rows within them (seeded, per epoch).

    ``length_grouping`` > 0 (list mode only): training batches hold items of similar length,
    sorted within pools of that many batches (:class:`LengthGroupedBatchSampler`).
    """

    def __init__(
        self,
        root: str | Path,
        task: Task | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        mode: Literal["grid", "list"] = "grid",
        seed: int = 0,
        length_grouping: int = 0,
    ) -> None:
        super().__init__()
        if length_grouping and mode != "list":
            raise ValueError(
                "length_grouping applies to list-mode models (reflection "
                "tokens); grid items all have the grid's shape"
            )
        self.root, self.task, self.batch_size = Path(root), task or Task(), batch_size
        self.num_workers, self.mode, self.seed = num_workers, mode, seed
        self.length_grouping = length_grouping
        self.datasets: dict[str, ShardDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = ShardDataset(self.root, split, self.task, self.mode)

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        if self.length_grouping:
            return _loader(
                ds,
                self.batch_size,
                self.num_workers,
                self.mode,
                batch_sampler=LengthGroupedBatchSampler(
                    ds, self.batch_size, self.length_grouping, self.seed
                ),
            )
        return _loader(
            ds, self.batch_size, self.num_workers, self.mode, BlockShuffleSampler(ds, self.seed)
        )

    def val_dataloader(self) -> DataLoader:
        return _loader(self.datasets["val"], self.batch_size, self.num_workers, self.mode)

    def test_dataloader(self) -> DataLoader:
        return _loader(self.datasets["test"], self.batch_size, self.num_workers, self.mode)


class OnTheFlyDataModule(L.LightningDataModule):
    """Fresh structures every epoch for training; a fixed validation set from another seed."""

    def __init__(
        self,
        generator: Any,
        task: Task | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        train_length: int = 4096,
        val_length: int = 256,
        seed: int = 0,
        mode: Literal["grid", "list"] = "grid",
    ) -> None:
        super().__init__()
        self.task = task or Task()
        self.train = OnTheFlyDataset(generator, self.task, train_length, seed=seed, mode=mode)
        self.val = OnTheFlyDataset(
            self.train.generator,
            self.task,
            val_length,
            seed=seed + 1_000_003,
            mode=mode,
            grid=self.train.grid,
        )
        self.batch_size, self.num_workers, self.mode = batch_size, num_workers, mode

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:
            self.train.set_epoch(self.trainer.current_epoch)
        # workers are not persistent: each epoch's workers see the new epoch's seeds
        return _loader(self.train, self.batch_size, self.num_workers, self.mode, persistent=False)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.val, self.batch_size, self.num_workers, self.mode, persistent=False)
