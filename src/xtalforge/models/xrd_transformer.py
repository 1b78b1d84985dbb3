"""XRD-Transformer: reflections as tokens.

The sequence holds only the reflections inside the resolution sphere (known and to-predict), not
every voxel of the hkl grid. Token embedding = amplitude projection (known amplitude, 0 for a
reflection to predict) + hkl embedding (per-axis one-hot → linear to embed_dim/3 each,
concatenated; or one linear layer on hkl / h_max) + a learned known/unknown embedding + a
projection of the resolution s = 1/(2d) (Å⁻¹). Then pre-LayerNorm blocks of multi-head attention
(``torch.nn.functional.scaled_dot_product_attention``, so flash/memory-efficient kernels on a
GPU) and an MLP, a final LayerNorm and a linear head giving one amplitude per token.

Two options beyond the thesis's design give the tokens a sense of where they are relative to
each other (both off by default, so the thesis presets are the thesis's model):

- ``neighbourhood=r``: each token's embedding also gets a linear projection of the known
  amplitudes (and the known mask) of the (2r+1)³ reflections around it, looked up in the
  batch's own reflections and their Friedel mates (|F(−h)| = |F(h)|) — a reciprocal-space patch
  embedding, the transformer's counterpart of a U-Net's first convolution.
- ``rope=True``: 3-D rotary position embedding of hkl in every attention block. Each pair of a
  head's query/key channels is rotated by the angle 2π h·x_j for a learned fractional position
  x_j, so the attention score of two reflections depends on h − h' through cos/sin 2π (h − h')·x_j
  — terms of the Patterson function at the vectors x_j. It acts on q and k before the fused
  attention kernel, so flash attention still applies.
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

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, dropout: float, rope: bool = False
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        head_dim = dim // heads
        if rope and head_dim % 2:
            raise ValueError(f"rope needs an even head dimension (embed_dim/heads = {head_dim})")
        # learned fractional positions x_j of the rotary pairs, one set per head
        self.rope = nn.Parameter(torch.rand(heads, head_dim // 2, 3) * 0.5) if rope else None
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, hkl: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k (B, heads, N, head_dim) with each channel pair rotated by 2π h·x_j."""
        if self.rope is None or hkl is None:
            return q, k
        angle = 2 * math.pi * torch.einsum("bnc,hjc->bhnj", hkl.to(q.dtype), self.rope)
        cos, sin = angle.cos(), angle.sin()

        def turn(t: torch.Tensor) -> torch.Tensor:
            a, b = t[..., 0::2], t[..., 1::2]
            return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)

        return turn(q), turn(k)

    def forward(
        self, x: torch.Tensor, attend: torch.Tensor | None, hkl: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, dim = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(b, n, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        q, k = self.rotate(q, k, hkl)
        mask = None if attend is None else attend[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, dim))
        return x + self.mlp(self.norm2(x))

    def attention(
        self, x: torch.Tensor, attend: torch.Tensor | None, hkl: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The block's attention weights (B, heads, N queries, N keys), rows summing to 1 —
        computed explicitly (the forward pass uses the fused kernel, which does not return
        them)."""
        b, n, dim = x.shape
        q, k, _ = (
            self.qkv(self.norm1(x))
            .view(b, n, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        q, k = self.rotate(q, k, hkl)
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
    SIZES: ClassVar[dict[str, dict]] = {
        "small": {"embed_dim": 48, "heads": 4, "depth": 5},
        "thesis": {"embed_dim": 192, "heads": 6, "depth": 5},
    }

    def __init__(
        self,
        embed_dim: int = 192,
        heads: int = 6,
        depth: int = 5,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        h_max: int = 64,
        hkl_embedding: Literal["onehot", "linear"] = "onehot",
        neighbourhood: int = 0,
        rope: bool = False,
    ) -> None:
        super().__init__()
        if neighbourhood < 0:
            raise ValueError(
                f"neighbourhood must be ≥ 0 (a radius in Miller-index steps), got {neighbourhood}"
            )
        if hkl_embedding == "onehot" and embed_dim % 3:
            raise ValueError(
                f"embed_dim {embed_dim} must be divisible by 3 for the per-axis "
                "one-hot hkl embedding"
            )
        self.h_max, self.hkl_embedding = h_max, hkl_embedding
        self.neighbourhood = neighbourhood
        self.amplitude = nn.Linear(1, embed_dim)
        if neighbourhood:
            self.patch = nn.Linear(2 * (2 * neighbourhood + 1) ** 3, embed_dim)
        if hkl_embedding == "onehot":
            # one-hot → linear without bias is exactly an embedding lookup
            self.axes = nn.ModuleList(nn.Embedding(2 * h_max + 1, embed_dim // 3) for _ in range(3))
        else:
            self.hkl_linear = nn.Linear(3, embed_dim)
        self.known_embedding = nn.Embedding(2, embed_dim)
        self.resolution = nn.Linear(1, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, heads, mlp_ratio, dropout, rope) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 1)

    def embed_hkl(self, hkl: torch.Tensor) -> torch.Tensor:
        if self.hkl_embedding == "linear":
            return self.hkl_linear(hkl.float() / self.h_max)
        if int(hkl.abs().max()) > self.h_max:
            raise XtalforgeError(
                f"Miller index {int(hkl.abs().max())} exceeds the model's h_max "
                f"{self.h_max}: the data reach finer resolution or larger cells "
                "than the model was built for"
            )
        idx = hkl.long() + self.h_max
        return torch.cat([emb(idx[..., i]) for i, emb in enumerate(self.axes)], dim=-1)

    def neighbours(
        self,
        hkl: torch.Tensor,
        value: torch.Tensor,
        known: torch.Tensor,
        pad_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, N, 2·(2r+1)³): the known amplitudes and the known mask at hkl + Δ for every
        Δ ∈ {−r … r}³, from the batch item's own reflections and their Friedel mates (0 where
        a neighbour is not among them)."""
        r = self.neighbourhood
        b, n, _ = hkl.shape
        real = known if pad_mask is None else known & pad_mask
        m = int(hkl.abs().max()) + r
        size = 2 * m + 1
        dummy = size**3  # padding and unknown tokens write here

        def flat(h: torch.Tensor) -> torch.Tensor:
            h = h.long() + m
            return (h[..., 0] * size + h[..., 1]) * size + h[..., 2]

        grid = value.new_zeros(b, 2, dummy + 1)
        amp, ones = value * real, real.to(value.dtype)
        dump = torch.full(real.shape, dummy, dtype=torch.int64, device=hkl.device)
        for sign in (1, -1):  # the reflection and its Friedel mate
            where = torch.where(real, flat(sign * hkl), dump)
            grid[:, 0].scatter_(1, where, amp)
            grid[:, 1].scatter_(1, where, ones)
        grid[:, :, dummy] = 0
        steps = torch.arange(-r, r + 1, device=hkl.device)
        delta = torch.cartesian_prod(steps, steps, steps)  # (K, 3)
        idx = flat(hkl[:, :, None, :] + delta).reshape(b, 1, -1).expand(b, 2, -1)
        patch = grid.gather(2, idx).view(b, 2, n, -1)
        return patch.permute(0, 2, 1, 3).reshape(b, n, -1)

    def embed(
        self,
        hkl: torch.Tensor,
        value: torch.Tensor,
        known: torch.Tensor,
        d: torch.Tensor,
        pad_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Token embeddings (B, N, embed_dim) before the first block."""
        s = 0.5 / d.clamp_min(1e-3)
        x = (
            self.amplitude((value * known)[..., None])
            + self.embed_hkl(hkl)
            + self.known_embedding(known.long())
            + self.resolution(s[..., None])
        )
        if self.neighbourhood:
            x = x + self.patch(self.neighbours(hkl, value, known, pad_mask))
        return x

    def forward(
        self,
        hkl: torch.Tensor,
        value: torch.Tensor,
        known: torch.Tensor,
        d: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.embed(hkl, value, known, d, pad_mask)
        for block in self.blocks:  # hkl rotates q and k only in blocks built with rope
            x = block(x, pad_mask, hkl)
        return self.head(self.norm(x))[..., 0]

    def attention_maps(
        self,
        hkl: torch.Tensor,
        value: torch.Tensor,
        known: torch.Tensor,
        d: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Attention weights of every block, (B, heads, N, N) each, for the same inputs as
        :meth:`forward`."""
        x = self.embed(hkl, value, known, d, pad_mask)
        maps = []
        for block in self.blocks:
            maps.append(block.attention(x, pad_mask, hkl))  # type: ignore[operator]
            x = block(x, pad_mask, hkl)
        return maps
