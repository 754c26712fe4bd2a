"""Diffusion and flow matching: the U-Net denoiser on a Gaussian noise path."""

from __future__ import annotations

import torch

from genmat.diffusion import (Denoiser, DenoisingLoss, NoisePath, PhysicsGuidance, classifier_free, classifier_guided,
                              sample)
from genmat.methods.base import Method
from genmat.methods.config import SamplerConfig
from genmat.nn import UNet


class DiffusionMethod(Method):
    physics_guidance = True
    name = "diffusion"

    def build(self) -> Denoiser:
        c = self.config
        return Denoiser(UNet(c.unet), NoisePath(c.path), c.prediction, c.sigma_data)

    def loss(self, penalty=None) -> DenoisingLoss:
        """The denoising loss; ``penalty`` is the modality's ``physics_penalty`` when the
        config names penalty weights."""
        c = self.config
        return DenoisingLoss(cond_dropout=c.cond_dropout, t_sampling=c.t_sampling, cond_masks=c.cond_masks,
                             penalty=penalty, penalty_weights=c.penalties, penalty_t_max=c.penalty_t_max)

    def sample(self, model, values, mask, sampler, gen, *, regressor=None, progress=False, physics=None):
        noise = torch.randn((values.shape[0], *self.sample_shape), generator=gen)
        return self.integrate(model, noise, values, mask, sampler, gen, regressor=regressor, progress=progress,
                              physics=physics)

    @staticmethod
    def integrate(model: Denoiser, noise, values, mask, sampler: SamplerConfig, gen=None, *, regressor=None,
                  progress: bool = False, physics=None) -> torch.Tensor:
        """From the given noise to samples with the sampler, classifier-free guidance and, with
        a regressor and ``sampler.classifier_scale`` > 0, classifier guidance; with ``physics``
        (``loss(x̂0) -> (B,)``, a differentiable physics misfit) and ``sampler.physics_scale`` > 0,
        physics guidance (:class:`PhysicsGuidance`)."""
        device = next(model.parameters()).device
        values, mask = values.to(device), mask.to(device)
        predict = classifier_free(model, values, mask, sampler.guidance)
        if regressor is not None and sampler.classifier_scale > 0:
            grad = regressor.grad_log_likelihood(values, mask, sampler.classifier_tau)
            predict = classifier_guided(predict, model.path, grad, sampler.classifier_scale)
        if physics is not None and sampler.physics_scale > 0:
            predict = PhysicsGuidance(predict, model.path, physics, sampler.physics_scale,
                                      t_max=sampler.physics_t_max, t_min=sampler.physics_t_min,
                                      max_step=sampler.physics_max_step)
        return sample(predict, model.path, noise.to(device), steps=sampler.steps, method=sampler.method,
                      eta=sampler.eta, generator=gen if device.type == "cpu" else None, progress=progress)
