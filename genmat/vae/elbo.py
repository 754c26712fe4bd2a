"""The ELBO of a conditional VAE (METHODS.md, "Conditional VAE").

    loss = E_q[‖x − x̂‖²] / (2 σ_x²) / D  +  β(step) · Σ_j max(KL_j, free_bits) / D

per sample, with D the number of values of x, a Gaussian decoder of fixed σ_x
(``recon_sigma``), and the closed-form KL of q = N(μ, σ²) from N(0, I):

    KL_j = ½ (μ_j² + σ_j² − log σ_j² − 1).

β ramps linearly from 0 to ``beta`` over ``kl_warmup_steps`` calls (KL warm-up keeps the
decoder from ignoring z before it has learnt anything); free bits (nats per latent
dimension, averaged over the batch, Kingma et al. 2016) stop the optimiser from pushing
a dimension's KL below that floor, a guard against posterior collapse. Condition fields
are dropped per field with ``cond_dropout`` as for the diffusion models, so one decoder
serves any subset of conditions.
"""

from __future__ import annotations

import torch
from pydantic import Field

from genmat.config import Config
from genmat.nn.embeddings import drop_fields


class VAESettings(Config):
    latent_channels: int = Field(4, ge=1)
    beta: float = Field(1.0, ge=0)
    kl_warmup_steps: int = Field(200, ge=0)
    free_bits: float = Field(0.0, ge=0)  # nats per latent dimension
    recon_sigma: float = Field(0.1, gt=0)  # σ_x of the Gaussian decoder, in sample units
    active_threshold: float = Field(0.01, ge=0)  # Var_x(E[z_j | x]) above this: an active unit


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − log σ² − 1)."""
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1)


class ELBOLoss:
    """``loss_fn(model, batch, generator)`` for :func:`genmat.train.train`; counts its calls
    for the warm-up and keeps the last terms in ``self.last`` for logging."""

    def __init__(self, settings: VAESettings = VAESettings(), cond_dropout: float = 0.1,
                 cond_masks: str = "independent") -> None:
        self.settings, self.cond_dropout, self.cond_masks = settings, cond_dropout, cond_masks
        self.calls = 0
        self.last: dict[str, float] = {}

    def beta(self) -> float:
        s = self.settings
        return s.beta if s.kl_warmup_steps == 0 else s.beta * min(1.0, self.calls / s.kl_warmup_steps)

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x, values, mask = batch
        mask = drop_fields(mask, self.cond_dropout, generator, self.cond_masks)  # the same masks as diffusion
        x_hat, mu, logvar = model(x, values, mask, generator=generator)
        d = x[0].numel()
        recon = (x - x_hat).square().flatten(1).sum(1) / (2 * self.settings.recon_sigma**2) / d
        kl = gaussian_kl(mu, logvar).flatten(1)  # (B, latent dims)
        kl_dim = kl.mean(0)  # per latent dimension, batch average
        kl_term = torch.clamp(kl_dim, min=self.settings.free_bits).sum() / d
        beta = self.beta()
        self.calls += 1
        loss = recon.mean() + beta * kl_term
        self.last = {"recon": float(recon.mean().detach()), "kl_per_value": float(kl.sum(1).mean().detach()) / d,
                     "beta": beta}
        return loss
