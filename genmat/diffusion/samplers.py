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
from genmat.errors import InputError

Predictor = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
SAMPLERS = ("euler", "heun", "ddim", "ddpm", "dpmpp_2m", "consistency")


def network_evaluations(method: str, steps: int) -> int:
    """Network evaluations of one ``sample(method=..., steps=...)`` call (one guidance branch):
    Heun's last step is Euler (2·steps − 1), every other sampler evaluates once per step."""
    if method not in SAMPLERS:
        raise InputError(f"sampler method = {method!r}; allowed: {', '.join(SAMPLERS)}")
    return 2 * steps - 1 if method == "heun" else steps


def time_grid(steps: int, t_max: float = 1.0, t_min: float = 0.0, device=None) -> torch.Tensor:
    """Uniform grid of steps + 1 times from t_max down to t_min."""
    if steps < 1:
        raise InputError(f"steps = {steps} is outside the allowed range [1, ∞)")
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


def _log_snr(path: NoisePath, t: torch.Tensor) -> torch.Tensor:
    """λ = log(α/σ) (−∞ where α = 0, +∞ where σ = 0), float64."""
    a, s = path.alpha_sigma(t.double().reshape(1))
    return (a.log() - s.log()).reshape(())


def log_snr_grid(path: NoisePath, steps: int, t_max: float = 1.0, lam_range: tuple[float, float] = (-6.0, 6.0),
                 device=None) -> torch.Tensor:
    """steps + 1 times from t_max to 0, uniform in λ = log(α/σ) in between (the grid
    DPM-Solver is derived for): t_max, then steps − 1 times with λ evenly spaced from
    max(λ(t_max), lam_range[0]) to lam_range[1], then 0."""
    if steps < 1:
        raise InputError(f"steps = {steps} is outside the allowed range [1, ∞)")
    table_t = torch.linspace(t_max, 0.0, 20001, dtype=torch.float64)[1:-1]
    a, s = path.alpha_sigma(table_t)
    table_lam = (a.log() - s.log())  # increasing as t decreases
    lo = max(float(_log_snr(path, torch.tensor(t_max))), lam_range[0])
    lams = torch.linspace(lo, lam_range[1], steps + 1, dtype=torch.float64)[1:-1]
    idx = torch.searchsorted(table_lam, lams).clamp(1, len(table_t) - 1)
    w = (lams - table_lam[idx - 1]) / (table_lam[idx] - table_lam[idx - 1])
    inner = table_t[idx - 1] + w * (table_t[idx] - table_t[idx - 1])
    return torch.cat([torch.tensor([t_max], dtype=torch.float64), inner, torch.zeros(1, dtype=torch.float64)]).float().to(device)


def dpmpp_2m(path: NoisePath, predict: Predictor, x: torch.Tensor, ts: torch.Tensor, progress: bool = False):
    """DPM-Solver++(2M) (Lu et al. 2022, alg. 2): a second-order multistep solver of the
    probability-flow ODE in data prediction, for any Gaussian path, one network call per step.

    With λ = log(α/σ) and h_i = λ_i − λ_{i−1}:
        x_i = (σ_i/σ_{i−1}) x_{i−1} − α_i (e^{−h_i} − 1) D_i,
        D_i = (1 + 1/(2 r_i)) x̂0_{i−1} − 1/(2 r_i) x̂0_{i−2},  r_i = h_{i−1}/h_i,
    first order (D_i = x̂0_{i−1}) on the first step and on the last step to t = 0.
    """
    prev_x0, prev_h = None, None
    for i in tqdm(range(len(ts) - 1), disable=not progress, desc="sampling (dpmpp_2m)", leave=False):
        t, s = ts[i], ts[i + 1]
        x0, _ = predict(x, _full(t, x))
        (a_t, s_t), (a_s, s_s) = (path.alpha_sigma(v.reshape(1)) for v in (t, s))
        if float(s_s) == 0:  # last step to the data (σ = 0, λ = ∞): the denoised prediction
            x = x0
            break
        lam_t, lam_s = _log_snr(path, t), _log_snr(path, s)
        h = lam_s - lam_t
        d = x0
        if prev_x0 is not None and torch.isfinite(prev_h) and torch.isfinite(h):
            r = prev_h / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
        ratio = (s_s / s_t).float() if float(s_t) > 0 else torch.zeros(1)
        x = ratio * x - (a_s * torch.expm1(-h)).float() * d
        prev_x0, prev_h = x0, h
    return x


def consistency_sampling(path: NoisePath, predict: Predictor, x: torch.Tensor, steps: int, t_max: float = 1.0,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, alg. 1): x̂0 = f(x_T, T); then for
    each time τ of a uniform grid below T, re-noise x_τ = α_τ x̂0 + σ_τ z and jump again,
    x̂0 = f(x_τ, τ). f is the model's x̂0 prediction (a consistency-distilled model maps any
    point of an ODE trajectory to its end). One network call per step."""
    times = torch.linspace(t_max, 0.0, steps + 1, device=x.device)[:-1]
    x0, _ = predict(x, _full(times[0], x))
    for t in times[1:]:
        a, s = path.alpha_sigma(t.reshape(1))
        z = torch.randn(x.shape, generator=generator, device="cpu" if generator is not None else x.device).to(x.device)
        x0, _ = predict(a * x0 + s * z, _full(t, x))
    return x0


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

    ``method``: "euler" | "heun" (ODE), "ddim" (η configurable), "ddpm" (ancestral),
    "dpmpp_2m" (DPM-Solver++(2M), multistep), "consistency" (multistep consistency
    sampling, for consistency-distilled models). Network evaluations:
    ``network_evaluations(method, steps)``.
    The result at t = 0 is the final x̂0, so ε-prediction ends on a denoised sample.
    """
    if method not in SAMPLERS:
        raise InputError(f"sampler method = {method!r}; allowed: {', '.join(SAMPLERS)}")
    ts = time_grid(steps, t_max=t_max, device=noise.device)
    x = noise * path.alpha_sigma(ts[:1])[1]  # x_1 = σ(1) ε: α(1) is 0 (flow) or ~0.003 (VP)
    if method == "dpmpp_2m":
        return dpmpp_2m(path, predict, x, log_snr_grid(path, steps, t_max, device=noise.device), progress=progress)
    if method == "consistency":
        return consistency_sampling(path, predict, x, steps, t_max, generator=generator)
    step = _STEPS[method]
    for i in tqdm(range(steps), disable=not progress, desc=f"sampling ({method})", leave=False):
        x = step(path, predict, x, ts[i], ts[i + 1], eta=eta, generator=generator)
    return x
