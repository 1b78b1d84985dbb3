"""Task ``patterson_sr``: Patterson super-resolution, on a dataset folder or on structures
generated on the fly; evaluated as maps (MSE, CC) beside the upsampled input and as amplitudes
of the target shell (R) beside the Wilson fill."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from xtalforge.data.items import ItemsDataModule, evaluation_structures, generated_datamodule
from xtalforge.data.torch_data import ShardDataset
from xtalforge.diffraction.maps import check_grid
from xtalforge.diffraction.reflections import Reflections, at_or_above, reflections_from_hkl
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.diffraction.wilson import wilson_fill
from xtalforge.errors import ReflectionError, XtalforgeError
from xtalforge.tasks.base import DataSource, Evaluation, Task, TaskModule, headline
from xtalforge.tasks.metrics import pearson, r_terms
from xtalforge.tasks.patterson_sr.config import PattersonSRConfig
from xtalforge.tasks.patterson_sr.maps import (
    amplitudes_from_patterson,
    item_from_crystal,
    item_from_row,
    patterson_pair,
)
from xtalforge.tasks.patterson_sr.module import PattersonSR

if TYPE_CHECKING:
    from xtalforge.tasks.config import RunConfig

__all__ = ["TASK", "PattersonSRTask", "evaluate"]


class PattersonSRTask(Task):
    name = "patterson_sr"
    config = PattersonSRConfig
    module = PattersonSR
    models = ("patterson_unet",)

    def build_datamodule(
        self, cfg: RunConfig, source: DataSource, module: TaskModule
    ) -> L.LightningDataModule:
        task = cfg.task.model_dump()
        d = cfg.data
        if source.root is None:
            return generated_datamodule(
                source.generator,
                source.lengths,
                cfg.seed,
                d.batch_size,
                d.num_workers,
                make=functools.partial(item_from_crystal, task=task),
            )
        make = functools.partial(item_from_row, task=task)
        train, val, test = (ShardDataset(source.root, s, make) for s in ("train", "val", "test"))
        return ItemsDataModule(
            train, val, test, batch_size=d.batch_size, num_workers=d.num_workers, seed=cfg.seed
        )

    def evaluate(
        self,
        module: TaskModule,
        data: Path | None,
        split: str | None,
        limit: int | None,
        out: Path | None,
    ) -> Evaluation:
        assert isinstance(module, PattersonSR)
        return evaluate(module, data, split, limit)


def _structures(
    module: PattersonSR, data: Path | None, split: str | None, limit: int | None
) -> Iterator[tuple[Any, Reflections, np.ndarray, np.ndarray | None]]:
    """(id, Reflections to d_high, |F|, atomic numbers) of the structures to evaluate: a dataset
    folder's split (the training dataset's without ``data``), the run's generated test
    structures, or a folder of CIFs (calculated F; structures whose reflections do not fit the
    map grid are reported and skipped)."""
    d_high = module.task["d_high"]
    source = module.data_source or {}
    if data is None and source.get("path"):
        data = Path(source["path"])
    if data is not None and (Path(data) / "manifest.json").is_file():
        rows = ShardDataset(data, split)
        for i in range(len(rows) if limit is None else min(limit, len(rows))):
            row = rows.row(i)
            refl = reflections_from_hkl(
                row["hkl"].reshape(-1, 3).astype(np.int64),
                tuple(row["cell"].tolist()),
                row["spacegroup"],
            )
            use = at_or_above(refl.d, d_high)
            yield int(row["id"]), refl.subset(use), np.asarray(row["F"], float)[use], row.get("z")
        return
    for name, crystal in evaluation_structures(source, data, limit):
        refl, f = calculated_data(crystal, d_high)
        try:
            check_grid(refl, tuple(module.task["high_shape"]), "high-resolution Patterson")
        except ReflectionError as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        yield name, refl, np.abs(f), crystal.z


def evaluate(
    module: PattersonSR, data: Path | None, split: str | None = "test", limit: int | None = None
) -> Evaluation:
    """Map MSE and Pearson CC of the predicted high-resolution Patterson maps beside the
    upsampled low-resolution map, and R of the target shell's amplitudes recovered from them
    beside the Wilson fill. Returns (summary, per-structure rows)."""
    t = module.task
    rows: list[dict[str, Any]] = []
    sums = dict.fromkeys(("r_num", "r_den", "w_num"), 0.0)
    for sid, refl, amp, z in _structures(module, data, split, limit):
        low, high = patterson_pair(
            refl, amp, t["d_low"], tuple(t["low_shape"]), tuple(t["high_shape"])
        )
        x = torch.from_numpy(low)[None, None]
        with torch.no_grad():
            pred, base = module(x), module.baseline(x)
        true = torch.from_numpy(high)[None, None]
        known = at_or_above(refl.d, t["d_low"])
        rec = amplitudes_from_patterson(pred[0, 0].numpy(), refl, known, amp[known])
        fill = wilson_fill(amp, known, refl, z)
        r_num, r_den = (float(v) for v in r_terms(rec, amp, ~known))
        w_num = float(r_terms(fill, amp, ~known)[0])
        sums["r_num"] += r_num
        sums["r_den"] += r_den
        sums["w_num"] += w_num
        rows.append(
            {
                "id": sid,
                "mse": float(((pred - true) ** 2).mean()),
                "mse_baseline": float(((base - true) ** 2).mean()),
                "cc": float(pearson(pred, true)[0]),
                "cc_baseline": float(pearson(base, true)[0]),
                "R_target": r_num / r_den if r_den else math.nan,
                "R_wilson": w_num / r_den if r_den else math.nan,
            }
        )
    if not rows:
        raise XtalforgeError("no structures to evaluate")

    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows]))

    summary = {
        **headline(
            "map_mse",
            mean("mse"),
            "lower",
            mean("mse_baseline"),
            "low-resolution map upsampled (periodic trilinear)",
        ),
        "map_cc": mean("cc"),
        "map_cc_baseline": mean("cc_baseline"),
        "R_target": sums["r_num"] / sums["r_den"],
        "R_wilson": sums["w_num"] / sums["r_den"],
        "fraction_beating_baseline": float(np.mean([r["mse"] < r["mse_baseline"] for r in rows])),
        "units": "maps scaled to [0, 1]; R on |F| of the target shell, the map's "
        "coefficients scaled on the known reflections",
    }
    return summary, rows


TASK = PattersonSRTask()
