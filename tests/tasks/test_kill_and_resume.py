"""``train`` killed with SIGKILL mid-run and continued with ``--resume`` ends with the same
weights as a run that was never interrupted (CPU, same seed)."""

from __future__ import annotations

import subprocess

import torch
import yaml

from tests.builders import cli, cli_env, kill_when


def test_train_killed_and_resumed_ends_with_the_same_weights(run_dir, tmp_path):
    raw = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    raw["trainer"]["max_epochs"] = 6
    # both runs in a CLI process of their own (the same threads, so the same float sums)
    raw["output_dir"] = str(tmp_path / "fresh")
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump(raw))
    subprocess.run(
        cli("train", fresh, "--no-progress"), env=cli_env(), check=True, capture_output=True
    )
    whole = tmp_path / "fresh" / raw["name"] / "version_0"
    raw["output_dir"] = str(tmp_path / "killed")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    cmd = cli("train", cfg, "--no-progress")
    run = tmp_path / "killed" / raw["name"] / "version_0"
    last = run / "checkpoints" / "last.ckpt"

    def second_epoch_saved() -> bool:
        try:
            return last.is_file() and torch.load(last, weights_only=False)["epoch"] >= 1
        except Exception:  # being written: look again
            return False

    kill_when(cmd, second_epoch_saved)
    killed_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"]
    assert killed_at < 5, "the kill should land before the last epoch"
    again = subprocess.run(
        [*cmd, "--resume", str(run)], env=cli_env(), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 5 and a["global_step"] == b["global_step"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
