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


def test_the_loop_rechecks_its_designs_recipes_and_counts_the_calls(tmp_path):
    from genmat.loop import ClosedLoop
    from tests.conftest import tiny_loop_config

    cfg = tiny_loop_config(tmp_path, max_iterations=1, recipe_checks=3)
    loop = ClosedLoop(cfg)
    state = loop.run()
    row = state.history[0]
    recipes = pd.read_parquet(tmp_path / "iter_00" / "design" / "recipes.parquet")
    assert len(recipes) == row["hits"] == row["recipes_checked"]
    assert row["recipe_check_calls"] == 3 * len(recipes) == state.steps["iter0/recipes"]["simulator_calls"]
    assert {"recipe_x_B", "recipe_temperature_K", "recipe_time_s", "holds"} <= set(recipes.columns)
    assert recipes["holds"].between(0, 1).all() and row["robust_recipes"] == (recipes["holds"] >= 0.75).sum()
    # every oracle call counted: initial data, the targets' own, the design's and the recipe checks
    assert row["simulator_calls_total"] == cfg.initial_samples + cfg.n_targets + row["simulator_calls"] + 3 * len(recipes)


def _design_dir(path, mod, processing, recipes, seed=5):
    """A design directory whose hit designs are simulated micrographs of ``processing``,
    each targeting its own simulated properties, with ``recipes`` as their recipes."""
    import json

    from genmat.loop.design import DesignResult
    from genmat.loop.steps import save_design

    samples, rows = mod.simulate(processing, seed=seed)
    designs = pd.DataFrame({"target_id": np.arange(len(rows)), "hit": True,
                            **{f"target_{c}": rows[c] for c in ("E_GPa", "density_g_cm3")},
                            **{f"recipe_{c}": recipes[c].to_numpy() for c in recipes.columns}})
    path.mkdir(parents=True)
    save_design(DesignResult(designs, samples, designs, {}), path)
    (path / "metrics.json").write_text(json.dumps({}))
    return path


def test_a_true_recipe_holds_and_a_wrong_one_does_not(tmp_path):
    from genmat.loop.steps import RecipeCheckParams, recipe_check_step

    mod = get_modality("spinodal")  # default tolerances: E 5 %, ρ 2 %
    proc = mod.draw_processing(16, np.random.default_rng(3))
    wrong = proc.assign(x_B=np.where(proc["x_B"] < 0.5, proc["x_B"] + 0.15, proc["x_B"] - 0.15))
    out = {}
    for name, recipes in (("true", proc), ("wrong", wrong)):
        d = _design_dir(tmp_path / name, mod, proc, recipes)
        out[name] = recipe_check_step(RecipeCheckParams(modality="spinodal", dataset=tmp_path / "none",
                                                        design_dir=d, seeds=3), progress=False)
        assert out[name]["simulator_calls"] == 48 and (d / "recipes.parquet").exists()
    assert out["true"]["recipe_hold_rate"] >= 0.7 and out["wrong"]["recipe_hold_rate"] == 0.0
    # done once: read back, not simulated again
    again = recipe_check_step(RecipeCheckParams(modality="spinodal", dataset=tmp_path / "none",
                                                design_dir=tmp_path / "true", seeds=3), progress=False)
    assert again == out["true"]
