"""Resolution-extension metrics (one definition each; design: "Metrics").

All take tensors whose first dimension is the batch and masks of the same shape (grid or padded
reflection lists). Amplitudes are the normalised ones the model sees.

- R = Σ | |F_pred| − |F_true| | / Σ |F_true| over the masked reflections (``target`` for the
  headline R, ``known | target`` for R_all, as the thesis counted the known ones).
- MSE over the masked reflections.
- 3D SSIM (Gaussian window σ = 1.5 voxels, size ≤ 7, constants of Wang et al. 2004, data range
  = the true grid's maximum) between the full predicted and true grids.
- R per resolution shell: shells of equal volume in reciprocal space (equal steps in 1/d³).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SHELL_SLACK",
    "mse",
    "pearson",
    "r_factor",
    "r_factor_per_sample",
    "r_per_shell",
    "r_terms",
    "relative_mse",
    "relative_se",
    "shell_edges",
    "shell_masks",
    "ssim3d",
]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


#: Relative slack on resolution-shell edges (a reflection on an edge belongs to the finer shell).
SHELL_SLACK = 1e-6


def r_terms(pred: Any, true: Any, mask: Any) -> tuple[Any, Any]:
    """(Σ|pred − true|, Σ|true|) over ``mask``: the numerator and denominator of R, summed so
    that batches and structures pool (torch tensors or numpy arrays)."""
    m = mask.to(pred.dtype) if isinstance(mask, torch.Tensor) else np.asarray(mask, float)
    return (abs(pred - true) * m).sum(), (abs(true) * m).sum()


def r_factor(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ|pred − true| / Σ|true| over ``mask`` (all structures pooled); NaN when empty."""
    num, den = r_terms(pred, true, mask)
    return num / den


def r_factor_per_sample(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R of each structure in the batch: (B,)."""
    m = _flat(mask).to(pred.dtype)
    return (_flat(pred - true).abs() * m).sum(1) / (_flat(true).abs() * m).sum(1)


def mse(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over ``mask``."""
    m = mask.to(pred.dtype)
    return ((pred - true) ** 2 * m).sum() / m.sum().clamp_min(1)


def relative_mse(pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over structures (the first axis) of Σ(pred − true)² / Σ true² over ``mask``;
    structures with no masked value, or only zeros there, are left out (0 when none is left)."""
    ratio, ok = relative_se(pred, true, mask)
    return ratio.sum() / ok.sum().clamp_min(1)


def relative_se(
    pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per structure: Σ(pred − true)² / Σ true² over ``mask`` (0 where Σ true² = 0) and
    whether Σ true² > 0 there, both (B,)."""
    m, t = _flat(mask.to(pred.dtype)), _flat(true)
    num = ((_flat(pred) - t) ** 2 * m).sum(1)
    den = (t**2 * m).sum(1)
    ok = den > 0
    return torch.where(ok, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0), ok


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim3d(
    pred: torch.Tensor, true: torch.Tensor, window: int = 7, sigma: float = 1.5
) -> torch.Tensor:
    """Mean 3D SSIM of (B, 1, H, K, L) grids, per structure: (B,).

    Gaussian-weighted local statistics ('valid' windows, size shrunk to the smallest grid edge),
    C1 = (0.01 R)², C2 = (0.03 R)² with R the true grid's maximum per structure.
    """
    size = min(window, *pred.shape[-3:])
    g = _gaussian_window(size, sigma, pred.dtype).to(pred.device)

    def blur(x: torch.Tensor) -> torch.Tensor:
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = size
            x = F.conv3d(x, g.view(shape))
        return x

    rng = _flat(true).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1, 1)
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    mu_p, mu_t = blur(pred), blur(true)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(true * true) - mu_t**2
    cov = blur(pred * true) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return _flat(s).mean(1)


def shell_edges(d_high: float, d_low: float, n_shells: int) -> list[float]:
    """d (Å) at the boundaries of ``n_shells`` equal-volume shells from d_low down to d_high."""
    lo, hi = 1 / d_low**3, 1 / d_high**3
    return [1 / math.cbrt(lo + (hi - lo) * i / n_shells) for i in range(n_shells + 1)]


def shell_masks(
    mask: torch.Tensor, d: torch.Tensor, edges: list[float]
) -> Iterator[tuple[float, float, torch.Tensor]]:
    """(d_upper, d_lower, ``mask`` restricted to d_lower ≤ d < d_upper) for the shells between
    consecutive ``edges`` (Å, descending), edges compared with a relative tolerance of
    :data:`SHELL_SLACK`."""
    for upper, lower in itertools.pairwise(edges):
        yield (
            upper,
            lower,
            mask & (d >= lower * (1 - SHELL_SLACK)) & (d < upper * (1 - SHELL_SLACK)),
        )


def r_per_shell(
    pred: torch.Tensor, true: torch.Tensor, mask: torch.Tensor, d: torch.Tensor, edges: list[float]
) -> list[tuple[float, float, float]]:
    """[(d_upper, d_lower, R)] for shells d_lower ≤ d < d_upper (Å) between consecutive
    ``edges`` (descending), over ``mask``."""
    return [
        (upper, lower, float(r_factor(pred, true, shell)))
        for upper, lower, shell in shell_masks(mask, d, edges)
    ]


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps (B, …) → (B,)."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
