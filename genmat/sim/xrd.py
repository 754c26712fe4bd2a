"""X-ray powder diffraction oracle (PHYSICS.md §4): Cu Kα patterns of phase mixtures.

Given weight fractions of library phases, crystallite size L, microstrain ε and
temperature T, a pattern on a fixed 2θ axis (default 10–90°, 1024 points) is

    y(2θ) = Σ_i w_i Σ_hkl S · I_i,hkl · pV(2θ; 2θ_hkl(T), β_hkl) · Δ2θ  +  background  (+ Poisson noise)

- positions: Bragg, λ = 2 d sin θ, with d(T) = d(298 K)·(1 + α_i (T − 298 K)) (isotropic
  linear thermal expansion);
- intensities I_i,hkl: pymatgen's |F|²·Lp·m per unit **weight fraction** relative to
  corundum (:mod:`genmat.sim.xrd_library`; a phase's strongest line is its RIR, I/I_c).
  Convention: fractions are weight fractions, all phases share one mass absorption
  coefficient (no microabsorption), no preferred orientation, no Debye–Waller damping.
  S (``counts_per_rir``) is the total counts of a line of RIR 1 in a pure sample;
- profile: area-normalised pseudo-Voigt with FWHM β² = β_instr² + β_size² + β_strain²,
  β_size = K λ / (L cos θ) (Scherrer), β_strain = 4 ε tan θ (Williamson–Hall), in radians
  of 2θ; a monochromatic Kα line (no Kα2 doublet).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genmat.sim.materials import SimInputError
from genmat.sim.spectra import BackgroundPrior, LineOracle, LineSet, SpectrumAxis, array_function, as_tensor, check_state
from genmat.sim.xrd_library import LIBRARY_PATH

ROOM_TEMPERATURE_K = 298.15


@dataclass(frozen=True)
class XRDPhase:
    name: str
    formula: str
    space_group: str
    density_g_cm3: float
    alpha_per_K: float
    d_A: np.ndarray  # interplanar spacings at 298 K
    hkl: tuple[str, ...]
    intensity: np.ndarray  # per unit weight fraction, relative to corundum's strongest line
    rir: float


@functools.lru_cache(maxsize=1)
def phase_library() -> dict[str, XRDPhase]:
    """The shipped phase library (built offline with pymatgen)."""
    raw = json.loads(LIBRARY_PATH.read_text())["phases"]
    return {
        name: XRDPhase(
            name, p["formula"], p["space_group"], p["density_g_cm3"], p["alpha_per_K"],
            np.asarray(p["d_A"]), tuple(p["hkl"]), np.asarray(p["intensity"]), p["rir"],
        )
        for name, p in raw.items()
    }


def check_phases(phases) -> tuple[str, ...]:
    """Phase names, each known to the library, none repeated."""
    known = phase_library()
    phases = tuple(phases)
    if not phases:
        raise SimInputError("phases", "()", "one or more of: " + ", ".join(known))
    for p in phases:
        if p not in known:
            raise SimInputError("phases", p, "one of: " + ", ".join(known))
    if len(set(phases)) != len(phases):
        raise SimInputError("phases", ", ".join(phases), "distinct names")
    return phases


@dataclass(frozen=True)
class XRDConfig:
    axis: SpectrumAxis = SpectrumAxis(10.0, 90.0, 1024, "2θ (°)")
    wavelength_A: float = 1.54184  # Cu Kα (weighted mean of Kα1 and Kα2, as in pymatgen)
    instrument_fwhm_deg: float = 0.06
    eta: float = 0.5  # Lorentzian fraction of the pseudo-Voigt
    scherrer_k: float = 0.9
    counts_per_rir: float = 8000.0  # total counts of a line of I/I_c = 1 in a pure phase
    background: BackgroundPrior = field(default_factory=BackgroundPrior)


@array_function
def two_theta_deg(d_A, wavelength_A):
    """Bragg angle 2θ (degrees) of spacing d; NaN where λ/2d > 1 (no reflection)."""
    s = wavelength_A / (2 * d_A)
    # clamped below 1 so that the NaN branch never sends an infinite slope back
    return torch.where(s <= 1, 2 * torch.rad2deg(torch.asin(s.clamp(max=1 - 1e-9))), torch.nan)


@array_function
def expanded_spacing(d_A, alpha_per_K, temperature_K):
    """d(T) = d(298 K)·(1 + α (T − 298 K)), broadcast to ``(B, K)``."""
    t = temperature_K.reshape(-1, 1)
    return d_A[None, :] * (1 + alpha_per_K * (t - ROOM_TEMPERATURE_K))


@array_function
def line_fwhm_deg(two_theta, size_nm, strain, config: XRDConfig = XRDConfig()):
    """FWHM (degrees 2θ): β² = β_instr² + (Kλ/(L cos θ))² + (4 ε tan θ)²."""
    theta = torch.deg2rad(two_theta) / 2
    beta_size = config.scherrer_k * config.wavelength_A / (10 * size_nm * torch.cos(theta))
    beta_strain = 4 * strain * torch.tan(theta)
    beta_instr = math.radians(config.instrument_fwhm_deg)
    return torch.rad2deg(torch.sqrt(beta_instr**2 + beta_size**2 + beta_strain**2))


def scherrer_size_nm(fwhm_deg, two_theta, strain=0.0, config: XRDConfig = XRDConfig()) -> np.ndarray:
    """Crystallite size (nm) from a line's FWHM (degrees 2θ) by Scherrer, after removing
    the instrumental and strain widths in quadrature; NaN if nothing is left for size."""
    theta = np.radians(np.asarray(two_theta, dtype=float)) / 2
    beta2 = (np.radians(np.asarray(fwhm_deg, dtype=float)) ** 2 - np.radians(config.instrument_fwhm_deg) ** 2
             - (4 * np.asarray(strain, dtype=float) * np.tan(theta)) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta_size = np.where(beta2 > 0, np.sqrt(np.clip(beta2, 0, None)), np.nan)
        return config.scherrer_k * config.wavelength_A / (beta_size * np.cos(theta)) / 10


class XRD(LineOracle):
    """Technique object of the XRD oracle: the lines of a phase set for given conditions."""

    name = "xrd"
    family = "diffraction"

    def __init__(self, config: XRDConfig | None = None) -> None:
        super().__init__(config or XRDConfig())

    def check_phases(self, phases) -> tuple[str, ...]:
        return check_phases(phases)

    @array_function
    def line_positions(self, phases, temperature_K):
        """Centres ``(B, K)`` (degrees 2θ at each temperature) and phase index ``(K,)``."""
        lib = phase_library()
        phases = check_phases(phases)
        t = torch.atleast_1d(temperature_K)
        centers, index = [], []
        for i, name in enumerate(phases):
            ph = lib[name]
            centers.append(two_theta_deg(expanded_spacing(as_tensor(ph.d_A, t), ph.alpha_per_K, t), self.config.wavelength_A))
            index.append(np.full(len(ph.d_A), i))
        return torch.cat(centers, dim=1), np.concatenate(index)

    @array_function
    def lines(self, phases, *, size_nm, strain, temperature_K) -> LineSet:
        """Lines for conditions ``(B,)`` (numpy or, differentiably, tensors)."""
        size, strain, t = check_state(size_nm, strain, temperature_K)
        lib = phase_library()
        centers, index = self.line_positions(phases, t)
        strength = as_tensor(np.concatenate([lib[p].intensity for p in check_phases(phases)]), t) * self.config.counts_per_rir
        valid = torch.isfinite(centers)
        centers = torch.where(valid, centers, -1e3)  # no reflection: far off the axis, zero area below
        fwhm = line_fwhm_deg(torch.where(valid, centers, 90.0), size[:, None], strain[:, None], self.config)
        strength = strength.expand(centers.shape) * valid
        return LineSet(centers, fwhm, strength, index, len(phases))

    def width_to_size(self, fwhm, center, strain, *, phases=None, temperature_K=None) -> np.ndarray:
        """Scherrer size (nm) of a line of FWHM ``fwhm`` at ``center`` (phases and
        temperature do not enter: accepted for the interface shared with Raman)."""
        return scherrer_size_nm(fwhm, center, strain, self.config)
