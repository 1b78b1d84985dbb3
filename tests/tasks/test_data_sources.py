"""Every task at the edges: trained on a dataset folder or on structures made on the fly, its
checkpoint records where its data came from, and ``evaluate`` without ``--data`` scores that
source's test set (the dataset's test split, or the generator's fixed test structures)."""

from __future__ import annotations

import math

import pytest

from tests.builders import TINY
from xtalforge.data.torch_data import ShardDataset
from xtalforge.tasks import evaluate, load_checkpoint, load_run_config, train


def _run(tmp_path, data: dict, task: dict, model: dict) -> object:
    cfg = load_run_config(
        {
            "name": task.get("name", "resolution"),
            "seed": 2,
            "output_dir": str(tmp_path),
            "data": data,
            "task": task,
            "model": model,
            "trainer": {"max_epochs": 1},
        }
    )
    return train(cfg, progress=False) / "checkpoints" / "last.ckpt"


def test_a_dataset_trained_map_model_evaluates_its_own_test_split(tmp_path, small_dataset):
    ckpt = _run(
        tmp_path,
        {"path": str(small_dataset), "batch_size": 4},
        {
            "name": "patterson_sr",
            "d_low": 1.3,
            "d_high": 0.9,
            "low_shape": [12, 12, 12],
            "high_shape": [24, 24, 24],
        },
        {"name": "patterson_unet", "params": {"channels": [4, 4, 4]}},
    )
    assert load_checkpoint(ckpt).data_source == {"path": str(small_dataset)}
    r = evaluate(ckpt)  # no --data: the training dataset's test split
    assert r["data"] == str(small_dataset) and r["split"] == "test"
    assert r["n_structures"] == len(ShardDataset(small_dataset, "test"))
    assert r == {**r, **evaluate(ckpt, small_dataset, "test")} | {"data": str(small_dataset)}


def test_a_resolution_model_trains_on_the_fly_and_evaluates_its_generated_test_set(tmp_path):
    ckpt = _run(
        tmp_path,
        {"generator": TINY, "batch_size": 4, "train_length": 8, "val_length": 4, "test_length": 5},
        {"d_low": 1.2, "d_high": 1.0, "normalization": "wilson"},
        {"name": "unet3d", "params": {"channels": [4, 8, 8]}},
    )
    module = load_checkpoint(ckpt)
    assert module.data_source["test_length"] == 5 and module.data_source["seed"] == 2
    domain = module.hparams["training_domain"]
    assert domain["spacegroups"] == ["P 1 21 1"] and domain["max_edge"] == TINY["cell"]["a_max"]
    r = evaluate(ckpt)
    assert r["data"] == "generated" and r["n_structures"] == 5
    assert math.isfinite(r["R_target"]) and 0 < r["R_wilson"] < 1
    assert evaluate(ckpt)["R_target"] == r["R_target"]  # the same fixed test structures


def test_an_old_checkpoint_without_a_data_record_asks_for_data(tmp_path, small_dataset):
    import torch

    ckpt = _run(
        tmp_path,
        {"path": str(small_dataset), "batch_size": 4},
        {"d_low": 1.3, "d_high": 0.9},
        {"name": "unet3d", "params": {"channels": [4, 8, 8]}},
    )
    saved = torch.load(ckpt, weights_only=False)
    del saved["hyper_parameters"]["data"]  # as checkpoints were written before the record
    torch.save(saved, tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match="records no training data: give --data"):
        evaluate(tmp_path / "old.ckpt")
    assert evaluate(tmp_path / "old.ckpt", small_dataset)["n_structures"] > 0
