"""The grain modality: its schema, its validators on real and broken grain maps, and one
run through the closed loop (simulate → train → design → validate → feedback)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionError
from genmat.modalities import get_modality
from tests.conftest import tiny_loop_config


@pytest.fixture(scope="module")
def oracle():
    mod = get_modality("grains")
    proc = pd.DataFrame({"cooling_rate_K_s": [0.2, 1.0, 8.0, 8.0] * 4, "temperature_K": [950.0, 1000.0, 950.0, 1150.0] * 4,
                         "time_s": [100.0, 1800.0, 10.0, 3600.0] * 4})
    x, rows = mod.simulate(proc, seed=4)
    return mod, x, rows


def test_schema_ranges_and_the_hall_petch_feasibility_check():
    mod = get_modality("grains")
    assert mod.sample_shape == (2, 64, 64)
    assert mod.schema.subset("processing") == ("cooling_rate_K_s", "temperature_K", "time_s")
    mod.schema.validate_frame(pd.DataFrame({"grain_size_um": [20.0], "yield_strength_MPa": [235.0]}))
    with pytest.raises(ConditionError, match="yield_strength_MPa"):  # 20 µm gives ≈ 235 MPa, not 300
        mod.schema.validate_frame(pd.DataFrame({"grain_size_um": [20.0], "yield_strength_MPa": [300.0]}))
    with pytest.raises(ConditionError, match="cooling_rate_K_s"):
        mod.schema.validate_frame(pd.DataFrame({"cooling_rate_K_s": [50.0]}))
    draws = mod.draw_processing(2000, np.random.default_rng(0))["cooling_rate_K_s"]
    assert np.mean(draws < 1.0) == pytest.approx(0.5, abs=0.04)  # log-uniform over two decades


def test_oracle_samples_pass_their_checks_and_meet_their_own_labels(oracle):
    mod, x, rows = oracle
    phys = mod.physics_checks(x, rows)
    assert phys["physics_pass"].all(), phys.loc[~phys["physics_pass"], ["physics_reason", "condition_reason"]]
    sim = mod.simulator_checks(x, rows[["grain_size_um", "yield_strength_MPa"]])
    assert sim["sim_pass"].all() and (sim["n_targets"] == 2).all()
    # faster cooling, finer grains; a long hot hold coarsens them
    d = rows["grain_size_um"].to_numpy().reshape(4, 4).mean(0)
    assert d[2] < d[1] < d[0] and d[2] < d[3]


def test_a_grain_map_that_its_processing_cannot_make_is_a_miss(oracle):
    mod, x, rows = oracle
    coarse = x[[0]]  # 0.2 K/s: coarse grains, labelled as a fast-cooled, short hold
    label = pd.DataFrame({"cooling_rate_K_s": [8.0], "temperature_K": [950.0], "time_s": [10.0]})
    phys = mod.physics_checks(coarse, label)
    assert not phys["process_pass"].iloc[0] and phys["physics_reason"].iloc[0] == ""
    assert "its processing makes" in phys["condition_reason"].iloc[0]
    sim = mod.simulator_checks(coarse, pd.DataFrame({"grain_size_um": [10.0]}))
    assert not sim["sim_pass"].iloc[0] and "grain_size_um" in sim["sim_reason"].iloc[0]


def test_noise_and_blank_fields_are_not_grain_structures():
    mod = get_modality("grains")
    g = torch.Generator().manual_seed(0)
    noise = torch.randn((1, 2, 64, 64), generator=g)
    unit = noise / noise.norm(dim=1, keepdim=True)  # unit vectors, random per pixel: dust
    blank = torch.zeros((1, 2, 64, 64))
    blank[:, 0] = 1.0  # one grain
    phys = mod.physics_checks(torch.cat([noise, unit, blank]), pd.DataFrame(index=range(3)))
    assert not phys["physics_pass"].any()
    assert "not an orientation field" in phys["physics_reason"].iloc[0]
    assert "too small to be grains" in phys["physics_reason"].iloc[1]
    assert "grain(s)" in phys["physics_reason"].iloc[2]


def test_recipe_coordinates_map_back_to_a_recipe_that_does_the_same_hold():
    mod = get_modality("grains")
    proc = mod.draw_processing(200, np.random.default_rng(1))
    coords = mod.recipe_coordinates(proc)
    back = mod.processing_from_coordinates(coords)
    np.testing.assert_allclose(mod.recipe_coordinates(back), coords, rtol=1e-9, atol=1e-9)
    assert back["temperature_K"].between(923.0, 1173.0).all() and back["time_s"].between(0.0, 3600.0).all()
    # a hold longer than the box allows gets its nearest corner: the hottest, longest hold
    far = mod.processing_from_coordinates(np.array([[0.0, np.log1p(1e4)]]))
    assert far["temperature_K"].iloc[0] == 1173.0 and far["time_s"].iloc[0] == 3600.0


def test_pictures_are_orientation_maps_with_black_boundaries(oracle):
    from genmat.modalities.grains import orientation_rgb

    mod, x, rows = oracle
    rgb = orientation_rgb(x[0].numpy())
    assert rgb.shape == (64, 64, 3) and (rgb.sum(-1) == 0).any() and (rgb.sum(-1) > 0.5).mean() > 0.7
    fig = mod.plot_samples(x[:4], [mod.title(r) for _, r in rows.iloc[:4].iterrows()])
    assert len(fig.axes) == 4


@pytest.mark.slow
def test_grains_run_through_the_closed_loop(tmp_path):
    from genmat.data import DatasetStore
    from genmat.loop import ClosedLoop

    cfg = tiny_loop_config(tmp_path / "grains", modality="grains", modality_options={"grid": 32}, n_simulate=2)
    state = ClosedLoop(cfg).run()
    assert [row["iteration"] for row in state.history] == [0, 1]
    assert all(0 <= row["hit_rate"] <= 1 for row in state.history)
    table = DatasetStore.open(cfg.dataset).table()
    assert {"grain_size_um", "yield_strength_MPa", "astm_G"} <= set(table.columns)
    targets = pd.read_parquet(cfg.workdir / "targets.parquet")
    assert "yield_strength_MPa" in targets and "grain_size_um" not in targets  # a strength is asked for
    assert (cfg.workdir / "iter_01" / "pictures" / "designs.png").exists()
    assert "physics_pass_rate" in (cfg.workdir / "report.md").read_text()
