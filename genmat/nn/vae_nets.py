"""Conditional VAE networks for 1-D and 2-D samples (the same blocks as the U-Net).

The encoder maps (x, condition) to the mean and log-variance of a *spatial* Gaussian
latent, ``(latent_channels, *S / 2^(L−1))`` for L levels, so the latent is also a small
image or spectrum that latent diffusion can run on. The decoder maps (z, condition) back.
Both are conditioned by FiLM on the masked condition embedding (no time input), so a
decoder serves any subset of condition fields, like the U-Net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genmat import parallel
from genmat.nn.embeddings import ConditionEmbedding
from genmat.nn.unet import DownPath, ResBlock, UNetConfig, _conv, position_features


class Conditioned(nn.Module):
    """Shared condition embedding (zeros when the net is unconditional)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cond_embed = ConditionEmbedding(cfg.n_condition_fields, cfg.embed_dim) if cfg.n_condition_fields else None

    def embed(self, x: torch.Tensor, values, mask) -> torch.Tensor:
        if self.cond_embed is None:
            return x.new_zeros(x.shape[0], self.cfg.embed_dim)
        if values is None:
            values = mask = x.new_zeros(x.shape[0], self.cfg.n_condition_fields)
        return F.silu(self.cond_embed(values, mask if mask is not None else torch.ones_like(values)))


class VAEEncoder(Conditioned):
    def __init__(self, cfg: UNetConfig, latent_channels: int) -> None:
        super().__init__(cfg)
        self.down = DownPath(cfg)
        self.head = _conv(cfg, self.down.out_channels, 2 * latent_channels)

    def forward(self, x, values=None, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.down(x, self.embed(x, values, mask))).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class VAEDecoder(Conditioned):
    def __init__(self, cfg: UNetConfig, latent_channels: int) -> None:
        super().__init__(cfg)
        self.latent_channels = latent_channels
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        c = widths[-1]
        self.stem = _conv(cfg, latent_channels, c)
        self.blocks, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            self.blocks.append(ResBlock(cfg, c, w))
            c = w
            self.ups.append(nn.Identity() if level == 0 else _conv(cfg, c, c))
        self.norm = nn.GroupNorm(min(cfg.groups, c), c)
        self.pos = cfg.position_features
        self.head = _conv(cfg, c + 2 * self.pos * cfg.spatial_dims, cfg.in_channels)

    def latent_shape(self, sample_shape) -> tuple[int, ...]:
        """(latent_channels, *spatial / 2^(levels − 1)) for a sample shape (C, *spatial)."""
        f = self.cfg.size_multiple
        return (self.latent_channels, *(int(s) // f for s in tuple(sample_shape)[1:]))

    def forward(self, z, values=None, mask=None) -> torch.Tensor:
        emb = self.embed(z, values, mask)
        h = self.stem(z)
        for block, up in zip(self.blocks, self.ups):
            h = block(h, emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = F.silu(self.norm(h))
        if self.pos:
            h = torch.cat([h, position_features(h, self.pos)], dim=1)
        return self.head(h)


class ConditionalVAE(nn.Module):
    """q(z | x, c) = N(μ, σ²) by the encoder, p(x | z, c) by the decoder, prior N(0, I)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int = 4) -> None:
        super().__init__()
        self.cfg, self.latent_channels = cfg, latent_channels
        self.encoder = VAEEncoder(cfg, latent_channels)
        self.decoder = VAEDecoder(cfg, latent_channels)

    def latent_shape(self, sample_shape) -> tuple[int, ...]:
        return self.decoder.latent_shape(sample_shape)

    def encode(self, x, values=None, mask=None):
        return self.encoder(x, values, mask)

    def decode(self, z, values=None, mask=None):
        return self.decoder(z, values, mask)

    def forward(self, x, values=None, mask=None, generator: torch.Generator | None = None):
        """(x̂, μ, log σ²) with the reparameterised sample z = μ + σ ⊙ ε."""
        mu, logvar = self.encode(x, values, mask)
        eps = parallel.randn(mu.shape, generator, mu.device)
        z = mu + (0.5 * logvar).exp() * eps
        return self.decode(z, values, mask), mu, logvar
