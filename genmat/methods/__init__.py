"""Generative families behind one :class:`genmat.generate.Generator`: each builds its
network, trains it through the one training loop and samples it (see ``base.Method``).

=====================  =====================================================================
``diffusion``          U-Net denoiser on a noise path: rectified flow / flow matching (default),
                       VP linear or cosine with ε / x0 / v prediction; every sampler, reflow
``vae``                conditional VAE (ELBO, β, KL warm-up, free bits), one network call
``latent_diffusion``   the VAE first, then diffusion on its latents
``normalizing_flow``   conditional RealNVP-style flow: exact likelihood, OOD scores
``gan``                conditional GAN: the VAE decoder against a projection discriminator
=====================  =====================================================================
"""

from __future__ import annotations

from typing import Sequence

from genmat.methods.base import Method
from genmat.methods.config import (
    METHOD_NAMES,
    FlowSettings,
    GANSettings,
    GeneratorConfig,
    LatentSettings,
    SamplerConfig,
)
from genmat.methods.diffusion import DiffusionMethod
from genmat.methods.flow import FlowMethod, ood_scores
from genmat.methods.gan import GANMethod
from genmat.methods.latent import LatentDiffusion, LatentDiffusionMethod
from genmat.methods.vae import VAEMethod

METHODS: dict[str, type[Method]] = {m.name: m for m in (DiffusionMethod, VAEMethod, LatentDiffusionMethod, FlowMethod,
                                                  GANMethod)}
assert tuple(METHODS) == METHOD_NAMES


def get_method(config: GeneratorConfig, sample_shape: Sequence[int]) -> Method:
    return METHODS[config.method](config, sample_shape)


__all__ = ["METHODS", "METHOD_NAMES", "DiffusionMethod", "FlowMethod", "FlowSettings", "GANMethod", "GANSettings", "GeneratorConfig",
           "LatentDiffusion", "LatentDiffusionMethod", "LatentSettings", "Method", "SamplerConfig", "VAEMethod",
           "get_method", "ood_scores"]
