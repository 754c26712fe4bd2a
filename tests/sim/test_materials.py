"""Tests for genmat.sim.materials: Lamé constants, rule of mixtures, validation."""

from __future__ import annotations

import pytest
import torch

from genmat.sim import SimInputError, TwoPhaseMaterial, density, lame_constants, volume_fraction_from_density


def test_defaults_are_physics_section_3_pair():
    m = TwoPhaseMaterial()
    assert (m.E_A_GPa, m.nu_A, m.rho_A_g_cm3, m.k_A_W_mK) == (70.0, 0.33, 2.70, 237.0)
    assert (m.E_B_GPa, m.nu_B, m.rho_B_g_cm3, m.k_B_W_mK) == (410.0, 0.14, 3.21, 120.0)


@pytest.mark.parametrize("E, nu", [(70.0, 0.33), (410.0, 0.14), (1.0, 0.0), (200.0, 0.49)])
def test_lame_constants_invert_to_E_and_nu(E, nu):
    lam, mu = lame_constants(E, nu)
    # Isotropic identities: E = μ(3λ + 2μ)/(λ + μ), ν = λ / (2(λ + μ)).
    assert mu * (3 * lam + 2 * mu) / (lam + mu) == pytest.approx(E, rel=1e-12)
    assert lam / (2 * (lam + mu)) == pytest.approx(nu, abs=1e-12)


def test_lame_constants_tensor_broadcast():
    lam, mu = lame_constants(torch.tensor([70.0, 410.0], dtype=torch.float64), torch.tensor(0.25, dtype=torch.float64))
    # ν = 1/4 gives λ = μ = E/2.5.
    torch.testing.assert_close(lam, torch.tensor([28.0, 164.0], dtype=torch.float64))
    torch.testing.assert_close(mu, lam)


def test_density_rule_of_mixtures_and_inverse():
    m = TwoPhaseMaterial()
    phi = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    rho = density(phi, m)
    torch.testing.assert_close(rho, torch.tensor([2.70, 0.25 * 3.21 + 0.75 * 2.70, 3.21], dtype=torch.float64))
    torch.testing.assert_close(volume_fraction_from_density(rho, m), phi)
    assert float(density(0.5)) == pytest.approx(2.955, abs=1e-12)


def test_volume_fraction_from_density_range():
    with pytest.raises(SimInputError, match=r"rho_g_cm3.*\[2\.7, 3\.21\]"):
        volume_fraction_from_density(3.5)
    assert float(volume_fraction_from_density(3.72, strict=False)) == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, field", [({"nu_A": 0.5}, "nu_A"), ({"E_B_GPa": -1.0}, "E_B_GPa"), ({"rho_A_g_cm3": -0.1}, "rho_A_g_cm3"),
     ({"E_A_GPa": 0.0, "E_B_GPa": 0.0}, "E_B_GPa"), ({"k_B_W_mK": float("nan")}, "k_B_W_mK")]
)
def test_material_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TwoPhaseMaterial(**kwargs)


def test_density_rejects_phi_out_of_range():
    with pytest.raises(ValueError, match=r"phi.*\[0, 1\]"):
        density(1.2)
