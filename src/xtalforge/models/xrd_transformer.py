"""XRD-Transformer: reflections as tokens.

The sequence holds only the reflections inside the resolution sphere (known and to-predict), not
every voxel of the hkl grid. Token embedding = amplitude projection (known amplitude, 0 for a
reflection to predict) + hkl embedding (per-axis one-hot → linear to embed_dim/3 each,
concatenated; or one linear layer on hkl / h_max) + a learned known/unknown embedding + a
projection of the resolution s = 1/(2d) (Å⁻¹). Then pre-LayerNorm blocks of multi-head attention
(``torch.nn.functional.scaled_dot_product_attention``, so flash/memory-efficient kernels on a
GPU) and an MLP, a final LayerNorm and a linear head giving one amplitude per token.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from xtalforge.errors import XtalforgeError

__all__ = ["XRDTransformer"]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + MHA(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        b, n, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, dim // self.heads) \
            .permute(2, 0, 3, 1, 4)
        mask = None if attend is None else attend[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, dim))
        return x + self.mlp(self.norm2(x))

    def attention(self, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        """The block's attention weights (B, heads, N queries, N keys), rows summing to 1 —
        computed explicitly (the forward pass uses the fused kernel, which does not return
        them)."""
        b, n, dim = x.shape
        q, k, _ = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, dim // self.heads) \
            .permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(dim // self.heads)
        if attend is not None:
            logits = logits.masked_fill(~attend[:, None, None, :], float("-inf"))
        return logits.softmax(dim=-1)


class XRDTransformer(nn.Module):
    """Transformer over reflection tokens.

    ``forward(hkl (B, N, 3) int, value (B, N), known (B, N) bool, d (B, N) Å,
    pad_mask (B, N) bool: True at real tokens)`` → (B, N) amplitudes.
    """

    input_mode = "list"
    SIZES: ClassVar[dict[str, dict]] = {"small": {"embed_dim": 48, "heads": 4, "depth": 5},
             "thesis": {"embed_dim": 192, "heads": 6, "depth": 5}}

    def __init__(self, embed_dim: int = 192, heads: int = 6, depth: int = 5,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, h_max: int = 64,
                 hkl_embedding: Literal["onehot", "linear"] = "onehot") -> None:
        super().__init__()
        if hkl_embedding == "onehot" and embed_dim % 3:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by 3 for the per-axis "
                             "one-hot hkl embedding")
        self.h_max, self.hkl_embedding = h_max, hkl_embedding
        self.amplitude = nn.Linear(1, embed_dim)
        if hkl_embedding == "onehot":
            # one-hot → linear without bias is exactly an embedding lookup
            self.axes = nn.ModuleList(nn.Embedding(2 * h_max + 1, embed_dim // 3)
                                      for _ in range(3))
        else:
            self.hkl_linear = nn.Linear(3, embed_dim)
        self.known_embedding = nn.Embedding(2, embed_dim)
        self.resolution = nn.Linear(1, embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, heads, mlp_ratio, dropout)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 1)

    def embed_hkl(self, hkl: torch.Tensor) -> torch.Tensor:
        if self.hkl_embedding == "linear":
            return self.hkl_linear(hkl.float() / self.h_max)
        if int(hkl.abs().max()) > self.h_max:
            raise XtalforgeError(f"Miller index {int(hkl.abs().max())} exceeds the model's h_max "
                             f"{self.h_max}: the data reach finer resolution or larger cells "
                             "than the model was built for")
        idx = hkl.long() + self.h_max
        return torch.cat([emb(idx[..., i]) for i, emb in enumerate(self.axes)], dim=-1)

    def forward(self, hkl: torch.Tensor, value: torch.Tensor, known: torch.Tensor,
                d: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        s = 0.5 / d.clamp_min(1e-3)
        x = (self.amplitude((value * known)[..., None]) + self.embed_hkl(hkl)
             + self.known_embedding(known.long()) + self.resolution(s[..., None]))
        for block in self.blocks:
            x = block(x, pad_mask)
        return self.head(self.norm(x))[..., 0]

    def attention_maps(self, hkl: torch.Tensor, value: torch.Tensor, known: torch.Tensor,
                       d: torch.Tensor, pad_mask: torch.Tensor | None = None
                       ) -> list[torch.Tensor]:
        """Attention weights of every block, (B, heads, N, N) each, for the same inputs as
        :meth:`forward`."""
        s = 0.5 / d.clamp_min(1e-3)
        x = (self.amplitude((value * known)[..., None]) + self.embed_hkl(hkl)
             + self.known_embedding(known.long()) + self.resolution(s[..., None]))
        maps = []
        for block in self.blocks:
            maps.append(block.attention(x, pad_mask))
            x = block(x, pad_mask)
        return maps
