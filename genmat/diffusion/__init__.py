"""Noise paths, the preconditioning wrapper, losses, samplers and guidance.

Everything here works on any ``spatial_dims``: tensors are ``(B, C, *spatial)``.
"""

from genmat.diffusion.guidance import PhysicsGuidance, classifier_free, classifier_guided
from genmat.diffusion.losses import DenoisingLoss
from genmat.diffusion.paths import NoisePath
from genmat.diffusion.precond import PREDICTIONS, Denoiser
from genmat.diffusion.samplers import SAMPLERS, sample, time_grid

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "Denoiser",
    "DenoisingLoss",
    "NoisePath",
    "PhysicsGuidance",
    "classifier_free",
    "classifier_guided",
    "sample",
    "time_grid",
]
