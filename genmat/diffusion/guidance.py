"""Guidance: turns a conditional denoiser into a ``predict(x, t) -> (x0, ε)`` callable —
classifier-free (one conditional model) and classifier (regressor) guidance (a separate
noise-aware predictor of the conditioned quantities)."""

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
