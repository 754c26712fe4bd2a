from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.sim import CahnHilliardConfig, TwoPhaseMaterial, simulate_spinodal
from genmat.validate import (
    MicrographChecks,
    ValidateInputError,
    high_frequency_power,
    implied_volume_fraction,
    otsu_two_phase,
    physics_checks,
    reference_s2,
)

CFG = CahnHilliardConfig(grid=32)
# A spread over PROCESSING_RANGES (x_B 0.30–0.70, 750–900 K, 1800–5400 s; τ 60–447), away
# from the still-decomposing corner (τ ≈ 60 at x_B ≈ 0.3 / 0.7) and from τ > 450 (slow to
# simulate here; MicrographChecks documents the calibration over the whole range).
CONDITIONS = pd.DataFrame(
    {
        "x_B": [0.32, 0.40, 0.50, 0.50, 0.60, 0.68, 0.45, 0.55],
        "temperature_K": [900.0, 800.0, 750.0, 850.0, 900.0, 825.0, 875.0, 775.0],
        "time_s": [2700.0, 3600.0, 1800.0, 2700.0, 1800.0, 5400.0, 2000.0, 4500.0],
    }
)


@pytest.fixture(scope="module")
def sim_samples() -> torch.Tensor:
    c = CONDITIONS
    return simulate_spinodal(*(torch.tensor(c[f].to_numpy()) for f in c.columns), CFG, seed=11)


@pytest.fixture(scope="module")
def sim_reference() -> torch.Tensor:
    return reference_s2(CONDITIONS, CFG, n_ref=4, seed=0)


def checkerboard(n: int) -> torch.Tensor:
    i = torch.arange(n)
    return ((-1.0) ** (i[:, None] + i[None, :])).reshape(1, 1, n, n)


def test_simulator_samples_pass_every_check(sim_samples, sim_reference):
    frame = physics_checks(
        sim_samples,
        expected_volume_fraction=implied_volume_fraction(CONDITIONS),
        reference_s2=sim_reference,
    )
    assert len(frame) == len(CONDITIONS)
    failing = frame.loc[~frame.physics_pass]
    assert failing.empty, failing.to_string()
    assert (frame.two_phase_score > 0.8).all()
    assert (frame.artefact_score < 1e-3).all()


def test_uniform_field_is_not_two_phase():
    frame = physics_checks(torch.full((2, 1, 16, 16), 0.3))
    assert frame.finite_pass.all() and frame.range_pass.all()
    assert (frame.two_phase_score == 0).all() and (frame.minority_fraction == 0).all()
    assert not frame.two_phase_pass.any() and not frame.physics_pass.any()
    assert frame.artefact_pass.all()  # no power at all, so no artefact power


def test_gaussian_noise_scores_two_over_pi_and_fails():
    g = torch.Generator().manual_seed(0)
    noise = 0.5 * torch.randn(4, 1, 64, 64, generator=g)
    frame = physics_checks(noise)
    # Otsu on a normal distribution splits at the mean: η = (E|X|)² / σ² = 2/π.
    assert frame.two_phase_score.to_numpy() == pytest.approx(2 / math.pi, abs=0.02)
    assert not frame.two_phase_pass.any()
    assert not frame.artefact_pass.any()  # white noise: ≈ 56 % of its power above 0.75 Nyquist


def test_uniform_noise_sits_just_below_the_two_phase_threshold():
    g = torch.Generator().manual_seed(1)
    _, eta, _ = otsu_two_phase(torch.rand(3, 1, 64, 64, generator=g) * 2 - 1)
    assert eta == pytest.approx(0.75, abs=0.01)  # (1/16) / (1/12) for U(0, 1)
    assert (eta < MicrographChecks().two_phase_min).all()


def test_two_level_field_has_otsu_score_one():
    c = -torch.ones(1, 1, 20, 20)
    c[..., :6, :] = 1.0  # 30 % phase B
    thr, eta, minority = otsu_two_phase(c)
    assert eta[0] == pytest.approx(1.0)
    assert minority[0] == pytest.approx(0.3)
    assert -1.0 <= thr[0] < 1.0


def test_checkerboard_contamination_fails_the_artefact_check(sim_samples):
    dirty = sim_samples + 0.3 * checkerboard(CFG.grid)
    clean = physics_checks(sim_samples)
    frame = physics_checks(dirty)
    assert clean.artefact_pass.all()
    assert not frame.artefact_pass.any()
    assert (frame.artefact_score > 0.05).all()
    assert frame.range_pass.all() and frame.finite_pass.all()
    assert not frame.physics_pass.any()


def test_high_frequency_power_closed_forms():
    n = 16
    x = torch.arange(n, dtype=torch.float64)
    smooth = torch.cos(2 * math.pi * x / n)[None, :].expand(n, n).reshape(1, 1, n, n)
    both = smooth + checkerboard(n)  # equal power (variance 1/2 and 1) in two modes
    hf = high_frequency_power(torch.cat([smooth, checkerboard(n).double(), both]))
    assert hf[0] == pytest.approx(0.0, abs=1e-12)
    assert hf[1] == pytest.approx(1.0)
    assert hf[2] == pytest.approx(1.0 / 1.5)


def test_wrong_volume_fraction_fails_vf_only(sim_samples):
    expected = implied_volume_fraction(CONDITIONS) + 0.15
    frame = physics_checks(sim_samples, expected_volume_fraction=expected)
    assert not frame.vf_pass.any()
    assert (frame.vf_error < -0.08).all()
    assert frame.two_phase_pass.all() and frame.artefact_pass.all()
    # NaN expectation means "no expectation": vf passes.
    expected[0] = np.nan
    frame = physics_checks(sim_samples, expected_volume_fraction=expected)
    assert frame.vf_pass[0] and math.isnan(frame.vf_error[0])


def test_s2_against_wrong_composition_fails(sim_samples, sim_reference):
    # reverse the references: x_B 0.32 sample against the x_B 0.55 reference, etc.
    frame = physics_checks(sim_samples[:2], reference_s2=sim_reference[[6, 5]])
    ok = physics_checks(sim_samples[:2], reference_s2=sim_reference[:2])
    assert ok.s2_pass.all() and (ok.s2_error < MicrographChecks().s2_rel_tol).all()
    assert not frame.s2_pass[1]  # x_B 0.40 vs 0.68
    assert (frame.s2_error > ok.s2_error).all()


def test_out_of_range_and_nonfinite_values_fail():
    c = torch.ones(2, 1, 8, 8)
    c[0, 0, :4] = -1
    c[1, 0, :4] = -1
    c[0, 0, 0, 0] = 2.0
    c[1, 0, 0, 0] = math.nan
    frame = physics_checks(c)
    assert not frame.range_pass[0] and frame.finite_pass[0]
    assert not frame.finite_pass[1] and not frame.physics_pass[1]


def test_implied_volume_fraction_prefers_density_then_lever_rule():
    mat = TwoPhaseMaterial()
    rho = 0.4 * mat.rho_B_g_cm3 + 0.6 * mat.rho_A_g_cm3
    cond = pd.DataFrame({"density_g_cm3": [rho, np.nan, np.nan], "x_B": [0.6, 0.35, np.nan]})
    phi = implied_volume_fraction(cond, mat)
    assert phi[0] == pytest.approx(0.4)
    assert phi[1] == pytest.approx(0.35)
    assert math.isnan(phi[2])
    assert np.isnan(implied_volume_fraction(pd.DataFrame({"E_GPa": [100.0]}))).all()


def test_reference_s2_rows_and_nan_for_incomplete():
    cond = pd.DataFrame(
        {"x_B": [0.5, 0.5, np.nan], "temperature_K": [850.0, 850.0, 850.0], "time_s": [1800.0, 1800.0, 1800.0]}
    )
    ref = reference_s2(cond, CahnHilliardConfig(grid=16), n_ref=2, seed=3)
    assert ref.shape == (3, 9)
    assert torch.equal(ref[0], ref[1])  # one condition, one reference
    assert torch.isnan(ref[2]).all()
    # S2(0) = φ and S2(r) → φ² at large r; φ ≈ 0.5 here
    assert float(ref[0, 0]) == pytest.approx(0.5, abs=0.06)
    assert float(ref[0, -1]) == pytest.approx(float(ref[0, 0]) ** 2, abs=0.1)


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(ValidateInputError) as err:
        physics_checks(torch.zeros(2, 8, 8))
    assert err.value.field == "samples"
    with pytest.raises(ValidateInputError) as err:
        physics_checks(torch.zeros(2, 1, 8, 8), reference_s2=torch.zeros(2, 3))
    assert err.value.field == "reference_s2"
    with pytest.raises(ValidateInputError) as err:
        MicrographChecks(two_phase_min=1.5)
    assert err.value.field == "two_phase_min"
    with pytest.raises(ValidateInputError):
        implied_volume_fraction(pd.DataFrame({"x_B": [1.5]}))
