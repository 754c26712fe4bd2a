"""Two-phase material data: elastic constants, density, conductivity.

Phase A is the matrix (order parameter c < 0), phase B the stiff phase (c > 0).
All moduli are in GPa, densities in g/cm³, thermal conductivities in W/(m·K).

Default pair (PHYSICS.md §3), room-temperature handbook values:

- phase A, aluminium-like matrix: E = 70 GPa, ν = 0.33, ρ = 2.70 g/cm³,
  k = 237 W/(m·K) (pure Al; CRC Handbook of Chemistry and Physics, ASM Handbook
  vol. 2).
- phase B, SiC-like stiff phase: E = 410 GPa, ν = 0.14, ρ = 3.21 g/cm³,
  k = 120 W/(m·K) (dense sintered α-SiC; typical data-sheet values, cf. Munro,
  J. Phys. Chem. Ref. Data 26 (1997) 1195, which gives E ≈ 415 GPa, ν ≈ 0.16,
  k ≈ 114 W/(m·K) at 20 °C).

Lamé constants are the 3-D ones, λ = E ν / ((1 + ν)(1 − 2ν)), μ = E / (2(1 + ν));
plane strain uses them unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import Tensor

from genmat.errors import InputError

Number = Union[float, int]
ArrayLike = Union[Number, Sequence[Number], Tensor]

__all__ = [
    "SimInputError",
    "TwoPhaseMaterial",
    "lame_constants",
    "density",
    "volume_fraction_from_density",
]


class SimInputError(InputError):
    """A user-supplied value is outside its allowed range (or has a bad shape).

    Attributes: ``field`` (name of the offending argument), ``value`` (what was
    given, possibly summarised) and ``allowed`` (the allowed range or shape, as text).
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field}={value!r} is invalid; allowed: {allowed}", field=field, value=value,
                         allowed=allowed)


def _check_non_negative(field: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise SimInputError(field, value, "a finite number >= 0 (0 for E and k: a void phase)")


@dataclass(frozen=True)
class TwoPhaseMaterial:
    """Isotropic two-phase material; A = matrix (c < 0), B = stiff phase (c > 0).

    Units: E in GPa, ρ in g/cm³, k in W/(m·K); ν dimensionless in (−1, 0.5).
    A void phase (pores) has E = 0 and k = 0 (and ρ = 0); homogenise it with
    ``scheme="rotated"``, on which the conjugate-gradient solver converges.
    """

    E_A_GPa: float = 70.0  # aluminium-like matrix
    nu_A: float = 0.33
    rho_A_g_cm3: float = 2.70
    k_A_W_mK: float = 237.0
    E_B_GPa: float = 410.0  # SiC-like stiff phase
    nu_B: float = 0.14
    rho_B_g_cm3: float = 3.21
    k_B_W_mK: float = 120.0

    def __post_init__(self) -> None:
        for name in ("E_A_GPa", "rho_A_g_cm3", "k_A_W_mK", "E_B_GPa", "rho_B_g_cm3", "k_B_W_mK"):
            _check_non_negative(name, getattr(self, name))
        for a, b in (("E_A_GPa", "E_B_GPa"), ("k_A_W_mK", "k_B_W_mK")):
            if getattr(self, a) == 0 and getattr(self, b) == 0:
                raise SimInputError(b, 0.0, f"a number > 0 when {a} = 0 (only one phase may be void)")
        for name in ("nu_A", "nu_B"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and -1.0 < v < 0.5):
                raise SimInputError(name, v, "Poisson ratio in the open interval (-1, 0.5)")
        if self.rho_A_g_cm3 == self.rho_B_g_cm3:
            raise SimInputError(
                "rho_B_g_cm3", self.rho_B_g_cm3, "a density different from rho_A_g_cm3"
            )

    @property
    def lame_A(self) -> tuple[float, float]:
        """(λ, μ) of phase A in GPa."""
        return lame_constants(self.E_A_GPa, self.nu_A)

    @property
    def lame_B(self) -> tuple[float, float]:
        """(λ, μ) of phase B in GPa."""
        return lame_constants(self.E_B_GPa, self.nu_B)


def lame_constants(E: ArrayLike, nu: ArrayLike) -> tuple:
    """3-D Lamé constants (λ, μ) from Young's modulus E and Poisson ratio ν.

    λ = E ν / ((1 + ν)(1 − 2ν)), μ = E / (2 (1 + ν)); same units as E. Floats in
    give floats out; tensors broadcast.
    """
    if isinstance(E, (int, float)) and isinstance(nu, (int, float)):
        return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    E_t, nu_t = torch.as_tensor(E), torch.as_tensor(nu)
    return E_t * nu_t / ((1 + nu_t) * (1 - 2 * nu_t)), E_t / (2 * (1 + nu_t))


def _as_float_tensor(x: ArrayLike) -> Tensor:
    if not isinstance(x, Tensor):
        return torch.as_tensor(x, dtype=torch.float64)
    return x if x.is_floating_point() else x.to(torch.float64)


def density(phi: ArrayLike, material: TwoPhaseMaterial = TwoPhaseMaterial()) -> Tensor:
    """Rule-of-mixtures density ρ = φ ρ_B + (1 − φ) ρ_A in g/cm³.

    ``phi``: volume fraction of phase B, any shape, values in [0, 1].
    """
    p = _as_float_tensor(phi)
    if bool(((p < 0) | (p > 1) | ~torch.isfinite(p)).any()):
        raise SimInputError("phi", phi if p.numel() == 1 else "tensor", "values in [0, 1]")
    return p * material.rho_B_g_cm3 + (1 - p) * material.rho_A_g_cm3


def volume_fraction_from_density(
    rho: ArrayLike, material: TwoPhaseMaterial = TwoPhaseMaterial(), *, strict: bool = True
) -> Tensor:
    """Volume fraction φ of phase B giving density ``rho`` (g/cm³), inverse of ``density``.

    With ``strict`` (default) a density outside [min(ρ_A, ρ_B), max(ρ_A, ρ_B)]
    raises :class:`SimInputError`; otherwise the unclipped φ is returned (it is
    then outside [0, 1], which callers can use as an infeasibility signal).
    """
    r = _as_float_tensor(rho)
    lo, hi = sorted((material.rho_A_g_cm3, material.rho_B_g_cm3))
    if strict:
        eps = 1e-9 * hi
        if bool(((r < lo - eps) | (r > hi + eps) | ~torch.isfinite(r)).any()):
            raise SimInputError(
                "rho_g_cm3", rho if r.numel() == 1 else "tensor", f"values in [{lo}, {hi}] g/cm³"
            )
    return (r - material.rho_A_g_cm3) / (material.rho_B_g_cm3 - material.rho_A_g_cm3)
