"""The recipe head: the processing that should make a given micrograph, on cases whose
answer is known (simulated micrographs of known processing), and the anneal chosen for a
dimensionless time checked against the Arrhenius law itself."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from genmat import sim
from genmat.loop.screening import RecipeHead
from genmat.loop.steps import fit_recipe_head
from genmat.modalities import get_modality


def test_an_anneal_for_a_dimensionless_time_gives_that_time():
    mod = get_modality("spinodal")
    ch = mod.config.ch
    tau_max = float(sim.dimensionless_time(900.0, 5400.0, ch))  # the box's longest anneal
    tau = np.array([ch.tau_ref, 100.0, 300.0, 0.99 * tau_max])  # 750 K / 1800 s gives tau_ref by construction
    out = mod.processing_from_coordinates(np.stack([np.full(4, 0.45), np.log(tau)], axis=1))
    (T_lo, T_hi), (t_lo, t_hi) = sim.PROCESSING_RANGES["temperature_K"], sim.PROCESSING_RANGES["time_s"]
    assert out["temperature_K"].between(T_lo, T_hi).all() and out["time_s"].between(t_lo, t_hi).all()
    # τ = M0 exp(−Q / (R T)) t, written out here rather than through the simulator's function
    got = ch.M0 * np.exp(-ch.activation_energy_J_mol / (8.314462618 * out["temperature_K"])) * out["time_s"]
    np.testing.assert_allclose(got, tau, rtol=1e-9)
    assert out["temperature_K"].iloc[0] == pytest.approx(750.0) and out["time_s"].iloc[0] == pytest.approx(1800.0)
    # beyond the box: the nearest corner
    far = mod.processing_from_coordinates(np.array([[0.9, math.log(1e6)], [0.1, math.log(1e-3)]]))
    assert far.to_dict("list") == {"x_B": [0.7, 0.3], "temperature_K": [T_hi, T_lo], "time_s": [t_hi, t_lo]}


def test_the_recipe_head_recovers_composition_and_anneal_of_held_out_micrographs():
    mod = get_modality("spinodal")
    rng = np.random.default_rng(0)
    train, rows = mod.simulate(mod.draw_processing(160, rng), seed=1)
    head = RecipeHead.train(mod, train, rows)
    test_proc = mod.draw_processing(48, rng)
    test, _ = mod.simulate(test_proc, seed=2)
    recipes = head.recipes(mod, test)
    err = np.abs(mod.recipe_coordinates(recipes) - mod.recipe_coordinates(test_proc))
    # x_B to better than 0.01 (of a 0.4 range); ln τ to about 0.2 (the coarsening length
    # grows as τ^(1/3), so a 7 % error in length is a 20 % error in τ)
    assert err[:, 0].mean() < 0.01 and err[:, 1].mean() < 0.35
    # the inferred anneal is a different (T, t) from the true one, only τ is identifiable
    assert not np.allclose(recipes["temperature_K"], test_proc["temperature_K"])


def test_no_head_without_recipe_coordinates_or_enough_known_processing():
    mod = get_modality("spinodal")
    rng = np.random.default_rng(1)
    samples, rows = mod.simulate(mod.draw_processing(12, rng), seed=0)
    relabelled = rows.assign(x_B=np.nan)  # generated samples: processing unknown
    assert fit_recipe_head(relabelled, mod, samples) is None
    assert fit_recipe_head(rows, mod, samples) is not None
    xrd = get_modality("xrd")
    assert xrd.recipe_coordinates(pd.DataFrame()) is None
