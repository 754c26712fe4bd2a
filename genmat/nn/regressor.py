"""A noise-aware property regressor: r(x_t, t) → mean and log-variance of each condition
field of a sample.

The U-Net's down path (residual blocks with FiLM on the time embedding), global average
pooling and a linear head. Trained on noisy samples x_t = α x0 + σ ε of the generator's
own path, it estimates E[c | x_t] and how uncertain that is at every noise level (a
Gaussian p(c | x_t)), which is what classifier guidance needs; at t = 0 it is a plain
property predictor for screening.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genmat.nn.embeddings import TimeEmbedding
from genmat.nn.unet import DownPath, UNetConfig


class NoisyRegressor(nn.Module):
    def __init__(self, cfg: UNetConfig, n_outputs: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimeEmbedding(cfg.embed_dim)
        self.down = DownPath(cfg)
        c = self.down.out_channels
        self.head = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, 2 * n_outputs))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance), each (B, n_outputs)."""
        emb = F.silu(self.time_embed(t.expand(x.shape[0]) if t.dim() == 0 else t))
        mean, logvar = self.head(self.down(x, emb).flatten(2).mean(-1)).chunk(2, dim=1)
        return mean, logvar.clamp(-12.0, 4.0)
