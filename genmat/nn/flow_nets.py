"""A conditional normalizing flow for 1-D and 2-D samples (RealNVP / Glow-style).

x → z through ``levels`` stages; each stage squeezes space into channels ((C, H, W) →
(4C, H/2, W/2), or (C, L) → (2C, L/2)) and applies ``steps`` affine couplings. A coupling
splits the channels in halves (a, b), computes (log s, t) = NN(a, condition) with a small
FiLM-conditioned convolution net, and maps b → b · exp(log s) + t; the halves swap after
every coupling. log s = 2 tanh(raw / 2) keeps scales bounded. The last conv of each
coupling is zero-initialised, so the untrained flow is the identity. The Jacobian is
triangular: log |det ∂z/∂x| = Σ log s, and

    log p(x | c) = log N(z; 0, I) + Σ log s        (exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genmat.nn.embeddings import ConditionEmbedding
from genmat.nn.unet import UNetConfig, _conv


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) → (B, C·2^D, *S/2): each 2×…×2 block becomes channels."""
    if x.dim() == 3:
        b, c, n = x.shape
        return x.reshape(b, c, n // 2, 2).permute(0, 1, 3, 2).reshape(b, 2 * c, n // 2)
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`squeeze`."""
    if x.dim() == 3:
        b, c, n = x.shape
        return x.reshape(b, c // 2, 2, n).permute(0, 1, 3, 2).reshape(b, c // 2, 2 * n)
    b, c, h, w = x.shape
    return x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class Coupling(nn.Module):
    def __init__(self, cfg: UNetConfig, channels: int, hidden: int) -> None:
        super().__init__()
        self.na = channels // 2
        nb = channels - self.na
        self.conv_in = _conv(cfg, self.na, hidden)
        self.film = nn.Linear(cfg.embed_dim, 2 * hidden)
        self.conv_mid = _conv(cfg, hidden, hidden)
        self.conv_out = _conv(cfg, hidden, 2 * nb)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _scale_shift(self, a: torch.Tensor, emb: torch.Tensor):
        h = F.silu(self.conv_in(a))
        scale, shift = self.film(emb).chunk(2, dim=1)
        shape = (*scale.shape, *([1] * (a.dim() - 2)))
        h = F.silu(self.conv_mid(h * (1 + scale.reshape(shape)) + shift.reshape(shape)))
        raw_s, t = self.conv_out(h).chunk(2, dim=1)
        return 2 * torch.tanh(raw_s / 2), t

    def forward(self, x, emb):
        a, b = x[:, : self.na], x[:, self.na:]
        log_s, t = self._scale_shift(a, emb)
        return torch.cat([b * log_s.exp() + t, a], dim=1), log_s.flatten(1).sum(1)  # swap halves

    def inverse(self, y, emb):
        nb = y.shape[1] - self.na
        b, a = y[:, :nb], y[:, nb:]
        log_s, t = self._scale_shift(a, emb)
        return torch.cat([a, (b - t) * (-log_s).exp()], dim=1)


class ConditionalFlow(nn.Module):
    """``log_prob(x, values, mask)``, ``forward(x, …) → (z, log det)``, ``inverse(z, …) → x``."""

    def __init__(self, cfg: UNetConfig, levels: int = 2, steps: int = 4, hidden: int = 32) -> None:
        super().__init__()
        self.cfg, self.levels = cfg, levels
        self.cond_embed = ConditionEmbedding(cfg.n_condition_fields, cfg.embed_dim) if cfg.n_condition_fields else None
        c = cfg.in_channels
        self.stages = nn.ModuleList()
        for _ in range(levels):
            c *= 2 ** cfg.spatial_dims
            self.stages.append(nn.ModuleList(Coupling(cfg, c, hidden) for _ in range(steps)))

    def embed(self, x, values, mask) -> torch.Tensor:
        if self.cond_embed is None:
            return x.new_zeros(x.shape[0], self.cfg.embed_dim)
        if values is None:
            values = mask = x.new_zeros(x.shape[0], self.cfg.n_condition_fields)
        return F.silu(self.cond_embed(values, mask if mask is not None else torch.ones_like(values)))

    def forward(self, x, values=None, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x, values, mask)
        logdet = x.new_zeros(x.shape[0])
        for stage in self.stages:
            x = squeeze(x)
            for coupling in stage:
                x, ld = coupling(x, emb)
                logdet = logdet + ld
        return x, logdet

    def inverse(self, z, values=None, mask=None) -> torch.Tensor:
        emb = self.embed(z, values, mask)
        for stage in reversed(self.stages):
            for coupling in reversed(stage):
                z = coupling.inverse(z, emb)
            z = unsqueeze(z)
        return z

    def log_prob(self, x, values=None, mask=None) -> torch.Tensor:
        """Exact log p(x | c) per sample (nats)."""
        z, logdet = self(x, values, mask)
        d = z[0].numel()
        return -0.5 * z.flatten(1).square().sum(1) - 0.5 * d * math.log(2 * math.pi) + logdet
