"""Analysis and reports: Grad-CAM, sensitivity (closed form on the known voxels), attention
maps (against the fused kernel's output), absences (closed form for P2_1), the HTML report (and
its rendering in headless Chromium when available) and the end-to-end demo."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from tests.test_train import batch_of, four_items, module_for, run_dir  # noqa: F401
from xtalforge.analysis import attention_maps, grad_cam, sensitivity_map
from xtalforge.analysis.attention import absent_reflections, attention_statistics
from xtalforge.analysis.gradcam import conv_layers
from xtalforge.cli import app
from xtalforge.errors import XtalforgeError


def test_grad_cam_is_a_normalised_map_over_the_grid(four_items):  # noqa: F811
    torch.manual_seed(0)
    module = module_for("unet3d")
    batch = batch_of(module, four_items)
    layers = conv_layers(module.net)
    assert len(layers) >= 8
    nonzero = 0
    for layer in layers:
        cam = grad_cam(module, batch, layer)
        assert cam.shape == batch["input"][:, 0].shape
        top = cam.flatten(1).amax(1)
        # normalised to a maximum of 1 (or all zero: ReLU of a wholly negative weighted sum)
        assert float(cam.min()) >= 0 and bool(((top - 1).abs() < 1e-5).logical_or(top == 0).all())
        nonzero += int((top > 0).sum())
    assert nonzero > 0
    with pytest.raises(XtalforgeError, match="no layer"):
        grad_cam(module, batch, "nope")
    with pytest.raises(XtalforgeError, match="grid"):
        grad_cam(module_for("xrd_transformer"), batch, layers[0])


def test_sensitivity_of_the_known_voxels_is_the_mean_absolute_normal():
    """Known amplitudes pass through unchanged, so there |Δ output| / σ = |N(0, 1)|, whose mean
    is √(2/π)."""
    torch.manual_seed(0)
    from tests.test_train import TASK, TINY
    from xtalforge.diffraction import reflections, structure_factors
    from xtalforge.generate import Generator
    from xtalforge.tasks.resolution import make_item

    c = Generator.from_config(TINY).sample(5)
    r = reflections(c, 1.0)
    item = make_item(
        r.hkl, np.abs(structure_factors(c, r)), c.cell, c.spacegroup.xhm(), TASK, None, z=c.z
    )
    from xtalforge.tasks.resolution import collate_reflections

    batch = collate_reflections([item])
    module = module_for("xrd_transformer")
    sens = sensitivity_map(module, batch, draws=400)
    known = batch["known"] & batch["pad_mask"]
    assert float(sens[known].mean()) == pytest.approx(np.sqrt(2 / np.pi), rel=0.03)


def test_attention_maps_reproduce_the_fused_attention(four_items):  # noqa: F811
    torch.manual_seed(0)
    module = module_for("xrd_transformer")
    batch = batch_of(module, four_items)
    maps = attention_maps(module, batch)
    assert len(maps) == len(module.net.blocks)
    pad = batch["pad_mask"]
    for w in maps:
        assert torch.allclose(
            w.sum(-1)[pad[:, None, :].expand_as(w[..., 0])], torch.ones(1), atol=1e-5
        )
        assert float(w[~pad[:, None, None, :].expand_as(w)].abs().max()) == 0.0
    # weights @ V equals the fused kernel's output of the first block
    net, block = module.net, module.net.blocks[0]
    s = 0.5 / batch["d"].clamp_min(1e-3)
    x = (
        net.amplitude((batch["value"] * batch["known"])[..., None])
        + net.embed_hkl(batch["hkl"])
        + net.known_embedding(batch["known"].long())
        + net.resolution(s[..., None])
    )
    b, n, dim = x.shape
    q, k, v = (
        block.qkv(block.norm1(x))
        .view(b, n, 3, block.heads, dim // block.heads)
        .permute(2, 0, 3, 1, 4)
    )
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=pad[:, None, None, :])
    assert torch.allclose(maps[0] @ v, fused, atol=1e-5)


def test_absences_of_p21_are_0k0_with_k_odd():
    hkl, d = absent_reflections((6.0, 7.0, 8.0, 90.0, 100.0, 90.0), "P 1 21 1", 1.0)
    assert len(hkl) and (hkl[:, 0] == 0).all() and (hkl[:, 2] == 0).all()
    assert set(np.abs(hkl[:, 1]).tolist()) == {1, 3, 5, 7}  # d(0k0) = b / k ≥ 1 Å
    assert (d >= 1.0).all()


def test_attention_statistics_per_block(four_items):  # noqa: F811
    torch.manual_seed(0)
    module = module_for("xrd_transformer")
    item = four_items[1][0]
    stats = attention_statistics(module, item, (6.0, 6.0, 6.0, 90.0, 95.0, 90.0), "P 1 21 1")
    assert stats["absent"] > 0 and stats["ordinary"] == len(item["hkl"])
    assert len(stats["absent_over_ordinary"]) == len(module.net.blocks)
    assert all(r > 0 for r in stats["absent_over_ordinary"])


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained_html(run_dir, tmp_path):  # noqa: F811
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
