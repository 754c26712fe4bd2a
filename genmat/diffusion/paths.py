"""Gaussian noise paths x_t = α(t) x0 + σ(t) ε on continuous time t ∈ [0, 1].

t = 0 is data, t = 1 is (nearly) pure noise. Three paths, all pure functions of t:

- ``rectified_flow``: α = 1 − t, σ = t (flow matching, Lipman et al. 2023; Liu et al. 2023).
- ``vp_linear``: the continuous limit of DDPM's linear β schedule from 1e-4 to 0.02 over
  T = 1000 steps (Ho et al. 2020; Song et al. 2021): ᾱ(t) = exp(−β0 t − ½ (β1 − β0) t²),
  β0 = 0.1, β1 = 20; α = √ᾱ, σ = √(1 − ᾱ).
- ``vp_cosine``: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t + s)/(1 + s)) π/2), s = 0.008
  (Nichol & Dhariwal 2021), with α = √ᾱ mapped affinely onto [√m, 1], m = ``min_alpha_bar``,
  so that ᾱ(1) = m > 0 and dα/dt is right (non-zero) up to t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genmat.errors import InputError

KINDS = ("rectified_flow", "vp_linear", "vp_cosine")


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a (B,) tensor to (B, 1, ..., 1) with ``ndim`` dims, for broadcasting."""
    return v.reshape(v.shape + (1,) * (ndim - v.dim()))


@dataclass(frozen=True)
class NoisePath:
    kind: str = "rectified_flow"
    beta_min: float = 0.1  # vp_linear: β0 (= 1e-4 · T)
    beta_max: float = 20.0  # vp_linear: β1 (= 0.02 · T)
    cosine_s: float = 0.008  # vp_cosine offset
    min_alpha_bar: float = 1e-5  # vp paths: ᾱ(1) floor, keeps x0 = (x − σ ε)/α finite

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"noise path kind = {self.kind!r}; allowed: {', '.join(KINDS)}")

    @property
    def is_vp(self) -> bool:
        return self.kind != "rectified_flow"

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ(t) = α(t)² for the VP paths."""
        t = t.double()
        if self.kind == "vp_linear":
            ab = torch.exp(-self.beta_min * t - 0.5 * (self.beta_max - self.beta_min) * t**2)
        elif self.kind == "vp_cosine":
            s = self.cosine_s
            # α = √ᾱ rescaled onto [√min_alpha_bar, 1] rather than ᾱ clipped: ᾱ(1) > 0 and dα/dt
            # stays −(π/2) / (1 + s) / cos(…) ≠ 0 up to t = 1 (the clip made dα/dt = dσ/dt = 0 for
            # t > 0.998; rescaling ᾱ instead would still give dα/dt = 0 at t = 1)
            a_min = math.sqrt(self.min_alpha_bar)
            a = torch.cos((t + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)
            ab = (a_min + (1 - a_min) * a) ** 2
        else:
            ab = (1 - t) ** 2
        return ab.clamp(min=self.min_alpha_bar if self.is_vp else 0.0, max=1.0)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α(t), σ(t)), each shaped like ``t`` (float32 on t's device)."""
        if self.kind == "rectified_flow":
            return (1 - t).float(), t.float()
        ab = self.alpha_bar(t)
        return ab.sqrt().float(), (1 - ab).sqrt().float()

    def derivatives(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dα/dt, dσ/dt): the velocity of the path is dx/dt = α' x0 + σ' ε."""
        if self.kind == "rectified_flow":
            return -torch.ones_like(t).float(), torch.ones_like(t).float()
        td = t.double().detach().requires_grad_(True)
        with torch.enable_grad():
            ab = self.alpha_bar(td)
            (dab,) = torch.autograd.grad(ab.sum(), td)
        ab = ab.detach()
        alpha, sigma = ab.sqrt(), (1 - ab).clamp(min=1e-12).sqrt()
        return (dab / (2 * alpha)).float(), (-dab / (2 * sigma)).float()
