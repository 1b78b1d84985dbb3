"""Shared fixtures: a small dataset, four training items, one trained resolution run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.builders import SMALL, SPEC, TASK, TINY
from xtalforge.data import build_dataset, load_spec
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.generate import Generator
from xtalforge.tasks import load_run_config, train
from xtalforge.tasks.resolution import make_item


@pytest.fixture(scope="module")
def four_items() -> tuple[list[dict], list[dict]]:
    gen = Generator.from_config(TINY)
    grid = HKLGrid.from_bounds(6.0, 1.0, ["P 1 21 1"])
    grid_items, list_items = [], []
    for i in range(4):
        c = gen.sample(100 + i)
        r = reflections(c, 1.0)
        amp = np.abs(structure_factors(c, r))
        grid_items.append(
            make_item(r.hkl, amp, c.cell, c.spacegroup.xhm(), TASK, grid, z=c.z, sample_id=i)
        )
        list_items.append(
            make_item(r.hkl, amp, c.cell, c.spacegroup.xhm(), TASK, None, z=c.z, sample_id=i)
        )
    return grid_items, list_items


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("train")
    build_dataset(load_spec(SPEC), base / "data")
    cfg = load_run_config(
        {
            "name": "t",
            "seed": 7,
            "output_dir": str(base / "runs"),
            "data": {"path": str(base / "data"), "batch_size": 8},
            "task": {"d_low": 1.2, "d_high": 1.0},
            "model": {"name": "unet3d", "params": {"channels": [8, 16, 16]}},
            "trainer": {"max_epochs": 2, "limit_train_batches": 3},
        }
    )
    return train(cfg, progress=False)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    build_dataset(load_spec(SMALL), root)
    return root
