"""Guidance: turns a conditional denoiser into a ``predict(x, t) -> (x0, ε)`` callable —
classifier-free (one conditional model), classifier (regressor) guidance (a separate
noise-aware predictor of the conditioned quantities) and physics guidance (a differentiable
physics model of the denoised estimate)."""

from __future__ import annotations

from typing import Callable

import torch

from genmat.diffusion.paths import NoisePath, append_dims
from genmat.diffusion.precond import Denoiser

Predictor = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def classifier_free(
    model: Denoiser, values: torch.Tensor, mask: torch.Tensor, scale: float = 1.0
) -> Predictor:
    """Classifier-free guidance (Ho & Salimans 2022): F̃ = F(x, ∅) + w (F(x, c) − F(x, ∅)).

    The unconditional branch drops every field (mask 0). Because x0 and ε are linear
    in F, guiding F guides both. ``scale`` w = 1 is the plain conditional model,
    w = 0 the unconditional one; both branches run as one batch of 2B.
    """
    if scale == 1.0:
        return lambda x, t: model.predict(x, t, values * mask, mask)
    null = torch.zeros_like(mask)

    def predict(x: torch.Tensor, t: torch.Tensor):
        out = model(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([values * mask, null]), torch.cat([mask, null])
        )
        cond, uncond = out.chunk(2)
        return model.to_x0_eps(uncond + scale * (cond - uncond), x, t)

    return predict


GradLogLik = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def classifier_guided(predict: Predictor, path: NoisePath, grad_log_lik: GradLogLik, scale: float = 1.0,
                      alpha_min: float = 0.05) -> Predictor:
    """Classifier guidance (Dhariwal & Nichol 2021), written for any Gaussian path.

    With g = ∇_x log p(y | x_t) from a noise-aware predictor, the guided score is
    ∇ log p(x_t) + s·g, i.e. ε̃ = ε̂ − s σ g and x̂0' = x̂0 + s (σ²/α) g (so that
    x_t = α x̂0' + σ ε̃ still holds). α is floored at ``alpha_min`` in that ratio: near pure
    noise (α → 0) a learned predictor's gradient does not vanish as the exact one does.
    ``scale`` s = 0 is the unguided model; s = 1 samples p(x | y) for exact ingredients.
    """
    if scale == 0:
        return predict

    def guided(x: torch.Tensor, t: torch.Tensor):
        x0, eps = predict(x, t)
        alpha, sigma = (append_dims(v, x.dim()).to(x.dtype) for v in path.alpha_sigma(t))
        g = grad_log_lik(x, t)
        return x0 + scale * sigma.square() / alpha.clamp(min=alpha_min) * g, eps - scale * sigma * g

    return guided


LossFn = Callable[[torch.Tensor], torch.Tensor]


class PhysicsGuidance:
    """Physics guidance: a differentiable physics model's misfit of the denoised estimate,
    back-propagated to x_t through the denoiser (as in diffusion posterior sampling, Chung
    et al. 2023), and the prediction corrected.

    ``loss(x̂0) -> (B,)`` is a negative log-likelihood of the targets given the sample, e.g.
    ½ Σ ((property − target) / tolerance)². At each guided call x̂0(x_t) is formed with
    gradients and g = ∇_{x_t} loss(x̂0(x_t)). Since ∂x̂0/∂x_t ≈ 1/α on the data manifold,
    α g is the data-space gradient projected by the denoiser, and the correction is a step
    of ``scale`` along it: x̂0' = x̂0 − s α g, with ε̂' = (x_t − α x̂0')/σ so that
    x_t = α x̂0' + σ ε̂' still holds (the classifier-guidance weighting s σ²/α instead grows
    without bound as α → 0 and wrecked the micrographs). It wraps any predictor
    (classifier-free guidance included), so every sampler uses it. The schedule: guide only
    while ``t_min`` ≤ t ≤ ``t_max``. ``evaluations`` counts the physics model's forward +
    adjoint evaluations, one per sample per guided call.
    """

    def __init__(self, predict: Predictor, path: NoisePath, loss: LossFn, scale: float = 1.0, *,
                 t_max: float = 1.0, t_min: float = 0.0, max_step: float | None = None) -> None:
        self.predict, self.path, self.loss, self.scale = predict, path, loss, scale
        self.t_max, self.t_min, self.max_step = t_max, t_min, max_step
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        tt = float(t.max())
        if self.scale == 0 or tt > self.t_max or tt < self.t_min:
            return self.predict(x, t)
        with torch.enable_grad():
            xg = x.detach().float().requires_grad_(True)
            x0, eps = self.predict(xg, t)
            (grad,) = torch.autograd.grad(self.loss(x0.float()).sum(), xg)
        self.evaluations += x.shape[0]
        alpha, sigma = (append_dims(v, x.dim()).to(x.dtype) for v in self.path.alpha_sigma(t))
        step = self.scale * alpha * grad.to(x.dtype)
        if self.max_step is not None:  # a trust region: RMS of the correction per sample
            rms = step.flatten(1).square().mean(dim=1).sqrt()
            step = step * append_dims((self.max_step / rms.clamp(min=1e-12)).clamp(max=1.0), x.dim())
        x0 = x0.detach() - step
        eps = torch.where(sigma > 0, (x - alpha * x0) / sigma.clamp(min=1e-12), eps.detach())
        return x0, eps
