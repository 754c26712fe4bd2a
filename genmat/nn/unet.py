"""One U-Net for 1-D spectra and 2-D micrographs (``spatial_dims`` picks the convs).

Time and condition embeddings are summed and injected into every residual block
by adaptive group normalisation (FiLM: ``norm(h) * (1 + scale) + shift``).
Circular padding keeps periodic micrographs periodic. The network knows nothing
of noise schedules: it maps ``(x, t, values, mask)`` to a tensor shaped like x.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from typing import Annotated

from pydantic import Field, model_validator

from genmat.config import Config
from genmat.errors import InputError
from genmat.nn.embeddings import ConditionEmbedding, TimeEmbedding

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


class UNetConfig(Config):
    spatial_dims: int = 2  # 1 for spectra, 2 for micrographs
    in_channels: int = Field(1, ge=1)
    base_channels: int = Field(32, ge=1)
    # one level per entry; each level halves the size
    channel_mults: tuple[Annotated[int, Field(ge=1)], ...] = Field((1, 2, 2), min_length=1)
    blocks_per_level: int = Field(1, ge=1)
    n_condition_fields: int = Field(0, ge=0)  # F; 0 for an unconditional net
    embed_dim: int = Field(128, ge=1)
    padding_mode: str = "circular"  # "circular" for periodic micrographs, "zeros" for spectra
    dropout: float = Field(0.0, ge=0, lt=1)
    groups: int = Field(8, ge=1)
    # Fixed sin/cos features of the absolute position (octaves 1, 2, 4, … per axis) fed to the
    # stem: spectra need to know *where* on the axis they are (a peak's position is physics);
    # periodic micrographs do not (0 keeps the net translation-equivariant).
    position_features: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self):
        if self.spatial_dims not in _CONV:
            raise InputError(f"spatial_dims = {self.spatial_dims} is not supported; allowed: 1 or 2",
                             field="spatial_dims", value=self.spatial_dims, allowed="1 or 2")
        if self.padding_mode not in ("circular", "zeros", "reflect", "replicate"):
            raise InputError(f"padding_mode = {self.padding_mode!r}; allowed: circular, zeros, reflect, replicate",
                             field="padding_mode", value=self.padding_mode,
                             allowed="circular, zeros, reflect, replicate")
        return self

    @property
    def size_multiple(self) -> int:
        """Spatial sizes must be divisible by this."""
        return 2 ** (len(self.channel_mults) - 1)


def _conv(cfg: UNetConfig, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Module:
    return _CONV[cfg.spatial_dims](
        c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode=cfg.padding_mode
    )


def position_features(x: torch.Tensor, n_octaves: int) -> torch.Tensor:
    """(B, 2·P·D, *S) fixed features sin/cos(π 2^k u), k < P, of each axis coordinate u ∈ [0, 1]."""
    spatial = x.shape[2:]
    freqs = math.pi * 2.0 ** torch.arange(n_octaves, device=x.device, dtype=x.dtype)
    feats = []
    for axis, n in enumerate(spatial):
        u = torch.linspace(0, 1, n, device=x.device, dtype=x.dtype)
        ang = freqs[:, None] * u[None, :]  # (P, n)
        shape = [1] * len(spatial)
        shape[axis] = n
        for f in (torch.sin(ang), torch.cos(ang)):
            feats.append(f.reshape(len(freqs), *shape).expand(len(freqs), *spatial))
    return torch.cat(feats).unsqueeze(0).expand(x.shape[0], -1, *spatial)


class ResBlock(nn.Module):
    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(cfg.groups, c_in), c_in)
        self.conv1 = _conv(cfg, c_in, c_out)
        self.film = nn.Linear(cfg.embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(cfg.groups, c_out), c_out)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = _conv(cfg, c_out, c_out)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = _CONV[cfg.spatial_dims](c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).unsqueeze(-1).chunk(2, dim=1)
        while scale.dim() < h.dim():
            scale, shift = scale.unsqueeze(-1), shift.unsqueeze(-1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class DownPath(nn.Module):
    """Position features → stem → one residual block and a stride-2 convolution per level
    (none after the last) → GroupNorm + SiLU: the encoder half shared by the VAE encoder
    and the noisy regressor. ``forward(x, emb)`` → features ``(B, widths[-1], *S/2^(L−1))``."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.stem = _conv(cfg, cfg.in_channels + 2 * cfg.position_features * cfg.spatial_dims, widths[0])
        self.blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        c = widths[0]
        for level, w in enumerate(widths):
            self.blocks.append(ResBlock(cfg, c, w))
            c = w
            self.downs.append(nn.Identity() if level == len(widths) - 1 else _conv(cfg, c, c, stride=2))
        self.norm = nn.GroupNorm(min(cfg.groups, c), c)
        self.out_channels = c

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.cfg.position_features:
            x = torch.cat([x, position_features(x, self.cfg.position_features)], dim=1)
        h = self.stem(x)
        for block, down in zip(self.blocks, self.downs):
            h = down(block(h, emb))
        return F.silu(self.norm(h))


class UNet(nn.Module):
    """Conditional U-Net. ``forward(x (B, C, *S), t (B,), values (B, F), mask (B, F))``."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        self.time_embed = TimeEmbedding(cfg.embed_dim)
        self.cond_embed = (
            ConditionEmbedding(cfg.n_condition_fields, cfg.embed_dim) if cfg.n_condition_fields else None
        )
        self.stem = _conv(cfg, cfg.in_channels + 2 * cfg.position_features * cfg.spatial_dims, widths[0])
        self.down_blocks, self.downsamples = nn.ModuleList(), nn.ModuleList()
        c, skips = widths[0], []
        for level, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level):
                blocks.append(ResBlock(cfg, c, w))
                c = w
            self.down_blocks.append(blocks)
            skips.append(c)
            last = level == len(widths) - 1
            self.downsamples.append(nn.Identity() if last else _conv(cfg, c, c, stride=2))
        self.mid = nn.ModuleList([ResBlock(cfg, c, c), ResBlock(cfg, c, c)])
        self.up_blocks, self.upsamples = nn.ModuleList(), nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for i in range(cfg.blocks_per_level):
                blocks.append(ResBlock(cfg, c + (skips[level] if i == 0 else 0), w))
                c = w
            self.up_blocks.append(blocks)
            self.upsamples.append(nn.Identity() if level == 0 else _conv(cfg, c, c))
        self.head_norm = nn.GroupNorm(min(cfg.groups, c), c)
        self.head = _conv(cfg, c, cfg.in_channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.dim() != self.cfg.spatial_dims + 2:
            raise InputError(
                f"x has shape {tuple(x.shape)}; expected (B, C, *spatial) with {self.cfg.spatial_dims} spatial dims"
            )
        if any(s % self.cfg.size_multiple for s in x.shape[2:]):
            raise InputError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by {self.cfg.size_multiple}"
            )
        emb = self.time_embed(t.expand(x.shape[0]) if t.dim() == 0 else t)
        if self.cond_embed is not None:
            if values is None:
                values = mask = x.new_zeros(x.shape[0], self.cfg.n_condition_fields)
            emb = emb + self.cond_embed(values, mask if mask is not None else torch.ones_like(values))
        emb = F.silu(emb)
        if self.cfg.position_features:
            x = torch.cat([x, position_features(x, self.cfg.position_features)], dim=1)
        h, skips = self.stem(x), []
        for blocks, down in zip(self.down_blocks, self.downsamples):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for blocks, up in zip(self.up_blocks, self.upsamples):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.head(F.silu(self.head_norm(h)))
