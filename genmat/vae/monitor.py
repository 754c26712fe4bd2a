"""Posterior-collapse diagnostics and latent interpolation of a conditional VAE.

Posterior collapse: the decoder learns to ignore z, the KL of every latent dimension
falls to ≈ 0 and q(z | x, c) ≈ N(0, I) whatever x is. Two numbers show it:

- **active units** (Burda et al. 2016): latent dimensions whose posterior mean varies
  across the data, Var_x(E_q[z_j | x]) > ``threshold`` (0.01);
- **KL per dimension**: the batch-averaged KL of each latent dimension (nats).

``posterior_diagnostics`` computes both and says "collapsed" when under
``min_active_fraction`` of the dimensions are active; callers log a warning and record
the numbers (the loop puts them in MLflow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from genmat.vae.elbo import gaussian_kl

log = logging.getLogger(__name__)


@dataclass
class PosteriorDiagnostics:
    active_units: int
    latent_dims: int
    kl_per_dim: torch.Tensor  # (latent_dims,) nats, batch average
    collapsed: bool

    @property
    def active_fraction(self) -> float:
        return self.active_units / max(1, self.latent_dims)

    @property
    def kl_total(self) -> float:
        return float(self.kl_per_dim.sum())

    def as_metrics(self, prefix: str = "vae_") -> dict[str, float]:
        return {f"{prefix}active_units": float(self.active_units), f"{prefix}active_fraction": self.active_fraction,
                f"{prefix}kl_total_nats": self.kl_total, f"{prefix}kl_per_dim_max": float(self.kl_per_dim.max()),
                f"{prefix}collapsed": float(self.collapsed)}


@torch.no_grad()
def posterior_diagnostics(model, x, values=None, mask=None, *, threshold: float = 0.01,
                          min_active_fraction: float = 0.1, batch_size: int = 256) -> PosteriorDiagnostics:
    """Active units and KL per latent dimension of ``model`` on samples ``x``."""
    mus, kls = [], []
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        mu, logvar = model.encode(x[sl], None if values is None else values[sl], None if mask is None else mask[sl])
        mus.append(mu.flatten(1).float().cpu())
        kls.append(gaussian_kl(mu, logvar).flatten(1).float().cpu())
    mu, kl = torch.cat(mus), torch.cat(kls)
    active = int((mu.var(0, unbiased=True) > threshold).sum()) if mu.shape[0] > 1 else 0
    diag = PosteriorDiagnostics(active, mu.shape[1], kl.mean(0), active / mu.shape[1] < min_active_fraction)
    if diag.collapsed:
        log.warning("VAE posterior collapse: %d of %d latent dimensions active (Var E[z|x] > %g), KL %.3g nats; "
                    "lower beta, lengthen the KL warm-up or set free bits", active, mu.shape[1], threshold,
                    diag.kl_total)
    return diag


def slerp(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation per sample between flattened a and b at weights w (n,)."""
    af, bf = a.flatten(), b.flatten()
    cos = torch.dot(af, bf) / (af.norm() * bf.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if float(omega) < 1e-4:  # nearly parallel: linear is exact enough
        return torch.stack([(1 - t) * a + t * b for t in w])
    so = torch.sin(omega)
    return torch.stack([(torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b for t in w])


@torch.no_grad()
def interpolate(model, x_a, x_b, values=None, mask=None, *, n: int = 8, spherical: bool = False) -> torch.Tensor:
    """Decode n points between the posterior means of two samples ``(1, C, *S)`` each,
    under one condition (``values``/``mask`` of shape (1, F) or None): (n, C, *S)."""
    mu_a, _ = model.encode(x_a, values, mask)
    mu_b, _ = model.encode(x_b, values, mask)
    w = torch.linspace(0, 1, n)
    z = slerp(mu_a[0], mu_b[0], w) if spherical else torch.stack([(1 - t) * mu_a[0] + t * mu_b[0] for t in w])
    rep = (lambda v: None if v is None else v.expand(n, -1))
    return model.decode(z, rep(values), rep(mask))
