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
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genmat.nn.unet import DownPath, UNetConfig
from genmat.nn.vae_nets import VAEDecoder, Conditioned


def _spectrally_normed(module: nn.Module) -> nn.Module:
    for sub in list(module.modules()):
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            sub.reset_parameters()  # the U-Net zero-initialises some convolutions; σ(0) = 0
            spectral_norm(sub)
    return module


class Discriminator(Conditioned):
    """D(x, c) → one logit per sample; ``values``/``mask`` as for the U-Net (mask 0 = not given)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg)
        self.down = DownPath(cfg)
        c = self.down.out_channels
        self.head = nn.Linear(c, 1)
        self.project = nn.Linear(cfg.embed_dim, c, bias=False)
        _spectrally_normed(self)

    def forward(self, x, values=None, mask=None) -> torch.Tensor:
        emb = self.embed(x, values, mask)
        h = self.down(x, emb).flatten(2).sum(-1)  # sum pooling, as in the SN-GAN/projection papers
        return self.head(h).squeeze(1) + (self.project(emb) * h).sum(1)


class ConditionalGAN(nn.Module):
    """``generator`` G(z, c) and ``discriminator`` D(x, c) in one module, so that the one
    training loop and its checkpoints handle both; ``param_groups`` gives each player its
    own learning-rate scale and Adam betas (the two-time-scale update rule)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int = 4, d_lr_scale: float = 2.0,
                 betas: tuple[float, float] = (0.0, 0.99)) -> None:
        super().__init__()
        self.d_lr_scale, self.betas = d_lr_scale, tuple(betas)
        self.generator = VAEDecoder(cfg, latent_channels)
        self.discriminator = Discriminator(cfg)

    def latent_shape(self, sample_shape) -> tuple[int, ...]:
        return self.generator.latent_shape(sample_shape)

    def decode(self, z, values=None, mask=None) -> torch.Tensor:
        """G(z, c): the same call as a VAE's decoder, so both sample through ``decode_prior``."""
        return self.generator(z, values, mask)

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.generator.parameters()), "lr_scale": 1.0, "betas": self.betas},
            {"params": list(self.discriminator.parameters()), "lr_scale": self.d_lr_scale, "betas": self.betas},
        ]
