"""The spectra modalities as users meet them: conditions on a simplex with clear errors,
an invertible sample representation, draws and neighbours that stay feasible, pictures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genmat.conditions import ConditionError
from genmat.modalities import get_modality
from genmat.sim import SimInputError


@pytest.fixture(scope="module")
def xrd():
    return get_modality("xrd")


def test_fields_and_names(xrd):
    assert xrd.name == "xrd" and xrd.sample_shape == (1, 1024)
    assert xrd.schema.names == ("frac_anatase", "frac_rutile", "frac_ZnO", "size_nm", "strain", "temperature_K")
    assert xrd.hit_metric == "candidate_hit_rate" and not xrd.relabel_failures
    raman = get_modality("raman", phases=["anatase", "Si"])
    assert raman.name == "raman" and raman.schema.names[:2] == ("frac_anatase", "frac_Si")


@pytest.mark.parametrize("cond, field, text", [
    ({"frac_anatase": 0.7, "frac_rutile": 0.7, "frac_ZnO": 0.0}, "frac_anatase + frac_rutile + frac_ZnO", "1 ± 0.01"),
    ({"frac_anatase": 0.5, "frac_rutile": 0.2, "frac_ZnO": 0.2}, "frac_anatase + frac_rutile + frac_ZnO", "sum"),
    ({"frac_anatase": 0.8, "frac_rutile": 0.4}, "frac_anatase + frac_rutile", "≤ 1"),
    ({"frac_anatase": -0.1}, "frac_anatase", "[0, 1]"),
    ({"size_nm": 0.0}, "size_nm", "[5, 30]"),
    ({"size_nm": 80.0}, "size_nm", "[5, 30]"),
    ({"frac_quartz": 0.5}, "frac_quartz", "frac_anatase"),
])
def test_bad_conditions_name_the_field_and_the_allowed_values(xrd, cond, field, text):
    with pytest.raises(ConditionError) as err:
        xrd.schema.validate(cond)
    assert err.value.field == field and text in str(err.value)


def test_good_conditions_pass(xrd):
    xrd.schema.validate({"frac_anatase": 0.5, "frac_rutile": 0.5, "frac_ZnO": 0.0, "size_nm": 12})
    xrd.schema.validate({"frac_anatase": 0.3})  # a subset is a partial simplex


@pytest.mark.parametrize("phases", [["anatase", "quartz"], ["Cu"]])
def test_unknown_or_inactive_phases_are_refused(phases):
    with pytest.raises(SimInputError, match="phases"):
        get_modality("raman", phases=phases)
    if "quartz" in phases:
        with pytest.raises(SimInputError, match="quartz"):
            get_modality("xrd", phases=phases)


def test_sample_representation_round_trips_counts(xrd):
    counts = np.random.default_rng(0).poisson(300.0, size=(3, 1024)).astype(float)
    x = xrd.to_samples(counts)
    assert x.shape == (3, 1, 1024)
    np.testing.assert_allclose(xrd.counts(x), counts, rtol=1e-5, atol=1e-3)
    # Poisson noise is the same size everywhere in x: σ_x ≈ 1 / (2 · sqrt_scale)
    assert float(x.std(dim=-1).mean()) == pytest.approx(1 / (2 * xrd.config.sqrt_scale), rel=0.1)


def test_draws_and_neighbours_stay_on_the_simplex(xrd):
    rng = np.random.default_rng(3)
    draws = xrd.draw_processing(500, rng)
    f = draws[list(xrd.fraction_fields)].to_numpy()
    np.testing.assert_allclose(f.sum(1), 1.0)
    assert (f >= 0).all() and ((f == 0).any(1)).mean() > 0.2  # absent phases occur
    xrd.schema.validate_frame(draws)
    near = xrd.perturb(draws, rng, 0.05)
    g = near[list(xrd.fraction_fields)].to_numpy()
    np.testing.assert_allclose(g.sum(1), 1.0)
    assert ((f == 0) <= (g == 0)).all()  # absent phases stay absent
    xrd.schema.validate_frame(near)
    assert (near["size_nm"] - draws["size_nm"]).abs().mean() == pytest.approx(0.05 * 25 * 0.8, rel=0.3)


def test_simulate_and_measure(xrd):
    cond = pd.DataFrame({"frac_anatase": [0.25], "frac_rutile": [0.75], "frac_ZnO": [0.0], "size_nm": [12.0],
                         "strain": [0.001], "temperature_K": [650.0]})
    x, rows = xrd.simulate(cond, seed=0)
    assert x.shape == (1, 1, 1024) and rows["frac_rutile"][0] == 0.75
    measured = xrd.measure(x)  # full-profile refinement: every condition back
    assert measured["frac_rutile"][0] == pytest.approx(0.75, abs=0.02)
    assert measured["size_nm"][0] == pytest.approx(12.0, rel=0.08)
    assert measured["temperature_K"][0] == pytest.approx(650.0, abs=25.0)
    assert measured["rwp_ratio"][0] < 1.15
    checks = xrd.physics_checks(x, cond)
    assert checks["physics_pass"][0]
    fig = xrd.plot_samples(x, ["one"], conditions=cond)
    assert len(fig.axes[0].lines) >= 2  # the sample and the simulator's spectrum


@pytest.mark.parametrize("name", ["xrd", "raman"])
def test_physics_model_measures_the_fractions_as_the_simulator_check_does(name):
    """The differentiable fractions (physics guidance's model) agree with the simulator
    check's NNLS and with the truth, and their gradient with finite differences."""
    import torch

    mod = get_modality(name)
    cond = mod.draw_processing(5, np.random.default_rng(0))
    x, _ = mod.simulate(cond, seed=1)
    model = mod.physics_model("cheap", cond)
    index = np.arange(5)
    got = model(x, index)
    est = np.stack([got[f].numpy() for f in mod.fraction_fields], 1)
    nnls = mod.simulator_checks(x, cond)[[f"sim_{f}" for f in mod.fraction_fields]].to_numpy()
    assert np.abs(est - nnls).max() < 0.005
    assert np.abs(est - cond[list(mod.fraction_fields)].to_numpy()).max() < 0.02
    xd = x[:2].double().requires_grad_(True)
    field = mod.fraction_fields[1]
    (grad,) = torch.autograd.grad(model(xd, index[:2])[field].sum(), xd)
    d = torch.randn(xd.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = 1e-6
    fd = (model(xd.detach() + h * d, index[:2])[field].sum() - model(xd.detach() - h * d, index[:2])[field].sum()) / (2 * h)
    assert float((grad * d).sum()) == pytest.approx(float(fd), rel=1e-4)
    with pytest.raises(Exception, match="target row"):
        model(x, None)  # several targets: each sample must say which is its own


def test_physics_prior_is_zero_for_a_spectrum_of_its_condition_and_grows_with_a_spurious_peak():
    """The profile term of spectra guidance: what the allowed phases at the target's state
    cannot explain. A simulated spectrum of the target condition is explained to the noise
    (≈ 0); a strong peak where no phase has a line is not; without the state, no term."""
    import torch

    from genmat.sim import render_lines

    mod = get_modality("xrd")
    cond = mod.draw_processing(3, np.random.default_rng(3))
    x, _ = mod.simulate(cond, seed=4)
    model = mod.physics_model("cheap", cond)
    clean = model(x, np.arange(3))["physics_prior"]
    assert float(clean.max()) < 0.02
    counts = mod.counts(x) + render_lines(mod.technique.axis, [[20.0]], [[0.3]], [[60000.0]], 0.5)  # nothing at 20°
    spiked = model(mod.to_samples(counts), np.arange(3))["physics_prior"]
    assert float(spiked.min()) > 0.5
    assert "physics_prior" in model(x, np.arange(3)) and float(
        mod.physics_model("cheap", cond.drop(columns=["temperature_K"]))(mod.to_samples(counts), np.arange(3))
        ["physics_prior"].abs().max()) == 0.0
    xg = mod.to_samples(counts).requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg, np.arange(3))["physics_prior"].sum(), xg)
    peak = int(np.argmin(np.abs(mod.technique.axis.x - 20.0)))
    assert float(g[0, 0, peak]) > 0  # lowering the spurious peak lowers the term
