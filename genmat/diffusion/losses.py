"""Training objectives: small callable classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from genmat import parallel
from genmat.diffusion.guidance import classifier_free
from genmat.diffusion.paths import NoisePath, append_dims
from genmat.diffusion.precond import Denoiser
from genmat.errors import InputError
from genmat.nn.embeddings import drop_fields  # per-field condition dropout, shared with the VAE

T_SAMPLING = ("uniform", "logit_normal")
__all__ = ["ConsistencyDistillationLoss", "DenoisingLoss", "NoisyRegressionLoss", "T_SAMPLING", "drop_fields",
           "teacher_heun_step"]


@dataclass(frozen=True)
class DenoisingLoss:
    """E_t,ε ‖F_θ(x_t, t, c) − (a x0 + b ε)‖² with x_t = α(t) x0 + σ(t) ε.

    ``cond_dropout``: per-field drop probability. ``t_sampling``: "uniform" on
    [t_min, 1] or "logit_normal" (Esser et al. 2024, sigmoid of N(0, 1)).

    Physics penalties (optional): ``penalty(x̂0, x0, values, mask) -> {term: (B,)}`` scores
    the denoised estimate x̂0 of each noisy sample against physics the data obey (a
    modality's ``physics_penalty``; ``values``/``mask`` are the sample's own, before
    dropout). The loss adds Σ_term w_term · mean_B(term · [t ≤ penalty_t_max]) for the
    terms named in ``penalty_weights``: at large t, x̂0 is a blurred posterior mean whose
    statistics legitimately differ from any one sample's, so only the low-noise end is
    penalised.
    """

    cond_dropout: float = 0.1
    t_sampling: str = "uniform"
    t_min: float = 1e-3
    cond_masks: str = "independent"  # how fields are hidden (genmat.nn.embeddings.drop_fields)
    penalty: Callable | None = None
    penalty_weights: Mapping[str, float] = field(default_factory=dict)
    penalty_t_max: float = 0.3

    def __post_init__(self) -> None:
        if self.t_sampling not in T_SAMPLING:
            raise InputError(f"t_sampling = {self.t_sampling!r}; allowed: {', '.join(T_SAMPLING)}")
        if not 0 <= self.cond_dropout < 1:
            raise InputError(f"cond_dropout = {self.cond_dropout} is outside the allowed range [0, 1)")
        if self.penalty_weights and self.penalty is None:
            raise InputError(f"penalty weights {dict(self.penalty_weights)} were given without a penalty function "
                             "(the modality's physics_penalty)")

    def sample_t(self, n: int, device, generator=None) -> torch.Tensor:
        if self.t_sampling == "logit_normal":
            t = torch.sigmoid(parallel.randn((n,), generator, device))
        else:
            t = parallel.rand((n,), generator, device)
        return self.t_min + (1 - self.t_min) * t

    def __call__(self, model: Denoiser, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch`` = (x0, values, mask) or (x0, values, mask, ε): a fourth tensor pairs each
        sample with its own noise (reflow: the coupling a trained flow induces)."""
        x0, values, data_mask, *paired = batch
        t = self.sample_t(x0.shape[0], x0.device, generator)
        eps = paired[0] if paired else parallel.randn(x0.shape, generator, x0.device)
        alpha, sigma = (append_dims(v, x0.dim()) for v in model.path.alpha_sigma(t))
        x_t = alpha * x0 + sigma * eps
        mask = drop_fields(data_mask, self.cond_dropout, generator, self.cond_masks)
        out = model(x_t, t, values * mask, mask)
        loss = (out - model.target(x0, eps, t)).square().mean()
        if self.penalty_weights:
            x0_hat = model.to_x0_eps(out, x_t, t)[0]
            terms = self.penalty(x0_hat, x0, values, data_mask)
            unknown = sorted(set(self.penalty_weights) - set(terms))
            if unknown:
                raise InputError(f"penalty terms {unknown} are not offered; allowed: {', '.join(sorted(terms))}")
            window = (t <= self.penalty_t_max).to(loss.dtype)
            for name, weight in self.penalty_weights.items():
                if weight:
                    loss = loss + weight * (terms[name] * window).mean()
        return loss


@dataclass(frozen=True)
class NoisyRegressionLoss:
    """Gaussian negative log-likelihood of the (normalised) condition fields under a
    regressor's (mean, log σ²) from noisy samples x_t of ``path``:
    E_t,ε Σ_f m_f [(μ_f − c_f)² / σ_f² + log σ_f²] / (2 Σ_f m_f). Fields not given (mask 0)
    are not supervised; ``t_max`` < 1 skips the pure-noise end where nothing is predictable."""

    path: str = "rectified_flow"
    t_min: float = 0.0
    t_max: float = 0.98

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x0, values, mask = batch[:3]
        t = self.t_min + (self.t_max - self.t_min) * parallel.rand((x0.shape[0],), generator, x0.device)
        eps = parallel.randn(x0.shape, generator, x0.device)
        alpha, sigma = (append_dims(v, x0.dim()) for v in NoisePath(self.path).alpha_sigma(t))
        mean, logvar = model(alpha * x0 + sigma * eps, t)
        nll = (mean - values).square() * torch.exp(-logvar) + logvar
        return 0.5 * (nll * mask).sum() / mask.sum().clamp(min=1)


def teacher_heun_step(path: NoisePath, predict, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """One Heun step of the probability-flow ODE from per-sample times t to s (B,) — Euler
    where s = 0 (as the samplers' last step)."""

    def velocity(x_, t_):
        x0, eps = predict(x_, t_)
        da, ds = (append_dims(v, x_.dim()) for v in path.derivatives(t_))
        return da * x0 + ds * eps

    h = append_dims(s - t, x.dim())
    d1 = velocity(x, t)
    euler = x + h * d1
    d2 = velocity(euler, s.clamp(min=1e-4))
    return torch.where(append_dims(s > 0, x.dim()), x + h * 0.5 * (d1 + d2), euler)


@dataclass
class ConsistencyDistillationLoss:
    """Consistency distillation (Song et al. 2023) from a frozen teacher's ODE.

    On a grid 0 = t_0 < … < t_N = 1: draw n, x_{t_{n+1}} = α x0 + σ ε, take one teacher
    Heun step (classifier-free guidance ``guidance``) to x̂_{t_n}, and regress the
    student's x̂0 at (x_{t_{n+1}}, t_{n+1}) onto its own (gradient-stopped) x̂0 at
    (x̂_{t_n}, t_n) — onto x̂_{t_n} itself where t_n = 0, the boundary condition f(x, 0) = x
    that anchors the chain. The student then maps any trajectory point to its end.
    """

    teacher: Denoiser
    n_grid: int = 18
    guidance: float = 1.0
    cond_dropout: float = 0.1

    def __call__(self, model: Denoiser, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x0, values, mask = batch[:3]
        mask = drop_fields(mask, self.cond_dropout, generator)
        grid = torch.linspace(0.0, 1.0, self.n_grid + 1, device=x0.device)
        n = parallel.randint(self.n_grid, (x0.shape[0],), generator, x0.device)
        t_hi, t_lo = grid[n + 1], grid[n]
        eps = parallel.randn(x0.shape, generator, x0.device)
        alpha, sigma = (append_dims(v, x0.dim()) for v in model.path.alpha_sigma(t_hi))
        x_hi = alpha * x0 + sigma * eps
        with torch.no_grad():
            teacher = classifier_free(self.teacher, values, mask, self.guidance)
            x_lo = teacher_heun_step(model.path, teacher, x_hi, t_hi, t_lo)
            target = model.predict(x_lo, t_lo.clamp(min=1e-4), values * mask, mask)[0]
            target = torch.where(append_dims(t_lo > 0, x0.dim()), target, x_lo)
        pred = model.predict(x_hi, t_hi, values * mask, mask)[0]
        return (pred - target).square().mean()
