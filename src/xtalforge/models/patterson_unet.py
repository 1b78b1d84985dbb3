"""PattersonUNet: super-resolution of periodic maps (Patterson functions) with a 3D U-Net whose
convolutions wrap around the cell (circular padding), so voxels at the cell's faces see their
true neighbours on the opposite face.

Input (B, 1, *low) — the low-resolution map on its coarse grid; it is upsampled by periodic
trilinear interpolation to ``out_shape`` (the high-resolution grid, e.g. 2× per axis), and the
U-Net predicts a correction added to it: output (B, 1, *out_shape).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CircularDoubleConv", "PattersonUNet", "periodic_upsample"]


def periodic_upsample(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Trilinear interpolation of a periodic map (B, C, n1, n2, n3) sampled at fractions i/n
    onto the grid j/m of ``shape``, wrapping around the cell (separable, exact linear weights)."""
    out = x
    for axis, m in enumerate(shape):
        dim = axis + 2
        n = x.shape[dim]
        t = torch.arange(m, dtype=torch.float64) * n / m
        i0 = torch.floor(t).long()
        w = (t - i0).to(x.dtype).to(x.device)
        i1 = (i0 + 1) % n
        view = [1] * out.ndim
        view[dim] = m
        w = w.view(view)
        out = (
            out.index_select(dim, i0.to(x.device)) * (1 - w)
            + out.index_select(dim, i1.to(x.device)) * w
        )
    return out


class CircularDoubleConv(nn.Sequential):
    """(k³ circular conv → BatchNorm → GELU) × 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        pad = kernel // 2
        super().__init__(
            nn.Conv3d(c_in, c_out, kernel, padding=pad, padding_mode="circular", bias=False),
            nn.BatchNorm3d(c_out),
            nn.GELU(),
            nn.Conv3d(c_out, c_out, kernel, padding=pad, padding_mode="circular", bias=False),
            nn.BatchNorm3d(c_out),
            nn.GELU(),
        )


class PattersonUNet(nn.Module):
    """Two-level circular U-Net (``channels`` = level 1, level 2, bottleneck) on the upsampled
    map, residual: output = upsampled input + U-Net(upsampled input). Grid edges must be even
    (pooling by 2 twice keeps the cell's periodicity when they are multiples of 4)."""

    input_mode = "map"
    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"channels": (8, 16, 32)},
        "thesis": {"channels": (64, 128, 256)},
    }

    def __init__(
        self,
        out_shape: tuple[int, int, int] = (24, 24, 24),
        channels: tuple[int, int, int] = (64, 128, 256),
        kernel: int = 3,
    ) -> None:
        super().__init__()
        if any(n % 4 for n in out_shape):
            raise ValueError(
                f"out_shape {tuple(out_shape)} must be multiples of 4 (two periodic poolings)"
            )
        a, b, c = (int(n) for n in out_shape)
        self.out_shape = (a, b, c)
        c1, c2, c3 = channels
        self.enc1 = CircularDoubleConv(1, c1, kernel)
        self.enc2 = CircularDoubleConv(c1, c2, kernel)
        self.bottleneck = CircularDoubleConv(c2, c3, kernel)
        self.dec2 = CircularDoubleConv(c3 + c2, c2, kernel)
        self.dec1 = CircularDoubleConv(c2 + c1, c1, kernel)
        self.head = nn.Conv3d(c1, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)  # type: ignore[arg-type]  # Conv3d has a bias here

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        up = periodic_upsample(low, self.out_shape)
        e1 = self.enc1(up)
        e2 = self.enc2(F.max_pool3d(e1, 2))
        b = self.bottleneck(F.max_pool3d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(b, scale_factor=2, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))
        return up + self.head(d1)
