"""The conditional VAE objective, its posterior-collapse monitor and latent interpolation.

The networks live in :mod:`genmat.nn.vae_nets`; this package holds what makes them a
VAE: the ELBO with β, KL warm-up and free bits (:class:`ELBOLoss`), the closed-form
Gaussian KL (:func:`gaussian_kl`), diagnostics of posterior collapse
(:func:`posterior_diagnostics`) and interpolation between two encoded samples.
"""

from __future__ import annotations

from genmat.vae.elbo import ELBOLoss, VAESettings, gaussian_kl
from genmat.vae.monitor import PosteriorDiagnostics, interpolate, posterior_diagnostics, slerp

__all__ = ["ELBOLoss", "PosteriorDiagnostics", "VAESettings", "gaussian_kl", "interpolate",
           "posterior_diagnostics", "slerp"]
