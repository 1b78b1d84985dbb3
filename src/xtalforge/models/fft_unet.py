"""FFT-UNet: the UNet3D skeleton with residual Fourier blocks.

Each double convolution gets a parallel spectral path (as in fast Fourier convolutions): the real
FFT of the feature maps, its real and imaginary parts stacked as channels (so phase information is
kept), 1×1×1 convolutions with GELU on the spectrum, the inverse FFT back to the grid's size; the
result is added to the convolution path. The spectral path sees the whole grid at once, which a
3×3×3 stack only reaches after many layers.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from xtalforge.models.unet3d import DoubleConv, UNet3D

__all__ = ["FFTUNet", "FourierUnit"]


class FourierUnit(nn.Module):
    """rfftn → 1×1×1 conv on (real, imag) channels → GELU → 1×1×1 conv → irfftn."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.Conv3d(2 * c_in, 2 * c_out, 1), nn.GELU(), nn.Conv3d(2 * c_out, 2 * c_out, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-3:]
        spec = torch.fft.rfftn(x.float(), dim=(-3, -2, -1), norm="ortho")
        y = self.mix(torch.cat([spec.real, spec.imag], dim=1))
        re, im = y.chunk(2, dim=1)
        out = torch.fft.irfftn(torch.complex(re, im), s=size, dim=(-3, -2, -1), norm="ortho")
        return out.to(x.dtype)


class FourierBlock(nn.Module):
    """Double convolution plus a residual spectral path."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = DoubleConv(c_in, c_out)
        self.fourier = FourierUnit(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.fourier(x)


class FFTUNet(UNet3D):
    """UNet3D whose blocks are :class:`FourierBlock` s."""

    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"channels": (16, 32, 64)},
        "thesis": {"channels": (64, 128, 256)},
    }

    def block(self, c_in: int, c_out: int) -> nn.Module:
        return FourierBlock(c_in, c_out)
