"""The conditional VAE as a generator: one network call per sample."""

from __future__ import annotations

import torch

from genmat.methods.base import Method
from genmat.nn.vae_nets import ConditionalVAE
from genmat.vae import ELBOLoss, posterior_diagnostics


class VAEMethod(Method):
    name = "vae"

    def build(self) -> ConditionalVAE:
        return ConditionalVAE(self.config.unet, self.config.vae.latent_channels)

    def loss(self) -> ELBOLoss:
        return ELBOLoss(self.config.vae, cond_dropout=self.config.cond_dropout, cond_masks=self.config.cond_masks)

    def diagnostics(self, model, data):
        return vae_diagnostics(model, data, self.config.vae.active_threshold)

    def sample(self, model, values, mask, sampler, gen, *, regressor=None, progress=False):
        return decode_prior(model, self.sample_shape, values, mask, sampler.guidance, gen)


def vae_diagnostics(vae: ConditionalVAE, data, threshold: float) -> dict[str, float]:
    """Posterior-collapse numbers on up to 1024 training samples (warns when collapsed)."""
    device = next(vae.parameters()).device
    n = min(1024, data[0].shape[0])
    return posterior_diagnostics(vae, *(d[:n].to(device) for d in data[:3]), threshold=threshold).as_metrics()


def decode_prior(vae: ConditionalVAE, sample_shape, values, mask, guidance: float, gen) -> torch.Tensor:
    """z ~ N(0, I) decoded with the condition by any model with ``latent_shape`` and ``decode``
    (the VAE, the GAN's generator) — two calls with guidance w ≠ 1:
    dec(z, ∅) + w (dec(z, c) − dec(z, ∅)), the classifier-free formula)."""
    device = next(vae.parameters()).device
    values, mask = values.to(device), mask.to(device)
    z = torch.randn((values.shape[0], *vae.latent_shape(sample_shape)), generator=gen).to(device)
    x = vae.decode(z, values, mask)
    if guidance != 1.0:
        x_null = vae.decode(z, values, torch.zeros_like(mask))
        x = x_null + guidance * (x - x_null)
    return x
