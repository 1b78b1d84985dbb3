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
    _check_in_browser(out, len(images), tmp_path)


#: Injected first into the page: records script errors and console.error calls, then on load
#: every image's decoded and displayed size and every resource the page fetched.
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)), true);
const __ce = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); __ce(...a); };
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => {
    const r = i.getBoundingClientRect();
    return [i.complete, i.naturalWidth, i.naturalHeight, Math.round(r.width), Math.round(r.height)];
  });
  const fetched = performance.getEntriesByType("resource").map(r => r.name);
  const pre = document.createElement("pre");
  pre.id = "__probe";
  pre.textContent = JSON.stringify({imgs, fetched, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _check_in_browser(report, n_images, tmp_path):
    """The report in headless Chromium: every image decodes and is shown at a readable size,
    the page fetches nothing (every host name resolves to nothing, so a request could not leave
    anyway) and logs no error; a screenshot is rendered."""
    import html

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>" + _PROBE, 1))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1200,3000",
        "--virtual-time-budget=10000",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", probed.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    found = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page never finished loading"
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["errors"] == [], probe["errors"]
    assert probe["fetched"] == [], probe["fetched"]
    assert len(probe["imgs"]) == n_images
    for complete, width, height, shown_w, shown_h in probe["imgs"]:
        assert complete and width >= 200 and height >= 100, (width, height)
        assert shown_w >= 200 and shown_h >= 100, (shown_w, shown_h)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", report.as_uri()],
        check=True,
        capture_output=True,
        timeout=180,
    )
    assert shot.stat().st_size > 10000


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
