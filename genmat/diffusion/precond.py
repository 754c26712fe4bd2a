"""The preconditioning wrapper: one raw network, four parameterisations.

Every prediction target is a linear combination ``F = a·x0 + b·ε`` of the clean
sample and the noise (EDM's c_skip/c_out idea, Karras et al. 2022, written for
general α, σ):

    prediction   a       b
    "eps"        0       1        (Ho et al. 2020)
    "x0"         1       0
    "v"          −σ      α        (Salimans & Ho 2022: v = α ε − σ x0)
    "velocity"   α'      σ'       (flow matching: dx_t/dt)

With x_t = α x0 + σ ε the 2×2 system inverts to
``x0 = (b x − σ F) / (α b − σ a)`` and ``ε = (α F − a x) / (α b − σ a)``,
so every sampler works from (x0, ε) and never sees the parameterisation.
The input is scaled by c_in = 1 / sqrt(α² σ_data² + σ²) so the net sees unit variance.
"""

from __future__ import annotations

import torch
from torch import nn

from genmat.diffusion.paths import NoisePath, append_dims
from genmat.errors import InputError

PREDICTIONS = ("eps", "x0", "v", "velocity")


class Denoiser(nn.Module):
    """Wrap a raw net ``F(x, t, values, mask)`` into a denoiser on a noise path."""

    def __init__(
        self, net: nn.Module, path: NoisePath, prediction: str = "velocity", sigma_data: float = 1.0
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise InputError(f"prediction = {prediction!r}; allowed: {', '.join(PREDICTIONS)}")
        self.net, self.path, self.prediction, self.sigma_data = net, path, prediction, sigma_data

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with target F = a·x0 + b·ε at time t (each shaped like t)."""
        alpha, sigma = self.path.alpha_sigma(t)
        if self.prediction == "eps":
            return torch.zeros_like(alpha), torch.ones_like(alpha)
        if self.prediction == "x0":
            return torch.ones_like(alpha), torch.zeros_like(alpha)
        if self.prediction == "v":
            return -sigma, alpha
        return self.path.derivatives(t)

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, b = (append_dims(c, x0.dim()) for c in self.coefficients(t))
        return a * x0 + b * eps

    def forward(self, x, t, values=None, mask=None) -> torch.Tensor:
        """The raw (preconditioned) prediction F, shaped like x."""
        alpha, sigma = self.path.alpha_sigma(t)
        c_in = append_dims((alpha**2 * self.sigma_data**2 + sigma**2).rsqrt(), x.dim())
        return self.net(c_in * x, t, values, mask).float()

    def to_x0_eps(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor):
        """Turn a raw prediction F at (x, t) into (x0_hat, eps_hat)."""
        alpha, sigma = (append_dims(v, x.dim()) for v in self.path.alpha_sigma(t))
        a, b = (append_dims(c, x.dim()) for c in self.coefficients(t))
        det = alpha * b - sigma * a
        det = torch.where(det < 0, -1.0, 1.0) * det.abs().clamp(min=1e-6)  # finite at the path's ends
        return (b * x - sigma * out) / det, (alpha * out - a * x) / det

    def predict(self, x, t, values=None, mask=None):
        """(x0_hat, eps_hat) for a batch at times t (B,)."""
        return self.to_x0_eps(self(x, t, values, mask), x, t)
