"""Workflows: the HTML run report (in a real browser when Chromium is installed) and the demo."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from xtalforge.cli import app


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained_html(run_dir, tmp_path):
    (run_dir / "solve.json").write_text(
        json.dumps(
            [
                {
                    "method": "cf",
                    "data": "truth",
                    "d_min": 1.2,
                    "scored_to": 1.2,
                    "n": 2,
                    "solved_fraction": 0.5,
                    "solved_fraction_p1": 0.0,
                    "median_cc": 0.7,
                    "median_cc_p1": 0.5,
                    "median_phase_error": 40.0,
                    "median_atom_recovery": 0.6,
                    "seconds_per_structure": 0.1,
                }
            ]
        )
    )
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    for section in (
        "Configuration",
        "Dataset",
        "Training curves",
        "Wilson baseline",
        "Reconstructions",
        "Interpretability",
        "Patterson and density",
        "Solve benchmark",
    ):
        assert section in page
    images = _pngs(page)
    assert len(images) >= 7 and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in images)
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "run.yaml" in res.output
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            out.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<img") == len(images) and shot.stat().st_size > 10000


def test_demo_end_to_end_small(tmp_path):
    res = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "-n", "120", "--train-seconds", "4", "--solve-n", "1"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["R_wilson"] == pytest.approx(0.43, abs=0.1)
    assert {r["data"] for r in summary["solve"]} == {
        "truth",
        "wilson",
        "free_lunch",
        "model",
        "model prior 0.5",
    }
    page = (tmp_path / "report.html").read_text()
    assert "Solve benchmark" in page and len(_pngs(page)) >= 7
    assert "report:" in res.output
