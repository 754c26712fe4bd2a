"""Morphology descriptors of two-phase micrographs (PHYSICS.md §1), batched in torch.

Conventions: a micrograph is ``(B, 1, N, N)`` or ``(B, N, N)``; dim −2 is y (rows),
dim −1 is x (columns); the grid is periodic with spacing 1 pixel. Lengths are in
pixels, wavenumbers in rad/pixel. Everything runs on the input tensor's device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genmat.sim.materials import SimInputError

__all__ = [
    "phase_map",
    "volume_fraction",
    "radial_average",
    "two_point_correlation",
    "characteristic_length",
]


def _as_bnn(field: Tensor, name: str) -> Tensor:
    """Accept (B, 1, N, N) or (B, N, N); return a (B, N, N) view with square N×N."""
    if not isinstance(field, Tensor):
        raise SimInputError(name, type(field).__name__, "a torch.Tensor of shape (B, 1, N, N) or (B, N, N)")
    if field.dim() == 4 and field.shape[1] == 1:
        field = field[:, 0]
    if field.dim() != 3 or field.shape[-1] != field.shape[-2] or field.shape[-1] < 2:
        raise SimInputError(name, tuple(field.shape), "shape (B, 1, N, N) or (B, N, N) with N >= 2")
    return field if field.is_floating_point() else field.to(torch.float32)


def phase_map(c: Tensor, threshold: float = 0.0) -> Tensor:
    """Indicator of phase B: 1.0 where ``c > threshold``, else 0.0.

    ``c``: any shape, e.g. ``(B, 1, *S)`` or ``(B, *S)``; returns a float tensor of
    the same shape (dtype of ``c`` if floating, else float32).
    """
    dtype = c.dtype if c.is_floating_point() else torch.float32
    return (c > threshold).to(dtype)


def volume_fraction(phase: Tensor) -> Tensor:
    """Volume fraction φ = mean of the indicator over all non-batch dims: ``(B, ...) -> (B,)``."""
    if phase.dim() < 2:
        raise SimInputError("phase", tuple(phase.shape), "shape (B, *spatial) with at least one spatial dim")
    p = phase if phase.is_floating_point() else phase.to(torch.float32)
    return p.reshape(p.shape[0], -1).mean(dim=1)


def _shell_index(n: int, device: torch.device) -> tuple[Tensor, Tensor, int]:
    """Integer-radius shell of each pixel of an n×n periodic grid, measured from pixel (0, 0).

    Radius = round(periodic distance); shells 0..n//2 are kept, larger radii go to a
    dump bin of index n//2 + 1. Returns (index (n*n,), counts (n//2+2,), n_shells).
    """
    d = torch.arange(n, device=device)
    d = torch.minimum(d, n - d).to(torch.float64)
    r = torch.sqrt(d[:, None] ** 2 + d[None, :] ** 2)
    n_shells = n // 2 + 1
    idx = torch.round(r).long().clamp_max(n_shells)
    idx = idx.reshape(-1)
    counts = torch.bincount(idx, minlength=n_shells + 1)
    return idx, counts, n_shells


def radial_average(field: Tensor) -> Tensor:
    """Average of ``field`` over integer-radius shells about pixel (0, 0), periodic distance.

    ``field``: ``(B, N, N)`` (or ``(B, 1, N, N)``); returns ``(B, N//2 + 1)`` with entry r
    the mean over pixels whose periodic distance from the origin rounds to r
    (r = 0..N//2; corner pixels farther than N//2 are left out). Works for a
    real-space map (origin = zero lag) and for an unshifted FFT power spectrum
    (origin = zero wavenumber; shell r ↔ |k| = 2π r / N).
    """
    f = _as_bnn(field, "field")
    b, n = f.shape[0], f.shape[-1]
    idx, counts, n_shells = _shell_index(n, f.device)
    sums = torch.zeros(b, n_shells + 1, dtype=f.dtype, device=f.device)
    sums.index_add_(1, idx, f.reshape(b, -1))
    return sums[:, :n_shells] / counts[:n_shells].to(f.dtype)


def two_point_correlation(phase: Tensor) -> Tensor:
    """Radially averaged two-point correlation S2(r) of an indicator field.

    S2 map = IFFT(|FFT(I)|²) / N² (periodic autocorrelation), then shell-averaged.
    ``phase``: ``(B, 1, N, N)`` or ``(B, N, N)`` with values in {0, 1}; returns
    ``(B, N//2 + 1)`` for r = 0..N//2 pixels. S2(0) = φ; S2(r) → φ² at large r for
    a field without long-range order.
    """
    i = _as_bnn(phase, "phase")
    n = i.shape[-1]
    spec = torch.fft.rfft2(i)
    s2 = torch.fft.irfft2(spec.real**2 + spec.imag**2, s=(n, n)) / (n * n)
    return radial_average(s2)


def characteristic_length(c: Tensor) -> Tensor:
    """Characteristic length L = 2π / k1 in pixels, ``(B, 1, N, N)`` or ``(B, N, N)`` -> ``(B,)``.

    S(k) = |FFT(c − mean c)|², radially averaged over integer shells |k| = 2π r / N
    (r = 1..N//2); k1 = Σ k S(k) / Σ S(k). A uniform field (S ≡ 0) gives +inf.
    For c = cos(2π x / λ) with λ dividing N, L = λ exactly.
    """
    f = _as_bnn(c, "c")
    n = f.shape[-1]
    d = f - f.mean(dim=(-2, -1), keepdim=True)
    spec = torch.fft.fft2(d)
    s = radial_average(spec.real**2 + spec.imag**2)[:, 1:]  # (B, N//2), shells r = 1..N//2
    k = (2 * math.pi / n) * torch.arange(1, s.shape[1] + 1, device=f.device, dtype=f.dtype)
    total = s.sum(dim=1)
    k1 = (s * k).sum(dim=1) / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, 2 * math.pi / k1, torch.full_like(total, math.inf))
