"""``xtalforge demo`` killed with SIGKILL while training and started again finishes: the dataset
is reused, a run with a usable checkpoint is reused or a fresh one trains, and the report and
summary are written whole (never a partial one)."""

from __future__ import annotations

import json
import subprocess

from tests.builders import cli, cli_env, kill_when


def test_demo_killed_while_training_and_run_again_finishes(tmp_path):
    out = tmp_path / "demo"
    cmd = cli("demo", "--out", out, "-n", "200", "--train-seconds", "6", "--solve-n", "2")
    runs = out / "runs" / "demo-unet3d"
    kill_when(cmd, lambda: any(runs.glob("version_0/checkpoints/*.ckpt")), timeout=240)
    assert (runs / "version_0").is_dir(), "the kill should land while training"
    assert not (out / "summary.json").exists() and not (out / "report.html").exists()
    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["structures"] == 200 and len(summary["solve"]) == 6
    assert 0 < summary["R_target"] <= 2 and 0 < summary["R_wilson"] < 1  # 6 s of training
    assert (out / summary["run"].split(str(out) + "/")[-1] / "checkpoints/best.ckpt").is_file()
    assert "</html>" in (out / "report.html").read_text()
