"""Run configs (tasks.config): typed task settings, overrides, errors naming the field."""

from __future__ import annotations

import math

import pytest

from xtalforge.tasks import load_run_config


def test_config_errors_name_the_field(tmp_path):
    from xtalforge.tasks import ConfigError

    with pytest.raises(ConfigError, match="data"):
        load_run_config({"name": "x", "data": {}})
    with pytest.raises(ConfigError, match="d_low"):
        load_run_config({"data": {"path": "."}, "task": {"d_low": 1.0, "d_high": 1.2}})
    with pytest.raises(ConfigError, match="loss"):
        load_run_config({"data": {"path": "."}, "task": {"loss": "relative_mae"}})
    with pytest.raises(ConfigError, match="task phase has no setting 'loss'"):
        load_run_config("quick-phai", ["task.loss=relative_mse"])
    with pytest.raises(ConfigError, match="no experiment preset"):
        load_run_config("nope")
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        load_run_config(str(tmp_path / "missing.yaml"))
    cfg = load_run_config("quick-unet3d", ["trainer.max_epochs=3", "optim.lr=0.01"])
    assert cfg.trainer.max_epochs == 3 and math.isclose(cfg.optim.lr, 0.01)
    from xtalforge.tasks.config import PRESET_DIR

    presets = sorted(PRESET_DIR.glob("*.yaml"))
    assert len(presets) >= 20
    tasks = {load_run_config(p).task.name for p in presets}  # every shipped preset validates
    assert tasks == {
        "resolution",
        "patterson_sr",
        "patterson_density",
        "phase",
        "density_modification",
    }
