"""Core-loss EELS spectra with their low-loss spectrum (PHYSICS.md §6), built on exspy.

What exspy provides is the physics that is hard to re-derive: the ionisation edges'
cross sections (``EELSCLEdge`` with hydrogenic GOS, K and L shells; onsets from exspy's
element database) and the Drude volume-plasmon loss function (``VolumePlasmonDrude``).
This module assembles a measurement from them:

- **Low-loss** J_l(E): a Gaussian zero-loss peak Z (FWHM = the energy resolution) and
  plural plasmon scattering for a thickness t/λ as a Poisson series, written in Fourier
  space, j(ν) = z(ν) · exp(t/λ · (p(ν) − 1)), with p the unit-area single-plasmon loss
  function. So I_0 = I_total · e^(−t/λ) exactly: the log-ratio method
  t/λ = ln(I_total / I_0) recovers t/λ, and the Fourier-log deconvolution
  s = Z · ln(j / z) recovers t/λ · p (tests/sim/test_eels.py checks both with exspy's
  own implementations).
- **Core-loss** J_k(E) = s_k ⊗ J_l (Egerton's relation behind the Fourier-ratio method):
  the single-scattering distribution s_k = A·E^(−r) + Σ_i n_i σ_i(E) — a power-law
  background and one edge per element, n_i ∝ (atomic fraction) × (t/λ) atoms per area —
  convolved with the low-loss, which brings the edges' plural scattering.
- Poisson noise on both, at the dose of :class:`EELSConfig`.

A sample is ``(2, N)``: channel 0 the low-loss on ``low_loss_axis``, channel 1 the core
loss on ``core_loss_axis``, both at the same dispersion (so one convolves the other).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve

from genmat.sim.materials import SimInputError

__all__ = ["EELS_ELEMENTS", "EELSConfig", "EnergyAxis", "edge_cross_sections", "edge_onsets", "eels_signal",
           "low_loss", "simulate_eels"]

#: the elements and the edge exspy models for each (hydrogenic GOS: K and L shells)
EELS_ELEMENTS = {"C": "K", "N": "K", "Ti": "L3", "O": "K", "Fe": "L3"}


@dataclass(frozen=True)
class EnergyAxis:
    offset: float  # eV of the first channel
    scale: float  # eV per channel (the dispersion)
    n: int

    @property
    def x(self) -> np.ndarray:
        return self.offset + self.scale * np.arange(self.n)

    def index(self, energy: float) -> int:
        return int(round((energy - self.offset) / self.scale))


@dataclass(frozen=True)
class EELSConfig:
    n: int = 1024
    dispersion_eV: float = 0.5
    core_offset_eV: float = 250.0  # core loss 250–761.5 eV: C K … Fe L2,3
    low_offset_eV: float = -20.0  # low loss −20–491.5 eV
    beam_energy_keV: float = 200.0
    convergence_mrad: float = 10.0
    collection_mrad: float = 20.0
    resolution_eV: float = 1.0  # FWHM of the zero-loss peak
    plasmon_eV: float = 22.0  # a transition-metal oxide's bulk plasmon
    plasmon_fwhm_eV: float = 8.0
    low_loss_counts: float = 2.0e5  # electrons in the low-loss spectrum (all of them)
    core_exposure: float = 6.0e5  # core-loss counts per unit single scattering (longer exposure)
    edge_strength: float = 0.6  # atoms per area of a pure element at t/λ = 1 (arbitrary units)
    background_r: tuple[float, float] = (2.8, 3.4)  # power-law exponent, drawn per sample
    background_A: float = 2.4e4  # A · E^-r at t/λ = 1 (× E_ref^r so that A is the level at E_ref)
    background_ref_eV: float = 250.0
    kernel_eV: float = 170.0  # the low loss beyond this is not convolved (below 1e-4 of it at t/λ ≤ 1.5)
    elements: tuple[str, ...] = tuple(EELS_ELEMENTS)

    @property
    def core_loss_axis(self) -> EnergyAxis:
        return EnergyAxis(self.core_offset_eV, self.dispersion_eV, self.n)

    @property
    def low_loss_axis(self) -> EnergyAxis:
        return EnergyAxis(self.low_offset_eV, self.dispersion_eV, self.n)


@lru_cache(maxsize=1)
def _quiet_exspy() -> None:
    """exspy/hyperspy warn about optional accelerators at import and model build (once per
    process: the warning filters would otherwise pile up)."""
    for name in ("hyperspy", "exspy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="hyperspy")
    warnings.filterwarnings("ignore", module="exspy")


def eels_signal(data: np.ndarray, axis: EnergyAxis, config: EELSConfig):
    """An exspy ``EELSSpectrum`` of ``data`` (…, N) on ``axis``, with the microscope of ``config``."""
    _quiet_exspy()
    from exspy.signals import EELSSpectrum

    s = EELSSpectrum(np.asarray(data, dtype=float))
    ax = s.axes_manager[-1]
    ax.offset, ax.scale, ax.units, ax.name = axis.offset, axis.scale, "eV", "Energy loss"
    s.set_microscope_parameters(beam_energy=config.beam_energy_keV, convergence_angle=config.convergence_mrad,
                                collection_angle=config.collection_mrad)
    return s


def edge_onsets(elements=tuple(EELS_ELEMENTS)) -> dict[str, float]:
    """Each element's edge onset (eV) from exspy's element database."""
    return dict(_edge_onsets(tuple(elements)))


@lru_cache(maxsize=8)
def _edge_onsets(elements: tuple[str, ...]) -> dict[str, float]:  # read once per element set
    _quiet_exspy()
    from exspy._misc.elements import elements_db

    out = {}
    for el in elements:
        if el not in EELS_ELEMENTS:
            raise SimInputError("element", el, f"one of {', '.join(EELS_ELEMENTS)}")
        shells = elements_db[el]["Atomic_properties"]["Binding_energies"].as_dictionary()
        out[el] = float(shells[EELS_ELEMENTS[el]]["onset_energy (eV)"])
    return out


@lru_cache(maxsize=4)
def edge_cross_sections(config: EELSConfig = EELSConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(energies (M,), σ (n_elements, M)): exspy's hydrogenic ionisation cross sections of
    each element's edge for the microscope of ``config``, on the axis the convolution with
    the low loss needs (the core-loss range extended down by ``kernel_eV`` and up by the
    low-loss offset)."""
    ax = _ssd_axis(config)
    s = eels_signal(np.ones(ax.n), ax, config)
    s.add_elements(list(config.elements))
    model = s.create_model(GOS="hydrogenic", auto_background=False)
    sigma = []
    for el in config.elements:
        edge = model[f"{el}_{EELS_ELEMENTS[el]}"]
        edge.intensity.value = 1.0
        sigma.append(edge.function(ax.x))
    sigma = np.asarray(sigma, dtype=float)
    return ax.x, sigma / sigma.max()  # one scale for all: the elements keep their relative cross sections


def _ssd_axis(config: EELSConfig) -> EnergyAxis:
    core, low = config.core_loss_axis, config.low_loss_axis
    k = int(round((config.kernel_eV - low.offset) / low.scale))  # kernel channels
    if not 1 <= k <= low.n:
        raise SimInputError("kernel_eV", config.kernel_eV, f"inside the low-loss axis ({low.x[0]:g}…{low.x[-1]:g} eV)")
    start = core.offset - (low.offset + (k - 1) * low.scale)
    return EnergyAxis(start, core.scale, core.n + k - 1)


def _plasmon(config: EELSConfig, e: np.ndarray) -> np.ndarray:
    """The unit-area single-scattering plasmon loss function (exspy's Drude form)."""
    _quiet_exspy()
    from exspy.components import VolumePlasmonDrude

    p = VolumePlasmonDrude(intensity=1.0, plasmon_energy=config.plasmon_eV, fwhm=config.plasmon_fwhm_eV, module="numpy")
    y = np.where(e > 0, p.function(np.clip(e, 1e-6, None)), 0.0)
    return y / (y.sum() * config.dispersion_eV)


def low_loss(t_lambda: np.ndarray, config: EELSConfig = EELSConfig(), *, zero_loss_only: bool = False) -> np.ndarray:
    """Noise-free low-loss spectra (B, N) in counts for thicknesses t/λ (B,): the zero-loss
    peak convolved with the Poisson series of plasmons (module docstring); with
    ``zero_loss_only``, the zero-loss part I_total·e^(−t/λ)·Z alone."""
    t = np.asarray(t_lambda, dtype=float).reshape(-1)
    if not np.isfinite(t).all() or (t < 0).any():
        raise SimInputError("t_lambda", t[~np.isfinite(t) | (t < 0)][0], "a finite thickness ≥ 0 (in units of λ)")
    ax = config.low_loss_axis
    e = ax.x
    sigma = config.resolution_eV / (2 * np.sqrt(2 * np.log(2)))
    zlp = np.exp(-0.5 * (e / sigma) ** 2)
    zlp /= zlp.sum()
    if zero_loss_only:
        return config.low_loss_counts * np.exp(-t)[:, None] * zlp[None]
    # the loss axis starting at 0 (padded to 2N against wrap-around) for the plasmon's Fourier transform
    m = 2 * ax.n
    loss = np.arange(m) * ax.scale
    p_hat = np.fft.rfft(_plasmon(config, loss) * ax.scale)
    z0 = -int(round(ax.offset / ax.scale))  # the channel of 0 eV
    z_hat = np.fft.rfft(np.roll(np.pad(zlp, (0, m - ax.n)), -z0))
    j = np.fft.irfft(z_hat[None] * np.exp(t[:, None] * (p_hat[None] - 1)), n=m)
    j = np.roll(j, z0, axis=1)[:, : ax.n]
    return config.low_loss_counts * np.clip(j, 0, None)


def core_loss(fractions: np.ndarray, t_lambda: np.ndarray, background_r: np.ndarray, ll: np.ndarray,
              config: EELSConfig = EELSConfig()) -> np.ndarray:
    """Noise-free core-loss spectra (B, N): the single-scattering distribution (power law +
    edges, atoms per area ∝ fraction × t/λ) convolved with the low loss ``ll`` (B, N) per
    incident electron."""
    frac = np.asarray(fractions, dtype=float)
    t = np.asarray(t_lambda, dtype=float).reshape(-1, 1)
    r = np.asarray(background_r, dtype=float).reshape(-1, 1)
    e, sigma = edge_cross_sections(config)
    ref = config.background_ref_eV
    ssd = config.background_A / config.core_exposure * t * (e[None] / ref) ** (-r)
    ssd = ssd + config.edge_strength * t * (frac @ sigma)
    k = _ssd_axis(config).n - config.n + 1
    kernel = ll[:, :k] / config.low_loss_counts  # per incident electron
    return config.core_exposure * fftconvolve(ssd, kernel, mode="valid", axes=1)


def simulate_eels(fractions: np.ndarray, t_lambda: np.ndarray, config: EELSConfig = EELSConfig(), *,
                  rng: np.random.Generator, noise: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra (B, 2, N) in counts — low loss, core loss — for atomic ``fractions``
    (B, len(config.elements)) and ``t_lambda`` (B,); with Poisson noise unless ``noise`` is
    False. Also returns the drawn background exponents (B,) and the noise-free spectra."""
    frac = np.asarray(fractions, dtype=float)
    t = np.asarray(t_lambda, dtype=float).reshape(-1)
    if frac.ndim != 2 or frac.shape != (len(t), len(config.elements)):
        raise SimInputError("fractions", frac.shape, f"(B, {len(config.elements)}) with B = {len(t)}")
    if not np.isfinite(frac).all() or (frac < 0).any():
        raise SimInputError("fractions", "negative or non-finite", "atomic fractions ≥ 0")
    r = rng.uniform(*config.background_r, size=len(t))
    ll = low_loss(t, config)
    clean = np.stack([ll, core_loss(frac, t, r, ll, config)], axis=1)
    counts = rng.poisson(clean).astype(float) if noise else clean.copy()
    return counts, r, clean
