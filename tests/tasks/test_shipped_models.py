"""The models that ship with xtalforge: every card agrees with its checkpoint (hash, task,
resolution, domain, epochs), each loads by name wherever a path is taken, the shipping
function round-trips a run, and bad names are named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xtalforge.cli import app
from xtalforge.errors import XtalforgeError
from xtalforge.tasks import load_checkpoint, load_run_config, train
from xtalforge.tasks.shipped import model_path, read_card, shipped_cards, shipped_folder
from xtalforge.tasks.shipping import MAX_SHIPPED_BYTES, check_card, ship

#: The models the package promises (issue: the best density-modification model and the best
#: 1.5 → 1.0 Å amplitude model).
PROMISED = {"dm-1.5": "density_modification", "amp-1.5": "resolution"}


def test_the_promised_models_ship():
    cards = {c.name: c for c in shipped_cards()}
    for name, task in PROMISED.items():
        assert name in cards, f"{name} is not shipped in {shipped_folder()}"
        assert cards[name].task == task


@pytest.mark.parametrize("card", shipped_cards(), ids=lambda c: c.name)
def test_every_card_matches_its_checkpoint(card):
    assert check_card(card) == []
    assert (shipped_folder() / card.file).stat().st_size <= MAX_SHIPPED_BYTES
    module = load_checkpoint(card.name)  # a name, not a path
    assert module.task_name == card.task
    assert card.training["curve"], "the card records the training curve"
    assert card.training["command"].startswith("xtalforge train")
    assert card.metrics, "the card records development-set metrics"


def test_models_list_and_show():
    runner = CliRunner()
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    for name in PROMISED:
        assert name in res.output
    res = runner.invoke(app, ["models", "show", "dm-1.5"])
    assert res.exit_code == 0 and "training command" in res.output
    res = runner.invoke(app, ["models", "show", "no-such-model"])
    assert res.exit_code != 0 and "no shipped model" in res.output
    res = runner.invoke(app, ["info", "dm-1.5"])
    assert res.exit_code == 0 and "density_modification" in res.output


def test_unknown_names_and_missing_files_are_named(tmp_path):
    with pytest.raises(XtalforgeError, match="neither a checkpoint file nor a shipped model"):
        model_path("dm-9.9")
    with pytest.raises(XtalforgeError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "gone.ckpt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(XtalforgeError, match="not a model card"):
        read_card(bad)


def test_ship_round_trips_a_run_and_check_card_finds_tampering(tmp_path):
    gen = {
        "name": "s",
        "spacegroups": ["P 1 21/c 1"],
        "atoms": [3, 4],
        "cell": {"strategy": "volume_per_atom", "v_atom": [16.0, 20.0], "a_min": 5, "a_max": 7},
        "composition": {"elements": {"C": 1.0}},
        "placement": {"method": "molecule"},
        "u_iso": [0.01, 0.03],
    }
    cfg = load_run_config(
        {
            "name": "s",
            "output_dir": str(tmp_path / "runs"),
            "data": {"generator": gen, "batch_size": 2, "train_length": 2, "val_length": 2},
            "task": {"name": "density_modification", "d_low": 1.6, "d_low_max": 1.6},
            "model": {"name": "density_unet", "params": {"kernel": 3, "channels": [4, 4, 4]}},
            "trainer": {"max_epochs": 1},
        }
    )
    run = train(cfg, progress=False)
    folder = tmp_path / "shipped"
    card = ship(run, "t-1", "a test", "nothing", "xtalforge train …", "1 s", {"x": 1}, folder)
    assert check_card(card, folder) == []
    assert card.resolution == {"d_low": 1.6, "d_low_max": 1.6, "d_high": 1.0}
    assert card.domain["spacegroups"] == ["P 1 21/c 1"]
    ckpt = folder / "t-1.ckpt"
    assert ckpt.stat().st_size < (run / "checkpoints" / "best.ckpt").stat().st_size  # no optimiser
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    assert any("SHA-256" in p for p in check_card(card, folder))
