"""The differentiable forward models of the line spectra (XRD, Raman) and the refinement
of a spectrum's conditions through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmat.sim import XRD, Raman, SimInputError
from genmat.sim.spectra import refine_conditions

PHASES = ("anatase", "rutile", "ZnO")
SIZE = {"xrd": (5.0, 30.0), "raman": (3.0, 15.0)}
ORACLES = {"xrd": XRD(), "raman": Raman()}


def _conditions(rng, n, technique):
    return dict(fractions=rng.dirichlet(np.ones(3), n), size_nm=rng.uniform(*SIZE[technique], n),
                strain=rng.uniform(2e-4, 3e-3, n), temperature_K=rng.uniform(300, 1000, n),
                background=rng.uniform(50, 200, (n, 5)))


@pytest.mark.parametrize("technique", ORACLES)
def test_tensor_forward_model_is_the_numpy_oracle(technique):
    oracle, rng = ORACLES[technique], np.random.default_rng(0)
    c = _conditions(rng, 3, technique)
    y_np = oracle.expected(PHASES, **c)
    y_t = oracle.expected(PHASES, **{k: torch.tensor(v) for k, v in c.items()})
    assert isinstance(y_np, np.ndarray) and isinstance(y_t, torch.Tensor)
    np.testing.assert_allclose(y_t.numpy(), y_np, rtol=1e-12)
    y32 = oracle.expected(PHASES, **{k: torch.tensor(v, dtype=torch.float32) for k, v in c.items()})
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), y_np, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("technique", ORACLES)
@pytest.mark.parametrize("name", ["fractions", "size_nm", "strain", "temperature_K", "background"])
def test_gradient_matches_finite_differences(technique, name):
    """d(v·y)/d(condition) by autograd against central differences of the numpy oracle."""
    oracle, rng = ORACLES[technique], np.random.default_rng(1)
    c = _conditions(rng, 2, technique)
    v = rng.normal(size=(2, oracle.axis.n))
    x = torch.tensor(c[name], requires_grad=True)
    y = oracle.expected(PHASES, **{**c, name: x})
    (grad,) = torch.autograd.grad((y * torch.tensor(v)).sum(), x)
    direction = rng.normal(size=c[name].shape)
    h = {"fractions": 1e-6, "size_nm": 1e-5, "strain": 1e-8, "temperature_K": 1e-3, "background": 1e-4}[name]
    plus = oracle.expected(PHASES, **{**c, name: c[name] + h * direction})
    minus = oracle.expected(PHASES, **{**c, name: c[name] - h * direction})
    fd = float((v * (plus - minus)).sum() / (2 * h))
    assert float((grad.numpy() * direction).sum()) == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize("technique", ORACLES)
def test_refinement_recovers_the_conditions_of_noisy_spectra(technique):
    """A simulated spectrum (Poisson noise, random background) refined with only the ranges
    known: fractions, size, strain and temperature come back, and R_wp reaches the noise."""
    oracle, rng = ORACLES[technique], np.random.default_rng(2)
    c = _conditions(rng, 4, technique)
    c.pop("background")
    y, _ = oracle.simulate(PHASES, rng=rng, **c)
    bounds = {"size_nm": SIZE[technique], "strain": (0.0, 3e-3), "temperature_K": (300.0, 1000.0)}
    r = refine_conditions(oracle, PHASES, y, bounds)
    assert np.abs(r.fractions - c["fractions"]).max() < 0.015
    np.testing.assert_allclose(r.size_nm, c["size_nm"], rtol=0.06)
    np.testing.assert_allclose(r.temperature_K, c["temperature_K"], atol=20.0)
    np.testing.assert_allclose(r.strain, c["strain"], atol=6e-4)
    assert (r.rwp / r.rexp < 1.1).all()
    # what it would be at the wrong temperature: the refinement found a real minimum
    wrong = refine_conditions(oracle, PHASES, y, {k: v for k, v in bounds.items() if k != "temperature_K"},
                              fixed={"temperature_K": np.clip(c["temperature_K"] + 250, 300, 1250)})
    assert (wrong.rwp > 1.05 * r.rwp).all()


def test_refinement_rejects_unknown_fields_and_missing_bounds():
    y = np.ones((1, XRD().axis.n))
    with pytest.raises(SimInputError, match="refined field"):
        refine_conditions(XRD(), PHASES, y, {"colour": (0, 1)})
    with pytest.raises(SimInputError, match="strain"):
        refine_conditions(XRD(), PHASES, y, {"size_nm": (5, 30), "temperature_K": (300, 1000)})
