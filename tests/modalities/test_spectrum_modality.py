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
    measured = xrd.measure(x)
    assert measured["frac_rutile"][0] == pytest.approx(0.75, abs=0.03)
    checks = xrd.physics_checks(x, cond)
    assert checks["physics_pass"][0]
    fig = xrd.plot_samples(x, ["one"], conditions=cond)
    assert len(fig.axes[0].lines) >= 2  # the sample and the simulator's spectrum
