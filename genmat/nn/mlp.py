"""A residual MLP denoiser for vector samples (recipes: a handful of processing numbers).

Same call signature as the U-Net, ``F(x, t, values, mask)``, so the preconditioning
wrapper, the losses and the samplers of :mod:`genmat.diffusion` take it unchanged.
"""

from __future__ import annotations

from pydantic import Field

import torch
from torch import nn

from genmat.config import Config
from genmat.nn.embeddings import ConditionEmbedding, TimeEmbedding


class MLPConfig(Config):
    dim: int = Field(3, ge=1)  # sample size D (a recipe's fields)
    n_condition_fields: int = Field(2, ge=0)
    width: int = Field(256, ge=1)
    depth: int = Field(4, ge=1)  # residual blocks
    embed_dim: int = Field(128, ge=1)


class _Block(nn.Module):
    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(embed_dim, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb).chunk(2, dim=-1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class MLPDenoiserNet(nn.Module):
    """(B, D) samples, (B,) times, (B, F) condition values and masks → (B, D)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.time = TimeEmbedding(c.embed_dim)
        self.cond = ConditionEmbedding(c.n_condition_fields, c.embed_dim)
        self.inp = nn.Linear(c.dim, c.width)
        self.blocks = nn.ModuleList(_Block(c.width, c.embed_dim) for _ in range(c.depth))
        self.out = nn.Sequential(nn.LayerNorm(c.width), nn.SiLU(), nn.Linear(c.width, c.dim))

    def forward(self, x, t, values=None, mask=None) -> torch.Tensor:
        b = x.shape[0]
        if values is None:
            values = torch.zeros(b, self.config.n_condition_fields, device=x.device)
            mask = torch.zeros_like(values)
        emb = torch.nn.functional.silu(self.time(t.expand(b) if t.dim() == 0 else t) + self.cond(values, mask))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)
