"""The ``self_attention`` ablation block: a transformer encoder over the feature map's tokens.

Stands in for HandOccNet's FIT in the paper's "Self-Attention (4.6M)" row: learned positional
embeddings (one per token, so tied to the input size like the SSCA channel branch), five pre-norm
blocks of 8-head self-attention and an MLP; about 4.6M parameters at 256 input.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SelfAttentionBlock(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): tokens + positional embedding through ``depth`` transformer blocks."""

    def __init__(self, dim: int = 256, size: int = 32, depth: int = 5, heads: int = 8, mlp_hidden: int = 1176) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, size * size, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embed
        for blk in self.blocks:
            tokens = blk(tokens)
        return x + self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)
