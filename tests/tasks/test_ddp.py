"""Tasks: training scales out with Lightning DDP as the README says — two CPU processes
(gloo) through the CLI write one run folder, a checkpoint and logged metrics, and resume."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch
import yaml

from tests.builders import SPEC
from xtalforge.data.build import build_dataset
from xtalforge.data.spec import load_spec

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]


def _train(config, *extra):
    res = subprocess.run(
        [sys.executable, "-m", "xtalforge", "train", str(config), *DDP, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_ddp_on_two_cpu_processes_trains_checkpoints_and_resumes(tmp_path):
    build_dataset(load_spec(SPEC), tmp_path / "data")
    config = tmp_path / "run.yaml"
    raw = {
        "name": "ddp",
        "seed": 7,
        "output_dir": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "data"), "batch_size": 8},
        "task": {"d_low": 1.2, "d_high": 1.0},
        "model": {"name": "unet3d", "params": {"channels": [8, 16, 16]}},
        "trainer": {"max_epochs": 2, "limit_train_batches": 3},
    }
    config.write_text(yaml.safe_dump(raw))
    _train(config)
    runs = sorted((tmp_path / "runs" / "ddp").iterdir())
    assert [r.name for r in runs] == ["version_0"]  # one run folder for both ranks
    run = runs[0]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    # 3 batches per rank and epoch: the global step counts optimizer steps of one rank
    assert last["epoch"] == 1 and last["global_step"] == 6
    with open(run / "csv" / "metrics.csv") as fh:
        epochs = {r["epoch"] for r in csv.DictReader(fh) if r.get("val/R_target")}
    assert epochs == {"0", "1"}
    recorded = yaml.safe_load((run / "run.yaml").read_text())
    assert recorded["config"]["trainer"]["strategy"] == "ddp"
    # resumed under DDP to a third epoch, in the same folder
    _train(config, "trainer.max_epochs=3", "--resume", str(run))
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 9
    assert any(not torch.equal(last["state_dict"][k], v) for k, v in resumed["state_dict"].items())
