"""Task ``resolution``: resolution extension (the thesis's D1–D3 tasks) with a U-Net, a
Fourier-layer U-Net or a transformer, on a dataset folder or on structures generated on the
fly."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L

from xtalforge.data.items import ItemsDataModule, generated_datamodule
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.models import MODELS
from xtalforge.tasks.base import DataSource, Evaluation, Task, TaskModule
from xtalforge.tasks.resolution.config import ResolutionConfig
from xtalforge.tasks.resolution.evaluate import evaluate
from xtalforge.tasks.resolution.items import (
    Extension,
    collate_reflections,
    dataset_grid,
    extension_dataset,
    generator_grid,
    items_from_crystals,
)
from xtalforge.tasks.resolution.module import ResolutionExtension

if TYPE_CHECKING:
    from xtalforge.tasks.config import RunConfig

__all__ = ["TASK", "ResolutionTask"]


def _grid(cfg: RunConfig, source: DataSource) -> HKLGrid:
    if source.root is not None:
        return dataset_grid(source.root, cfg.task.d_high)  # type: ignore[attr-defined]
    return generator_grid(source.generator, cfg.task.d_high)  # type: ignore[attr-defined]


class ResolutionTask(Task):
    name = "resolution"
    config = ResolutionConfig
    module = ResolutionExtension
    models = ("unet3d", "fft_unet", "xrd_transformer")

    def check(self, cfg: RunConfig) -> None:
        if cfg.data.length_grouping:
            if MODELS[cfg.model.name].input_mode != "list":  # type: ignore[attr-defined]
                raise ValueError(
                    "data.length_grouping applies to models whose tokens are reflections "
                    f"(xrd_transformer), not {cfg.model.name}"
                )
            if cfg.data.generator is not None:
                raise ValueError("data.length_grouping batches the rows of a dataset folder")

    def build_module(
        self, cfg: RunConfig, source: DataSource, domain: dict[str, Any] | None
    ) -> TaskModule:
        """Transformers get ``h_max`` from the data's hkl grid."""
        t: ResolutionConfig = cfg.task  # type: ignore[assignment]
        params = dict(cfg.model.params)
        if MODELS[cfg.model.name].input_mode == "list" and "h_max" not in params:  # type: ignore[attr-defined]
            params["h_max"] = _grid(cfg, source).h_max
        return ResolutionExtension(
            {**cfg.model.model_dump(), "params": params},
            t.model_dump(),
            cfg.optim.model_dump(),
            t.loss_on_known,
            t.n_shells,
            cfg.trainer.max_epochs,
            domain,
            source.record(),
        )

    def build_datamodule(
        self, cfg: RunConfig, source: DataSource, module: TaskModule
    ) -> L.LightningDataModule:
        assert isinstance(module, ResolutionExtension)
        ext: Extension = module.extension
        mode = module.input_mode
        grid = _grid(cfg, source) if mode == "grid" else None
        collate = collate_reflections if mode == "list" else None
        d = cfg.data
        if source.root is None:
            make = functools.partial(items_from_crystals, task=ext, grid=grid)
            return generated_datamodule(
                source.generator,
                source.lengths,
                cfg.seed,
                d.batch_size,
                d.num_workers,
                collate=collate,
                make_batch=make,
            )
        train, val, test = (
            extension_dataset(source.root, s, ext, mode, grid) for s in ("train", "val", "test")
        )
        return ItemsDataModule(
            train,
            val,
            test,
            batch_size=d.batch_size,
            num_workers=d.num_workers,
            seed=cfg.seed,
            collate=collate,
            length_grouping=d.length_grouping,
        )

    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        assert isinstance(module, ResolutionExtension)
        return evaluate(module, data, split, limit, out)


TASK = ResolutionTask()
