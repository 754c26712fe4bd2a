"""The screening surrogate and the acquisition rule on cases with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from genmat.conditions import ConditionSchema, Field
from genmat.loop.acquisition import acquire_near
from genmat.loop.screening import PropertySurrogate


def test_surrogate_recovers_a_cubic_exactly_and_ranks_by_error():
    rng = np.random.default_rng(0)
    f = rng.uniform(0, 1, (200, 2))
    y = np.stack([3 + 2 * f[:, 0] - f[:, 0] ** 3 + 0.5 * f[:, 0] * f[:, 1], 10 * f[:, 1]], axis=1)
    s = PropertySurrogate.fit(f, y, ["a", "b"])
    np.testing.assert_allclose(s.predict(f), y, atol=1e-6)
    target = np.array([[y[7, 0], np.nan]])  # only "a" targeted
    score = s.score(f, np.repeat(target, len(f), axis=0))
    assert np.argmin(score) == 7


def test_surrogate_needs_enough_labels():
    with pytest.raises(ValueError, match="at least 10"):
        PropertySurrogate.fit(np.zeros((3, 1)), np.zeros((3, 1)), ["a"])


SCHEMA = ConditionSchema(fields=(
    Field("x", "", 0.0, 1.0, "processing"),
    Field("T_K", "K", 700.0, 900.0, "processing"),
    Field("E_GPa", "GPa", 100.0, 300.0, "property"),
))
MODALITY = SimpleNamespace(schema=SCHEMA, perturb=SCHEMA.jitter)  # the two things acquisition reads


def test_acquisition_draws_near_the_neighbours_of_a_failing_target():
    # property E = 100 + 200 x: the target E = 250 lies at x = 0.75
    x = np.linspace(0, 1, 101)
    table = pd.DataFrame({"x": x, "T_K": 800.0, "E_GPa": 100 + 200 * x})
    new = acquire_near(pd.DataFrame({"E_GPa": [250.0]}), table, MODALITY, n_per_target=200,
                       rng=np.random.default_rng(1), k=4, jitter=0.02)
    assert len(new) == 200 and list(new.columns) == ["x", "T_K"]
    assert new["x"].mean() == pytest.approx(0.75, abs=0.02)
    assert new["x"].between(0, 1).all() and new["T_K"].between(700, 900).all()


def test_acquisition_ignores_rows_without_processing():
    table = pd.DataFrame({"x": [np.nan, 0.2], "T_K": [np.nan, 750.0], "E_GPa": [250.0, 140.0]})
    new = acquire_near(pd.DataFrame({"E_GPa": [250.0]}), table, MODALITY, n_per_target=3,
                       rng=np.random.default_rng(0), jitter=0.0)
    assert (new["x"] == 0.2).all()  # the relabelled row (no processing) is never a parent


def test_a_target_that_gives_the_full_simulator_input_is_simulated_itself_and_around():
    targets = pd.DataFrame({"x": [0.3, 0.9], "T_K": [750.0, 880.0]})
    new = acquire_near(targets, pd.DataFrame(columns=["x", "T_K"]), MODALITY, n_per_target=50,
                       rng=np.random.default_rng(2), jitter=0.02)
    assert len(new) == 100
    np.testing.assert_allclose(new.iloc[[0, 50]].to_numpy(), targets.to_numpy())  # each target's own condition
    assert new["x"].iloc[:50].mean() == pytest.approx(0.3, abs=0.02)
    assert new["T_K"].iloc[50:].between(700, 900).all() and new["T_K"].iloc[50:].mean() == pytest.approx(880, abs=6)
