"""Conditional GAN networks of the same blocks as the other families (1-D and 2-D).

The generator G(z, c) is the VAE's decoder: a spatial latent z ~ N(0, I) of shape
``(latent_channels, *S / 2^(L−1))`` is decoded under FiLM conditioning. The discriminator
is a *projection* discriminator (Miyato & Koyama 2018): the U-Net's down path, pooled to a
feature vector φ(x), scored as ψ(φ) + ⟨P e(c), φ⟩. Every weight of D is spectrally
normalised (Miyato et al. 2018), which bounds D's Lipschitz constant and is what keeps the
two-player training from oscillating at these sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genmat.nn.embeddings import ConditionEmbedding
from genmat.nn.unet import DownPath, UNetConfig
from genmat.nn.vae_nets import VAEDecoder


def _spectrally_normed(module: nn.Module) -> nn.Module:
    for sub in list(module.modules()):
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            sub.reset_parameters()  # the U-Net zero-initialises some convolutions; σ(0) = 0
            spectral_norm(sub)
    return module


class Discriminator(nn.Module):
    """D(x, c) → one logit per sample; ``values``/``mask`` as for the U-Net (mask 0 = not given)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cond_embed = ConditionEmbedding(cfg.n_condition_fields, cfg.embed_dim) if cfg.n_condition_fields else None
        self.down = DownPath(cfg)
        c = self.down.out_channels
        self.head = nn.Linear(c, 1)
        self.project = nn.Linear(cfg.embed_dim, c, bias=False)
        _spectrally_normed(self)

    def forward(self, x, values=None, mask=None) -> torch.Tensor:
        if self.cond_embed is None or values is None:
            emb = x.new_zeros(x.shape[0], self.cfg.embed_dim)
        else:
            emb = F.silu(self.cond_embed(values, mask if mask is not None else torch.ones_like(values)))
        h = self.down(x, emb).flatten(2).sum(-1)  # sum pooling, as in the SN-GAN/projection papers
        return self.head(h).squeeze(1) + (self.project(emb) * h).sum(1)


class ConditionalGAN(nn.Module):
    """``generator`` G(z, c) and ``discriminator`` D(x, c) in one module, so that the one
    training loop and its checkpoints handle both; ``param_groups`` gives each player its
    own learning-rate scale and Adam betas (the two-time-scale update rule)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int = 4, d_lr_scale: float = 2.0,
                 betas: tuple[float, float] = (0.0, 0.99)) -> None:
        super().__init__()
        self.cfg, self.latent_channels = cfg, latent_channels
        self.d_lr_scale, self.betas = d_lr_scale, tuple(betas)
        self.generator = VAEDecoder(cfg, latent_channels)
        self.discriminator = Discriminator(cfg)

    def latent_shape(self, sample_shape) -> tuple[int, ...]:
        f = self.cfg.size_multiple
        return (self.latent_channels, *(int(s) // f for s in tuple(sample_shape)[1:]))

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.generator.parameters()), "lr_scale": 1.0, "betas": self.betas},
            {"params": list(self.discriminator.parameters()), "lr_scale": self.d_lr_scale, "betas": self.betas},
        ]

    def forward(self, z, values=None, mask=None) -> torch.Tensor:
        return self.generator(z, values, mask)
