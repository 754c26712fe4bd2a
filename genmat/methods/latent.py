"""Latent diffusion (Rombach et al. 2022): a conditional VAE first, then diffusion on its
latents, decoded at the end.

Stage 1 trains the VAE (the ELBO of :mod:`genmat.vae`) for ``latent.vae_fraction`` of the
steps; the posterior means μ(x, c) of the training set, scaled to unit standard deviation
(``latent_scale``, kept in the checkpoint), are the data of stage 2, a U-Net denoiser of
the same path/prediction on the latent shape ``(latent_channels, *S / 2^(L−1))`` with
``latent.channel_mults`` levels. Sampling: the latent sampler (any of them, with
classifier-free guidance and physics guidance through the decoder), then z / latent_scale
decoded with the condition.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genmat.diffusion import Denoiser, DenoisingLoss, NoisePath
from genmat.methods.base import Method
from genmat.methods.diffusion import DiffusionMethod
from genmat.methods.vae import vae_diagnostics
from genmat.nn import UNet
from genmat.nn.vae_nets import ConditionalVAE
from genmat.train import TrainResult, train
from genmat.vae import ELBOLoss


class LatentDiffusion(nn.Module):
    def __init__(self, vae: ConditionalVAE, denoiser: Denoiser) -> None:
        super().__init__()
        self.vae, self.denoiser = vae, denoiser
        self.register_buffer("latent_scale", torch.ones(()))

    @torch.no_grad()
    def encode(self, x, values, mask, batch_size: int = 256) -> torch.Tensor:
        """Scaled posterior means of samples: the diffusion's training data."""
        out = [self.vae.encode(x[s:s + batch_size], values[s:s + batch_size], mask[s:s + batch_size])[0]
               for s in range(0, x.shape[0], batch_size)]
        return torch.cat(out) * self.latent_scale


class LatentDiffusionMethod(Method):
    name = "latent_diffusion"
    physics_guidance = True  # through the decoder: the misfit of D(ẑ0) steers the latent

    def build(self) -> LatentDiffusion:
        c = self.config
        vae = ConditionalVAE(c.unet, c.vae.latent_channels)
        latent_unet = c.unet.replace(in_channels=c.vae.latent_channels, channel_mults=c.latent.channel_mults)
        return LatentDiffusion(vae, Denoiser(UNet(latent_unet), NoisePath(c.path), c.prediction, sigma_data=1.0))

    def fit(self, model: LatentDiffusion, data, config, *, checkpoint_path=None, warm_start=None, penalty=None,
            **kw):  # penalty: always None here (GeneratorConfig allows penalties for diffusion only)
        c = self.config
        n_vae = max(1, round(config.steps * c.latent.vae_fraction))
        stage1 = Path(checkpoint_path).with_suffix(".stage1.ckpt") if checkpoint_path else None
        model.requires_grad_(True)
        elbo = ELBOLoss(c.vae, cond_dropout=c.cond_dropout, cond_masks=c.cond_masks)
        ema, first = train(model, lambda m, b, g: elbo(m.vae, b, g), list(data[:3]), config.replace(steps=n_vae),
                           checkpoint_path=stage1, warm_start=warm_start, **kw)
        model.load_state_dict(ema.state_dict())  # stage 2 starts from the averaged autoencoder
        x, values, mask = (d.to(model.latent_scale.device) for d in data[:3])
        model.latent_scale.fill_(1.0)
        means = model.encode(x, values, mask)  # encoded once: the scale and the latents come from it
        model.latent_scale.fill_(float(1.0 / means.std().clamp(min=1e-6)))
        latents = means * model.latent_scale
        denoise = DenoisingLoss(cond_dropout=c.cond_dropout, t_sampling=c.t_sampling, cond_masks=c.cond_masks)
        model.requires_grad_(True)
        ema, second = train(model, lambda m, b, g: denoise(m.denoiser, b, g), [latents, values, mask],
                            config.replace(steps=max(1, config.steps - n_vae)), checkpoint_path=checkpoint_path,
                            **kw)
        losses = first.losses + [(first.step + s, v) for s, v in second.losses]
        return ema, TrainResult(first.step + second.step, losses, second.checkpoint, first.seconds + second.seconds)

    def diagnostics(self, model, data):
        return vae_diagnostics(model.vae, data, self.config.vae.active_threshold)

    def sample(self, model: LatentDiffusion, values, mask, sampler, gen, *, regressor=None, progress=False,
               physics=None):
        """Latent samples decoded. With ``physics`` (a misfit of data-space samples), physics
        guidance in latent space: the denoised latent ẑ0 is decoded, its misfit
        back-propagated through the decoder and the latent denoiser to z_t."""
        latent_shape = model.vae.latent_shape(self.sample_shape)
        noise = torch.randn((values.shape[0], *latent_shape), generator=gen)
        device = model.latent_scale.device
        values, mask = values.to(device), mask.to(device)

        def decode(z: torch.Tensor) -> torch.Tensor:
            return model.vae.decode(z / model.latent_scale, values, mask)

        latent_physics = (lambda z0: physics(decode(z0))) if physics is not None else None
        z = DiffusionMethod.integrate(model.denoiser, noise, values, mask, sampler, gen, progress=progress,
                                      physics=latent_physics)
        return decode(z)
