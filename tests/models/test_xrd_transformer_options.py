"""The reflection transformer's positional options against brute force and closed forms: the
neighbourhood patch is a dictionary lookup of the known amplitudes around each reflection (with
Friedel mates), and the rotary hkl embedding makes attention scores depend on h − h' only, as
cos 2π (h − h')·x for one channel pair. Overfitting, kept known amplitudes and padding are
tested with the other models in test_train.py (variant ``xrd_transformer+options``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from xtalforge.models import build_model
from xtalforge.models.xrd_transformer import Block
from xtalforge.tasks.resolution import collate_reflections


def brute_patch(
    hkl: torch.Tensor, value: torch.Tensor, known: torch.Tensor, j: int, r: int
) -> list[float]:
    """Known amplitudes at hkl[j] + Δ (Δ in {−r … r}³, l fastest) by dictionary lookup."""
    table = {}
    for h, v, k in zip(hkl.tolist(), value.tolist(), known.tolist(), strict=True):
        if k:
            table[tuple(h)] = v
            table[tuple(-x for x in h)] = v
    out = []
    for delta in itertools.product(range(-r, r + 1), repeat=3):
        out.append(
            table.get(tuple(a + b for a, b in zip(hkl[j].tolist(), delta, strict=True)), 0.0)
        )
    return out


@pytest.mark.parametrize("radius", [1, 2])
def test_neighbourhood_patch_is_a_lookup_of_known_amplitudes(radius, four_items):
    batch = collate_reflections(four_items[1])
    net = build_model("xrd_transformer", "small", h_max=10, neighbourhood=radius)
    patch = net.neighbours(batch["hkl"], batch["value"], batch["known"], batch["pad_mask"])
    k = (2 * radius + 1) ** 3
    assert patch.shape[-1] == 2 * k
    for b in range(len(four_items[1])):
        n = int(batch["pad_mask"][b].sum())
        hkl, value, known = batch["hkl"][b, :n], batch["value"][b, :n], batch["known"][b, :n]
        for j in range(0, n, max(1, n // 25)):
            expected = torch.tensor(brute_patch(hkl, value, known, j, radius))
            assert torch.allclose(patch[b, j, :k], expected), (b, j)
            known_mask = torch.tensor(
                [float(x) for x in brute_patch(hkl, torch.ones(n), known, j, radius)]
            )
            assert torch.equal(patch[b, j, k:], known_mask), (b, j)  # the known channel


def test_rope_scores_follow_cos_of_the_index_difference():
    """One head with one channel pair: q = k = (1, 0) gives the score cos 2π (h − h')·x."""
    block = Block(dim=2, heads=1, mlp_ratio=1.0, dropout=0.0, rope=True)
    x = torch.tensor([0.13, 0.31, 0.07])
    with torch.no_grad():
        block.rope.copy_(x.view(1, 1, 3))
    hkl = torch.tensor([[[0, 0, 0], [1, 2, 3], [-2, 1, 4], [3, -1, 0]]])
    q = torch.tensor([1.0, 0.0]).expand(1, 1, 4, 2)
    rq, rk = block.rotate(q, q, hkl)
    scores = rq[0, 0] @ rk[0, 0].T
    diff = hkl[0][:, None, :] - hkl[0][None, :, :]
    expected = torch.cos(2 * math.pi * (diff.float() @ x))
    assert torch.allclose(scores, expected, atol=1e-5)


def test_rope_attention_depends_only_on_index_differences():
    torch.manual_seed(0)
    block = Block(dim=48, heads=4, mlp_ratio=2.0, dropout=0.0, rope=True)
    x = torch.randn(2, 30, 48)
    hkl = torch.randint(-6, 7, (2, 30, 3))
    a = block.attention(x, None, hkl)
    b = block.attention(x, None, hkl + torch.tensor([3, -2, 5]))
    assert torch.allclose(a, b, atol=1e-5)
    hkl2 = hkl.clone()
    hkl2[:, 0] += 1  # one token moved: its scores change
    assert not torch.allclose(a, block.attention(x, None, hkl2), atol=1e-3)
    with pytest.raises(ValueError, match="even head dimension"):
        Block(dim=12, heads=4, mlp_ratio=1.0, dropout=0.0, rope=True)
