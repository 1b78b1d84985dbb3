"""PhaseNet: direct phase prediction for centrosymmetric structures, after PhAI (Larsen et al.,
Science 2024).

Input (B, 3, H, K, L) on the hkl grid: |E| (0 at absent voxels), the current phase estimate as
a sign expectation in [−1, 1] (0 = unknown), and the mask of present reflections. A 3D
convolutional stem and residual blocks mix neighbouring reflections; the grid is cut into
``patch``³ tokens (zero-padded to a multiple) that an MLP-mixer head mixes globally (token MLPs
across all tokens, channel MLPs per token); a linear layer unpatches each token back to its
voxels. Output (B, 1, H, K, L): the logit of sign +1 (phase 0) at every voxel.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MixerBlock", "PhaseNet"]


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(c, c, 3, padding=1),
            nn.GroupNorm(1, c),
            nn.GELU(),
            nn.Conv3d(c, c, 3, padding=1),
            nn.GroupNorm(1, c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.body(x))


class MixerBlock(nn.Module):
    """x + TokenMLP(LN(x))ᵀ, then + ChannelMLP(LN(x)) on (B, tokens, dim)."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tokens = nn.Sequential(
            nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens)
        )
        self.channels = nn.Sequential(
            nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channels(self.norm2(x))


class PhaseNet(nn.Module):
    """Conv stem + ``res_blocks`` residual blocks (``channels``), ``patch``³ tokens of width
    ``dim``, ``mixer_blocks`` mixer blocks, per-voxel sign logits. ``grid_shape``: the hkl grid
    (fixed: the token MLPs need the token count)."""

    input_mode = "phase"
    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"channels": 32, "res_blocks": 2, "dim": 128, "mixer_blocks": 2},
        "thesis": {"channels": 64, "res_blocks": 6, "dim": 512, "mixer_blocks": 8},
    }

    def __init__(
        self,
        grid_shape: tuple[int, int, int] = (13, 7, 7),
        channels: int = 64,
        res_blocks: int = 4,
        patch: int = 2,
        dim: int = 256,
        mixer_blocks: int = 4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.patch = patch
        self.padded = tuple(patch * math.ceil(n / patch) for n in self.grid_shape)
        n_tokens = math.prod(n // patch for n in self.padded)
        self.stem = nn.Sequential(nn.Conv3d(in_channels, channels, 3, padding=1), nn.GELU())
        self.res = nn.Sequential(*[_ResBlock(channels) for _ in range(res_blocks)])
        self.embed = nn.Conv3d(channels, dim, patch, stride=patch)
        self.mixer = nn.Sequential(
            *[MixerBlock(n_tokens, dim, 2 * n_tokens, 2 * dim) for _ in range(mixer_blocks)]
        )
        self.norm = nn.LayerNorm(dim)
        self.unpatch = nn.Linear(dim, patch**3)
        self.local = nn.Conv3d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != self.grid_shape:
            raise ValueError(
                f"input grid {tuple(x.shape[-3:])} differs from the model's {self.grid_shape}"
            )
        feat = self.res(self.stem(x))
        pad = [
            v
            for n, m in zip(reversed(self.grid_shape), reversed(self.padded), strict=True)
            for v in (0, m - n)
        ]
        tok = self.embed(F.pad(feat, pad))  # (B, dim, h', k', l')
        b, _, *sub = tok.shape
        y = self.norm(self.mixer(tok.flatten(2).transpose(1, 2)))  # (B, T, dim)
        p = self.patch
        y = self.unpatch(y).view(b, *sub, p, p, p)  # (B, h', k', l', p, p, p)
        y = y.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, 1, *self.padded)
        n_h, n_k, n_l = self.grid_shape
        return y[:, :, :n_h, :n_k, :n_l] + self.local(feat)
