"""Sensitivity maps: how much the output changes per voxel (or reflection) when the known
input amplitudes get Gaussian noise (σ = ``noise`` × their standard deviation)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["sensitivity_map"]


def sensitivity_map(
    module: Any, batch: dict[str, torch.Tensor], noise: float = 0.05, draws: int = 8, seed: int = 0
) -> torch.Tensor:
    """Mean |Δ output| / σ over ``draws`` noisy copies of the input, same shape as the output
    (grid: (B, 1, *grid); list: (B, N))."""
    gen = torch.Generator().manual_seed(seed)
    key = "input" if module.input_mode == "grid" else "value"
    known = batch["known"]
    base = batch[key]
    sigma = noise * float(base[known].std()) if bool(known.any()) else noise
    module.eval()
    with torch.no_grad():
        ref = module(batch)
        acc = torch.zeros_like(ref)
        for _ in range(draws):
            eps = torch.randn(base.shape, generator=gen) * sigma * known
            acc += (module({**batch, key: base + eps}) - ref).abs()
    return acc / (draws * sigma)
