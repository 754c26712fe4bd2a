"""Guidance: turns a conditional denoiser into a ``predict(x, t) -> (x0, ε)`` callable."""

from __future__ import annotations

from typing import Callable

import torch

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
