"""Batched 3-D real FFTs of torch tensors: pocketfft (:mod:`scipy.fft`) on the CPU, torch's
own FFT on other devices.

On one CPU core scipy's pocketfft transforms the small grids of charge flipping (10⁴–10⁶
points, float32) about 1.5× faster than ``torch.fft``, and it works on the tensors' memory
without a copy (``Tensor.numpy()`` / ``torch.from_numpy``). Threads follow torch's setting
(``torch.get_num_threads()``), so ``OMP_NUM_THREADS=1`` means one core for both.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import torch

__all__ = ["flip_density", "irfftn", "rfftn"]

_DIMS = (1, 2, 3)


def _on_cpu(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and not t.requires_grad


def irfftn(half: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Real (B, *shape) grids from (B, n0, n1, n2 // 2 + 1) half-grid coefficients (the
    inverse transform, normalised by 1/N like :func:`torch.fft.irfftn`)."""
    if _on_cpu(half):
        out = scipy.fft.irfftn(half.numpy(), s=shape, axes=_DIMS, workers=torch.get_num_threads())
        return torch.from_numpy(out)
    return torch.fft.irfftn(half, s=shape, dim=_DIMS)


def rfftn(grid: torch.Tensor) -> torch.Tensor:
    """Half-grid coefficients (B, n0, n1, n2 // 2 + 1) of real (B, n0, n1, n2) grids
    (unnormalised, like :func:`torch.fft.rfftn`)."""
    if _on_cpu(grid):
        out = scipy.fft.rfftn(grid.numpy(), axes=_DIMS, workers=torch.get_num_threads())
        return torch.from_numpy(out)
    return torch.fft.rfftn(grid, dim=_DIMS)


def flip_density(
    half: torch.Tensor, shape: tuple[int, int, int], delta: torch.Tensor
) -> torch.Tensor:
    """One charge-flipping map step: ρ = irfftn(``half``); ρ ← −ρ where ρ ≤ ``delta`` (per
    batch row, shape (B,)); the half-grid coefficients of the flipped ρ. On the CPU the flip
    happens in place in the transform's own output, as a product with ±1 (int8: a tenth of the
    time of a masked negation)."""
    rho = irfftn(half, shape)
    d = delta.view(-1, 1, 1, 1)
    if _on_cpu(rho):
        r = rho.numpy()
        keep = np.greater(r, d.numpy()).view(np.int8)
        r *= keep * np.int8(2) - np.int8(1)
    else:
        rho = torch.where(rho > d, rho, -rho)
    return rfftn(rho)
