"""Embeddings of diffusion time and of masked continuous conditions."""

from __future__ import annotations

import math

import torch
from torch import nn

from genmat import parallel
from genmat.errors import InputError


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of a time ``t`` in [0, 1], followed by an MLP.

    ``t`` is scaled by 1000 first so that the usual 10 000 max period spans the
    whole interval (without the scale the embedding is nearly constant on [0, 1]).

    Shapes: ``t`` (B,) -> (B, dim).
    """

    def __init__(self, dim: int, scale: float = 1000.0) -> None:
        super().__init__()
        self.dim, self.scale = dim, scale
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = (t.float() * self.scale)[:, None] * self.freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class ConditionEmbedding(nn.Module):
    """Embed F continuous condition fields, any subset of which may be given.

    Each field value v in [-1, 1] is lifted with Fourier features
    ``sin(2^k π v), cos(2^k π v)`` for k = 0..n_freq-1 (scaled so that nearby
    values stay separable), masked, and concatenated with the mask itself, so that
    "field not given" (mask 0) differs from "field given as 0". An MLP maps the
    result to ``dim``.

    Shapes: ``values`` (B, F), ``mask`` (B, F) -> (B, dim).
    """

    def __init__(self, n_fields: int, dim: int, n_freq: int = 6) -> None:
        super().__init__()
        self.n_fields = n_fields
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq), persistent=False)
        in_features = n_fields * (2 * n_freq + 2)
        self.mlp = nn.Sequential(nn.Linear(in_features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        values, mask = values.float() * mask.float(), mask.float()
        angles = values[..., None] * self.freqs  # (B, F, n_freq)
        feats = torch.cat([angles.sin(), angles.cos()], dim=-1) * mask[..., None]
        feats = torch.cat([feats.flatten(1), values, mask], dim=-1)
        return self.mlp(feats)


MASK_SCHEMES = ("subsets", "independent")


def drop_fields(mask: torch.Tensor, p: float, generator: torch.Generator | None = None,
                scheme: str = "independent") -> torch.Tensor:
    """Hide condition fields in training so that one model serves any subset of them.

    ``scheme``:
    - ``"independent"``: each given field is dropped with probability p (classifier-free
      guidance as usually written). With F fields the subsets users ask for are rare:
      only 2 of 6 fields given happens with probability p⁴(1 − p)² ≈ 8·10⁻⁵ at p = 0.1.
    - ``"subsets"``: with probability p every field is dropped (the unconditional branch
      of classifier-free guidance); otherwise the number of kept fields k is uniform on
      1..n (n = the fields given in the row) and the kept ones are a uniform k-subset.
      Every subset size is then equally common; each particular 2-of-6 subset is seen
      with probability (1 − p)/(6 · 15) ≈ 1 %.
    """
    if scheme not in MASK_SCHEMES:
        raise InputError(f"condition mask scheme = {scheme!r}; allowed: {', '.join(MASK_SCHEMES)}")
    if scheme == "independent":
        if p <= 0:
            return mask
        keep = parallel.rand(mask.shape, generator, mask.device) >= p
        return mask * keep.to(mask.dtype)
    b, f = mask.shape
    given = mask > 0
    n = given.sum(dim=1)
    u = parallel.rand((b, f), generator, mask.device)
    u = torch.where(given, u, torch.full_like(u, 2.0))  # fields not given rank last
    rank = u.argsort(dim=1).argsort(dim=1)
    k = (parallel.rand((b,), generator, mask.device) * n).floor() + 1  # uniform on 1..n
    keep = (rank < k[:, None]) & given
    drop_all = parallel.rand((b,), generator, mask.device) < p
    return mask * (keep & ~drop_all[:, None]).to(mask.dtype)
