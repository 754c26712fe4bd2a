"""Physics oracles: spinodal micrographs (Cahn–Hilliard process simulator, morphology
descriptors, two-phase material data, FFT homogenisation) and line spectra (XRD from a
pymatgen-built phase library, Raman), with the spectrum analysis tools of the field.

Imports nothing else from genmat and nothing of ML/tracking/orchestration.
"""

from __future__ import annotations

from genmat.sim.cahn_hilliard import (
    GAS_CONSTANT_J_MOLK,
    PROCESSING_RANGES,
    CahnHilliardConfig,
    coarsening_series,
    dimensionless_time,
    evolve,
    simulate_spinodal,
)
from genmat.sim.homogenise import (
    ConductivityResult,
    ElasticResult,
    hashin_shtrikman_bounds,
    homogenise_conductivity,
    homogenise_elastic,
    isotropic_moduli,
    micrograph_properties,
    differentiable_properties,
    effective_conductivity,
    effective_stiffness,
    smooth_phase,
    youngs_modulus_bounds,
    youngs_moduli,
)
from genmat.sim.materials import (
    SimInputError,
    TwoPhaseMaterial,
    density,
    lame_constants,
    volume_fraction_from_density,
)
from genmat.sim.spectra import (
    BackgroundPrior,
    LineSet,
    check_state,
    PhaseFit,
    SpectrumAxis,
    background_basis,
    detect_peaks,
    expected_r,
    fit_line_width,
    fit_phases,
    poisson_counts,
    pseudo_voigt,
    render_lines,
    snip_background,
    weighted_profile_r,
)
from genmat.sim.raman import Raman, RamanConfig
from genmat.sim.xrd import XRD, XRDConfig, XRDPhase, line_fwhm_deg, phase_library, scherrer_size_nm
from genmat.sim.morphology import (
    characteristic_length,
    phase_map,
    radial_average,
    two_point_correlation,
    volume_fraction,
)

__all__ = [
    "BackgroundPrior",
    "LineSet",
    "check_state",
    "PhaseFit",
    "SpectrumAxis",
    "background_basis",
    "detect_peaks",
    "expected_r",
    "fit_line_width",
    "fit_phases",
    "poisson_counts",
    "pseudo_voigt",
    "render_lines",
    "snip_background",
    "weighted_profile_r",
    "Raman",
    "RamanConfig",
    "XRD",
    "XRDConfig",
    "XRDPhase",
    "line_fwhm_deg",
    "phase_library",
    "scherrer_size_nm",
    "GAS_CONSTANT_J_MOLK",
    "PROCESSING_RANGES",
    "CahnHilliardConfig",
    "coarsening_series",
    "dimensionless_time",
    "evolve",
    "simulate_spinodal",
    "ConductivityResult",
    "ElasticResult",
    "hashin_shtrikman_bounds",
    "homogenise_conductivity",
    "homogenise_elastic",
    "isotropic_moduli",
    "micrograph_properties",
    "differentiable_properties",
    "effective_conductivity",
    "effective_stiffness",
    "smooth_phase",
    "youngs_modulus_bounds",
    "youngs_moduli",
    "SimInputError",
    "TwoPhaseMaterial",
    "density",
    "lame_constants",
    "volume_fraction_from_density",
    "characteristic_length",
    "phase_map",
    "radial_average",
    "two_point_correlation",
    "volume_fraction",
]
