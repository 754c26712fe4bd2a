"""A conditional normalizing flow: exact likelihood, one inverse pass per sample, and the
likelihood as an out-of-distribution score for any candidate (from any generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from genmat.methods.base import Method
from genmat.nn.embeddings import drop_fields
from genmat.nn.flow_nets import ConditionalFlow


class FlowNLLLoss:
    """−log p(x | c) per value of x (nats), condition fields dropped per field."""

    def __init__(self, cond_dropout: float = 0.1, cond_masks: str = "independent") -> None:
        self.cond_dropout, self.cond_masks = cond_dropout, cond_masks

    def __call__(self, model: ConditionalFlow, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x, values, mask = batch[:3]
        mask = drop_fields(mask, self.cond_dropout, generator, self.cond_masks)
        return -model.log_prob(x, values * mask, mask).mean() / x[0].numel()


class FlowMethod(Method):
    name = "normalizing_flow"

    def build(self) -> ConditionalFlow:
        f = self.config.flow
        return ConditionalFlow(self.config.unet, levels=f.levels, steps=f.steps, hidden=f.hidden)

    def loss(self) -> FlowNLLLoss:
        return FlowNLLLoss(self.config.cond_dropout, self.config.cond_masks)

    def sample(self, model, values, mask, sampler, gen, *, regressor=None, progress=False):
        device = next(model.parameters()).device
        z = torch.randn((values.shape[0], *self.latent_shape()), generator=gen) * self.config.flow.temperature
        return model.inverse(z.to(device), values.to(device), mask.to(device))

    def latent_shape(self) -> tuple[int, ...]:
        c, *spatial = self.sample_shape
        f = 2 ** self.config.flow.levels
        return (c * f ** len(spatial), *(s // f for s in spatial))


@torch.no_grad()
def nll_per_value(model: ConditionalFlow, x, values=None, mask=None, batch_size: int = 256) -> np.ndarray:
    """−log p(x | c) / D (nats per value) for samples ``(B, C, *S)``."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, x.shape[0], batch_size):
        sl = slice(s, s + batch_size)
        v = None if values is None else values[sl].to(device)
        m = None if mask is None else mask[sl].to(device)
        out.append((-model.log_prob(x[sl].to(device), v, m) / x[0].numel()).cpu())
    return torch.cat(out).double().numpy()


def ood_scores(model: ConditionalFlow, candidates, reference, values=None, mask=None,
               ref_values=None, ref_mask=None, alpha: float = 0.01) -> pd.DataFrame:
    """Out-of-distribution score of candidates under a flow trained on the data:
    ``flow_nll`` (nats per value) and ``flow_pvalue`` = the share of reference (e.g. held-out
    training) samples whose NLL is at least the candidate's — small means unlike the data;
    ``flow_in_distribution`` = p-value > ``alpha``. A score offered to the report, not a check."""
    nll = nll_per_value(model, candidates, values, mask)
    ref = np.sort(nll_per_value(model, reference, ref_values, ref_mask))
    pvalue = 1.0 - np.searchsorted(ref, nll, side="left") / len(ref)
    return pd.DataFrame({"flow_nll": nll, "flow_pvalue": pvalue, "flow_in_distribution": pvalue > alpha})
