"""UNet3D: the thesis's baseline for resolution extension on the hkl-grid tensor.

Two levels (c1 → c2 channels), a bottleneck (c3), each a double 3×3×3 convolution + BatchNorm +
GELU; max-pooling down, trilinear upsampling to the skip's size (grids have odd sizes), skip
concatenation, a 1×1×1 head. Input (B, C_in, H, K, L), output (B, 1, H, K, L).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DoubleConv", "UNet3D"]


class DoubleConv(nn.Sequential):
    """(3×3×3 conv → BatchNorm → GELU) × 2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
            nn.GELU(),
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
            nn.GELU(),
        )


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Trilinear upsampling of ``x`` to the spatial size of ``like``."""
    return F.interpolate(x, size=like.shape[-3:], mode="trilinear", align_corners=False)


class UNet3D(nn.Module):
    """Two-level 3D U-Net. ``channels`` = (level 1, level 2, bottleneck); ``in_channels`` 3:
    known amplitudes, known mask, resolution d_high/d (see ``train.resolution.grid_channels``)."""

    input_mode = "grid"
    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"channels": (16, 32, 64)},
        "thesis": {"channels": (64, 128, 256)},
    }

    def __init__(
        self,
        in_channels: int = 3,
        channels: tuple[int, int, int] = (64, 128, 256),
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.enc1 = self.block(in_channels, c1)
        self.enc2 = self.block(c1, c2)
        self.bottleneck = self.block(c2, c3)
        self.dec2 = self.block(c3 + c2, c2)
        self.dec1 = self.block(c2 + c1, c1)
        self.head = nn.Conv3d(c1, out_channels, 1)
        self.pool = nn.MaxPool3d(2, ceil_mode=True)

    def block(self, c_in: int, c_out: int) -> nn.Module:
        return DoubleConv(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottleneck(self.pool(e2))
        d2 = self.dec2(torch.cat([upsample_to(b, e2), e2], dim=1))
        d1 = self.dec1(torch.cat([upsample_to(d2, e1), e1], dim=1))
        return self.head(d1)
