"""Samplers: pure functions of a ``predict(x, t) -> (x0_hat, eps_hat)`` callable.

They integrate from t = 1 (noise) to t = 0 (data) on a time grid. The path
(α, σ and derivatives) comes from the denoiser's NoisePath, the network never
sees it.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from genmat.diffusion.paths import NoisePath, append_dims

Predictor = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
SAMPLERS = ("euler", "heun", "ddim", "ddpm")


def time_grid(steps: int, t_max: float = 1.0, t_min: float = 0.0, device=None) -> torch.Tensor:
    """Uniform grid of steps + 1 times from t_max down to t_min."""
    if steps < 1:
        raise ValueError(f"steps = {steps} is outside the allowed range [1, ∞)")
    return torch.linspace(t_max, t_min, steps + 1, device=device)


def _full(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.expand(x.shape[0])


def ddim_step(path, predict, x, t, s, eta=0.0, generator=None):
    """One DDIM step t → s (Song et al. 2021, eq. 12) written for any Gaussian path.

    x_s = α_s x̂0 + sqrt(σ_s² − σ_η²) ε̂ + σ_η z, with σ_η = η σ_s sqrt(1 − ρ²),
    ρ = (α_t σ_s)/(α_s σ_t). η = 0: deterministic (for rectified flow this is exactly
    an Euler step of the ODE); η = 1: DDPM's ancestral step (posterior variance).
    """
    tb, sb = _full(t, x), _full(s, x)
    x0, eps = predict(x, tb)
    (a_t, s_t), (a_s, s_s) = path.alpha_sigma(tb), path.alpha_sigma(sb)
    s_eta = torch.zeros_like(s_s)
    if eta > 0 and float(s) > 0:
        rho = (a_t * s_s) / (a_s * s_t)
        s_eta = eta * s_s * (1 - rho.square()).clamp(min=0).sqrt()
    s_det = (s_s.square() - s_eta.square()).clamp(min=0).sqrt()
    a_s, s_det, s_eta = (append_dims(v, x.dim()) for v in (a_s, s_det, s_eta))
    x = a_s * x0 + s_det * eps
    if eta > 0 and float(s) > 0:
        x = x + s_eta * torch.randn(x.shape, device=x.device, generator=generator)
    return x


def _velocity(path: NoisePath, predict: Predictor, x, t):
    x0, eps = predict(x, _full(t, x))
    da, ds = (append_dims(v, x.dim()) for v in path.derivatives(_full(t, x)))
    return da * x0 + ds * eps


def heun_step(path, predict, x, t, s, **_):
    """Heun's second-order step of dx/dt = α' x̂0 + σ' ε̂ (Karras et al. 2022, alg. 1)."""
    d1 = _velocity(path, predict, x, t)
    x_next = x + (s - t) * d1
    if float(s) <= 0:  # last step: Euler, as in EDM
        return x_next
    d2 = _velocity(path, predict, x_next, s)
    return x + (s - t) * 0.5 * (d1 + d2)


def euler_step(path, predict, x, t, s, **_):
    """Euler step of the probability-flow ODE dx/dt = α' x̂0 + σ' ε̂."""
    return x + (s - t) * _velocity(path, predict, x, t)


_STEPS = {
    "euler": euler_step,
    "heun": heun_step,
    "ddim": ddim_step,
    "ddpm": lambda path, predict, x, t, s, generator=None, **_: ddim_step(
        path, predict, x, t, s, eta=1.0, generator=generator
    ),
}


@torch.no_grad()
def sample(
    predict: Predictor,
    path: NoisePath,
    noise: torch.Tensor,
    *,
    steps: int = 20,
    method: str = "heun",
    eta: float = 0.0,
    t_max: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Integrate from ``noise`` (B, C, *S) at t_max to data at t = 0.

    ``method``: "euler" | "heun" (ODE), "ddim" (η configurable), "ddpm" (ancestral).
    Network evaluations: steps for euler/ddim/ddpm, 2·steps − 1 for heun.
    The result at t = 0 is the final x̂0, so ε-prediction ends on a denoised sample.
    """
    if method not in _STEPS:
        raise ValueError(f"sampler method = {method!r}; allowed: {', '.join(SAMPLERS)}")
    ts = time_grid(steps, t_max=t_max, device=noise.device)
    x = noise * path.alpha_sigma(ts[:1])[1]  # x_1 = σ(1) ε: α(1) is 0 (flow) or ~0.003 (VP)
    step = _STEPS[method]
    for i in tqdm(range(steps), disable=not progress, desc=f"sampling ({method})", leave=False):
        x = step(path, predict, x, ts[i], ts[i + 1], eta=eta, generator=generator)
    return x
