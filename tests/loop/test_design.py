"""design() on a case with a known answer: a generator that returns, for each target,
the very micrograph whose simulated properties define the target must hit every
target; one that returns a micrograph of another composition must miss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.loop.design import design
from genmat.loop.screening import PropertySurrogate
from genmat.modalities import SpinodalModality


class ReplayGenerator:
    """Stands in for a trained generator: candidates are given micrographs."""

    def __init__(self, samples: torch.Tensor) -> None:
        self.samples = samples

    def sample_conditions(self, conditions, *, n_per_condition=1, **_):
        return self.samples.repeat_interleave(n_per_condition, dim=0)


@pytest.fixture(scope="module")
def world():
    mod = SpinodalModality(grid=32)
    processing = pd.DataFrame({"x_B": [0.40, 0.50, 0.60], "temperature_K": [800.0] * 3, "time_s": [3600.0] * 3})
    samples, rows = mod.simulate(processing, seed=11)
    train_proc = mod.draw_processing(64, np.random.default_rng(0))
    train, train_rows = mod.simulate(train_proc, seed=12)
    surrogate = PropertySurrogate.fit(mod.screening_features(train), train_rows[list(mod.target_fields)].to_numpy(),
                                      mod.target_fields)
    return mod, samples, rows, train, surrogate


def test_exact_micrographs_hit_every_target(world):
    mod, samples, rows, train, surrogate = world
    targets = rows[list(mod.target_fields)]
    result = design(ReplayGenerator(samples), mod, targets, n_candidates=2, n_simulate=1, surrogate=surrogate,
                    training_samples=train)
    assert result.designs["hit"].all(), result.designs[["reason"]]
    assert result.metrics["hit_rate"] == 1.0
    assert result.metrics["simulator_calls"] == 3  # one per target: the rest were screened out
    np.testing.assert_allclose(result.designs["sim_E_GPa"], targets["E_GPa"], rtol=1e-4)
    assert set(result.report["verdict"]) <= {"hit", "unscreened"}


def test_wrong_composition_misses_with_a_reason(world):
    mod, samples, rows, train, surrogate = world
    targets = rows[list(mod.target_fields)]
    shuffled = samples[torch.tensor([2, 0, 1])]  # each target gets another target's micrograph
    result = design(ReplayGenerator(shuffled), mod, targets, n_candidates=1, n_simulate=1, surrogate=surrogate,
                    training_samples=train)
    assert not result.designs["hit"].any()
    assert result.metrics["hit_rate"] == 0.0
    assert all(isinstance(r, str) and r for r in result.designs["reason"])


def test_surrogate_recovers_density_exactly(world):
    mod, samples, rows, train, surrogate = world
    pred = surrogate.predict(mod.screening_features(samples))
    np.testing.assert_allclose(pred[:, 1], rows["density_g_cm3"], rtol=1e-6)  # density is linear in φ
    assert surrogate.rmse[1] < 1e-6
