"""Interpretability (xtalforge.analysis): Grad-CAM, sensitivity, transformer attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.builders import TASK, TINY, batch_of, module_for
from xtalforge.analysis import attention_maps, grad_cam, sensitivity_map
from xtalforge.analysis.attention import absent_reflections, attention_statistics
from xtalforge.analysis.gradcam import conv_layers
from xtalforge.errors import XtalforgeError


def test_grad_cam_is_a_normalised_map_over_the_grid(four_items):
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


def test_attention_maps_reproduce_the_fused_attention(four_items):
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


def test_attention_statistics_per_block(four_items):
    torch.manual_seed(0)
    module = module_for("xrd_transformer")
    item = four_items[1][0]
    stats = attention_statistics(module, item, (6.0, 6.0, 6.0, 90.0, 95.0, 90.0), "P 1 21 1")
    assert stats["absent"] > 0 and stats["ordinary"] == len(item["hkl"])
    assert len(stats["absent_over_ordinary"]) == len(module.net.blocks)
    assert all(r > 0 for r in stats["absent_over_ordinary"])
