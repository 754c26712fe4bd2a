"""Spinodal micrographs from the Cahn–Hilliard equation (PHYSICS.md §1).

    ∂c/∂τ = ∇²( c³ − c − κ ∇²c )        (mobility absorbed into τ = M(T) · t)

on a periodic N×N grid with spacing 1, integrated by the semi-implicit Fourier
scheme of Chen & Shen (1998) with a linear stabiliser A:

    ĉ(n+1) = [ (1 + Δt A k²) ĉ(n) − Δt k² FFT(c³ − c)(n) ] / [ 1 + Δt A k² + Δt κ k⁴ ]

The k = 0 mode is never changed, so the mean composition is conserved exactly
(the spectrum is carried from step to step; only the nonlinearity visits real space).

Processing parameters map to the model as
    c̄ = 2 x_B − 1,   τ = M0 · exp(−Q / (R T)) · t,
with M0 fixed by the anchor τ(T_ref_K, t_ref_s) = tau_ref.

Shapes: fields are ``(B, N, N)`` inside, micrographs ``(B, 1, N, N)``; dim −2 is y,
dim −1 is x. Everything runs on the input tensor's device, batched over B.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from genmat.sim.materials import SimInputError

__all__ = [
    "GAS_CONSTANT_J_MOLK",
    "PROCESSING_RANGES",
    "CahnHilliardConfig",
    "dimensionless_time",
    "evolve",
    "coarsening_series",
    "simulate_spinodal",
]

GAS_CONSTANT_J_MOLK = 8.314462618  # R, J/(mol·K)

#: Processing parameters as users give them: composition (atomic fraction of B),
#: anneal temperature (K) and anneal time (s). With the default config τ spans ≈ 60…900.
PROCESSING_RANGES: dict[str, tuple[float, float]] = {
    "x_B": (0.30, 0.70),
    "temperature_K": (750.0, 900.0),
    "time_s": (1800.0, 5400.0),
}

ArrayLike = Union[float, int, Sequence[float], Tensor]


@dataclass(frozen=True)
class CahnHilliardConfig:
    """Numerical and kinetic settings of the spinodal simulator.

    grid: N, pixels per side (periodic N×N grid, spacing 1).
    kappa: gradient-energy coefficient κ (pixels²); interface width ≈ √(2κ).
    dt_max: largest dimensionless time step Δτ.
    stabiliser: linear stabiliser A (PHYSICS §1); keeps Δτ ≈ 1 stable at the cost of
        an O(Δτ A k²) time-discretisation lag (the scheme is first order in Δτ).
    noise: amplitude of the zero-mean uniform initial fluctuation.
    activation_energy_J_mol: Q of the Arrhenius mobility M(T) = M0 exp(−Q/(R T)).
    T_ref_K, t_ref_s, tau_ref: anchor, τ(T_ref_K, t_ref_s) = tau_ref; fixes M0.
    """

    grid: int = 64
    kappa: float = 1.0
    dt_max: float = 1.0
    stabiliser: float = 2.0
    noise: float = 0.05
    activation_energy_J_mol: float = 60e3
    T_ref_K: float = 750.0
    t_ref_s: float = 1800.0
    tau_ref: float = 60.0

    def __post_init__(self) -> None:
        if not (isinstance(self.grid, numbers.Integral) and not isinstance(self.grid, bool) and self.grid >= 8):
            raise SimInputError("grid", self.grid, "an integer >= 8")
        for name in ("kappa", "dt_max", "T_ref_K", "t_ref_s", "tau_ref"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise SimInputError(name, v, "a finite number > 0")
        for name in ("stabiliser", "activation_energy_J_mol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SimInputError(name, v, "a finite number >= 0")
        if not (isinstance(self.noise, (int, float)) and 0 <= self.noise < 1):
            raise SimInputError("noise", self.noise, "a number in [0, 1)")

    @property
    def M0(self) -> float:
        """Arrhenius prefactor (1/s, in dimensionless-time units) fixed by the anchor."""
        q_rt = self.activation_energy_J_mol / (GAS_CONSTANT_J_MOLK * self.T_ref_K)
        return self.tau_ref / self.t_ref_s * math.exp(q_rt)


def _to_1d(x: ArrayLike, name: str, device: torch.device | None) -> Tensor:
    try:
        t = torch.as_tensor(x, dtype=torch.float64, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise SimInputError(name, x, "a float, a sequence of floats or a 1-D tensor") from err
    if t.dim() > 1:
        raise SimInputError(name, tuple(t.shape), "a scalar or a 1-D sequence/tensor of shape (B,)")
    if not bool(torch.isfinite(t).all()):
        raise SimInputError(name, x, "finite values")
    return t.reshape(-1)


def _summary(t: Tensor) -> object:
    return t.item() if t.numel() == 1 else f"tensor with range [{t.min().item():.6g}, {t.max().item():.6g}]"


def _check_in(t: Tensor, name: str, lo: float, hi: float, unit: str = "") -> None:
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if bool(((t < lo - tol) | (t > hi + tol)).any()):
        raise SimInputError(name, _summary(t), f"[{lo}, {hi}]{unit}")


def dimensionless_time(
    temperature_K: ArrayLike, time_s: ArrayLike, config: CahnHilliardConfig = CahnHilliardConfig()
) -> Tensor:
    """Dimensionless anneal time τ = M0 · exp(−Q / (R T)) · t, float64 ``(B,)``.

    ``temperature_K`` (> 0, kelvin) and ``time_s`` (≥ 0, seconds) broadcast against
    each other. With the default config τ(750 K, 1800 s) = 60.
    """
    dev = next((x.device for x in (temperature_K, time_s) if isinstance(x, Tensor)), None)
    T = _to_1d(temperature_K, "temperature_K", dev)
    t = _to_1d(time_s, "time_s", dev)
    if bool((T <= 0).any()):
        raise SimInputError("temperature_K", _summary(T), "values > 0 K")
    if bool((t < 0).any()):
        raise SimInputError("time_s", _summary(t), "values >= 0 s")
    T, t = torch.broadcast_tensors(T, t)
    q_r = config.activation_energy_J_mol / GAS_CONSTANT_J_MOLK
    return config.M0 * torch.exp(-q_r / T) * t


def _wavenumber_sq(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """k² on the rfft2 half-plane of an n×n grid with spacing 1: ``(n, n//2 + 1)``."""
    ky = 2 * math.pi * torch.fft.fftfreq(n, d=1.0, device=device, dtype=dtype)
    kx = 2 * math.pi * torch.fft.rfftfreq(n, d=1.0, device=device, dtype=dtype)
    return ky[:, None] ** 2 + kx[None, :] ** 2


def evolve(
    c0: Tensor,
    tau: ArrayLike,
    config: CahnHilliardConfig = CahnHilliardConfig(),
    n_steps: int | None = None,
    progress: bool = False,
) -> Tensor:
    """Integrate the Cahn–Hilliard equation from ``c0`` for dimensionless time ``tau``.

    c0: ``(B, N, N)`` float order parameter (any square N; ``config.grid`` is not used).
    tau: ``(B,)`` (or a scalar, broadcast) dimensionless end times ≥ 0.
    n_steps: number of steps shared by all samples; default ceil(max τ / dt_max).
        Sample i uses Δτ_i = τ_i / n_steps, so every sample ends exactly at τ_i.
    Returns c(τ): ``(B, N, N)``, same dtype/device as ``c0``; the mean of each sample
    is that of ``c0`` (the k = 0 mode is never touched).
    """
    if not isinstance(c0, Tensor) or c0.dim() != 3 or c0.shape[-1] != c0.shape[-2]:
        shape = tuple(c0.shape) if isinstance(c0, Tensor) else type(c0).__name__
        raise SimInputError("c0", shape, "a tensor of shape (B, N, N)")
    if not c0.is_floating_point():
        c0 = c0.to(torch.float32)
    b, n = c0.shape[0], c0.shape[-1]
    tau_t = _to_1d(tau, "tau", c0.device)
    if tau_t.numel() == 1:
        tau_t = tau_t.expand(b)
    if tau_t.shape != (b,):
        raise SimInputError("tau", tuple(tau_t.shape), f"shape ({b},) matching c0's batch")
    if bool((tau_t < 0).any()):
        raise SimInputError("tau", _summary(tau_t), "values >= 0")
    tau_max = float(tau_t.max()) if b > 0 else 0.0
    if n_steps is None:
        n_steps = max(1, math.ceil(tau_max / config.dt_max - 1e-9))
    if not (isinstance(n_steps, numbers.Integral) and n_steps >= 1):
        raise SimInputError("n_steps", n_steps, "an integer >= 1")

    # Per-sample step factors, built in float64 then cast: ĉ ← a ĉ − b FFT(c³ − c).
    k2 = _wavenumber_sq(n, c0.device, torch.float64)
    dt = (tau_t / n_steps)[:, None, None]
    denom = 1 + dt * config.stabiliser * k2 + dt * config.kappa * k2**2
    c_hat = torch.fft.rfft2(c0)
    # Complex-typed factors and preallocated buffers: in-place updates avoid
    # allocating ~MB temporaries every step (allocation dominated the CPU cost).
    fac_a = ((1 + dt * config.stabiliser * k2) / denom).to(c_hat.dtype)
    fac_b = (dt * k2 / denom).to(c_hat.dtype)
    c = torch.empty_like(c0)
    work = torch.empty_like(c0)
    nonlin = torch.empty_like(c_hat)
    for _ in tqdm(range(n_steps), desc="Cahn-Hilliard", disable=not progress, leave=False):
        torch.fft.irfft2(c_hat, s=(n, n), out=c)
        torch.mul(c, c, out=work)
        work.mul_(c).sub_(c)  # f'(c) = c³ − c
        torch.fft.rfft2(work, out=nonlin)
        c_hat.mul_(fac_a).addcmul_(fac_b, nonlin, value=-1)
    return torch.fft.irfft2(c_hat, s=(n, n))


def coarsening_series(
    c0: Tensor,
    taus: ArrayLike,
    config: CahnHilliardConfig = CahnHilliardConfig(),
    progress: bool = False,
) -> Tensor:
    """Snapshots of one Cahn–Hilliard run at increasing times, for coarsening studies.

    c0: ``(B, N, N)``; taus: ``(T,)`` strictly increasing dimensionless times > 0.
    Returns ``(T, B, N, N)``: c at each τ in ``taus`` (every sample shares the times;
    each interval is split into steps ≤ dt_max).
    """
    t = _to_1d(taus, "taus", c0.device if isinstance(c0, Tensor) else None)
    if t.numel() == 0 or bool((t <= 0).any()) or bool((t[1:] <= t[:-1]).any()):
        raise SimInputError("taus", _summary(t) if t.numel() else [], "strictly increasing values > 0")
    frames = []
    c, prev = c0, 0.0
    for tau in tqdm(t.tolist(), desc="coarsening", disable=not progress, leave=False):
        c = evolve(c, tau - prev, config)
        frames.append(c)
        prev = tau
    return torch.stack(frames)


def simulate_spinodal(
    x_B: ArrayLike,
    temperature_K: ArrayLike,
    time_s: ArrayLike,
    config: CahnHilliardConfig = CahnHilliardConfig(),
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    check_ranges: bool = True,
    progress: bool = False,
) -> Tensor:
    """Spinodal micrographs for processing parameters, ``(B, 1, N, N)`` float32, N = config.grid.

    x_B: atomic fraction of phase B; temperature_K: anneal temperature (K);
    time_s: anneal time (s). Each is a float, a sequence or a ``(B,)`` tensor; they
    broadcast to a common B. With ``check_ranges`` (default) every value must lie in
    ``PROCESSING_RANGES``; otherwise only physical limits apply (0 < x_B < 1, T > 0,
    t ≥ 0).

    Initial state: c = c̄ + noise · u with c̄ = 2 x_B − 1 and u ~ U(−1, 1) made
    zero-mean per sample, so each sample's mean is c̄ (float32 round-off aside).
    Randomness comes from ``generator`` if given, else a generator seeded with
    ``seed`` on ``device``, else torch's global RNG. Same seed, same device → same output.
    device: default = the device of any tensor input, else CUDA if available, else CPU.
    """
    if device is None:
        device = next((x.device for x in (x_B, temperature_K, time_s) if isinstance(x, Tensor)), None)
        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    xb = _to_1d(x_B, "x_B", device)
    T = _to_1d(temperature_K, "temperature_K", device)
    t = _to_1d(time_s, "time_s", device)
    if check_ranges:
        _check_in(xb, "x_B", *PROCESSING_RANGES["x_B"])
        _check_in(T, "temperature_K", *PROCESSING_RANGES["temperature_K"], " K")
        _check_in(t, "time_s", *PROCESSING_RANGES["time_s"], " s")
    elif bool(((xb <= 0) | (xb >= 1)).any()):
        raise SimInputError("x_B", _summary(xb), "the open interval (0, 1)")
    try:
        xb, T, t = torch.broadcast_tensors(xb, T, t)
    except RuntimeError as err:
        raise SimInputError(
            "x_B/temperature_K/time_s", (xb.numel(), T.numel(), t.numel()), "lengths that broadcast (equal or 1)"
        ) from err
    tau = dimensionless_time(T, t, config)

    b, n = xb.shape[0], int(config.grid)
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    u = torch.rand((b, n, n), generator=generator, device=device, dtype=torch.float32) * 2 - 1
    u = u - u.mean(dim=(-2, -1), keepdim=True)
    c_bar = (2 * xb - 1).to(torch.float32)[:, None, None]
    c0 = c_bar + config.noise * u
    return evolve(c0, tau, config, progress=progress)[:, None]
