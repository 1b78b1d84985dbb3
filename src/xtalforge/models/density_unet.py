"""DensityUNet: Patterson map → electron density, after the CNN of "A deep learning solution for
crystallographic structure determination" (Pan et al., IUCrJ 2023).

A residual 3D U-Net on periodic maps: every convolution pads circularly (the cell wraps), the
stem, encoder and residual blocks use large kernels (7³ by default) so that a voxel sees the
Patterson vectors of a whole fragment, each residual block ends in squeeze-and-excitation
(channel gating from the global average), strided convolutions go down, nearest upsampling +
convolution goes up, skips are concatenated, and a 1×1×1 head with tanh gives the density on
[−1, 1] (``head="linear"``: no squashing, for maps on a σ scale such as the density-modification
task's). Input (B, C, n1, n2, n3): the Patterson map scaled to [−1, 1] (and, by default, the
same map moved by half a cell, where a centred fragment's self-vectors sit); output
(B, 1, n1, n2, n3).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DensityUNet", "ResidualSE", "SqueezeExcite"]


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(
        c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode="circular", bias=False
    )


class SqueezeExcite(nn.Module):
    """x · σ(W₂ GELU(W₁ mean(x))): per-channel gates from the global average."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(2, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3, 4)))[:, :, None, None, None]


class ResidualSE(nn.Module):
    """GELU(x + SE(BN(conv(GELU(BN(conv(x))))))) with k³ circular convolutions."""

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, kernel),
            nn.BatchNorm3d(channels),
            nn.GELU(),
            _conv(channels, channels, kernel),
            nn.BatchNorm3d(channels),
            SqueezeExcite(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.body(x))


class DensityUNet(nn.Module):
    """Two-level residual SE U-Net; ``channels`` = (level 1, level 2, bottleneck); ``kernel``
    for the stem, encoder and residual blocks (decoder mixing convolutions are 3³). Grid edges
    must be multiples of 4. ``head``: ``"tanh"`` (output on [−1, 1]) or ``"linear"``."""

    input_mode = "map"
    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"channels": (8, 16, 32), "blocks": 1},
        "thesis": {"channels": (32, 64, 128), "blocks": 2},
    }

    def __init__(
        self,
        channels: tuple[int, int, int] = (32, 64, 128),
        kernel: int = 7,
        blocks: int = 2,
        in_channels: int = 2,
        head: str = "tanh",
    ) -> None:
        super().__init__()
        if head not in ("tanh", "linear"):
            raise ValueError(f"head must be 'tanh' or 'linear', got {head!r}")
        self.squash = head == "tanh"
        c1, c2, c3 = channels

        def stage(c: int, k: int) -> nn.Sequential:
            return nn.Sequential(*[ResidualSE(c, k) for _ in range(blocks)])

        self.stem = nn.Sequential(_conv(in_channels, c1, kernel), nn.BatchNorm3d(c1), nn.GELU())
        self.enc1 = stage(c1, kernel)
        self.down1 = nn.Sequential(_conv(c1, c2, 3, 2), nn.BatchNorm3d(c2), nn.GELU())
        self.enc2 = stage(c2, kernel)
        self.down2 = nn.Sequential(_conv(c2, c3, 3, 2), nn.BatchNorm3d(c3), nn.GELU())
        self.bottleneck = stage(c3, min(kernel, 3))
        self.up2 = nn.Sequential(_conv(c3, c2, 3), nn.BatchNorm3d(c2), nn.GELU())
        self.dec2 = nn.Sequential(_conv(2 * c2, c2, 1), stage(c2, 3))
        self.up1 = nn.Sequential(_conv(c2, c1, 3), nn.BatchNorm3d(c1), nn.GELU())
        self.dec1 = nn.Sequential(_conv(2 * c1, c1, 1), stage(c1, 3))
        self.head = nn.Conv3d(c1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(n % 4 for n in x.shape[-3:]):
            raise ValueError(f"map grid {tuple(x.shape[-3:])} must be multiples of 4")
        e1 = self.enc1(self.stem(x))
        e2 = self.enc2(self.down1(e1))
        b = self.bottleneck(self.down2(e2))
        d2 = self.dec2(torch.cat([self.up2(F.interpolate(b, scale_factor=2)), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(F.interpolate(d2, scale_factor=2)), e1], 1))
        out = self.head(d1)
        return torch.tanh(out) if self.squash else out
