"""The eels modality: its validators on the oracle's own spectra (they must pass and
measure what was simulated) and on spoiled ones (they must fail, naming why), and the
closed loop end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionError
from genmat.modalities import get_modality


@pytest.fixture(scope="module")
def simulated():
    m = get_modality("eels")
    rows = m.draw_processing(12, np.random.default_rng(4))
    x, rows = m.simulate(rows, seed=2)
    return m, x, rows


def test_the_oracle_spectra_pass_and_the_fit_measures_their_composition_and_thickness(simulated):
    m, x, rows = simulated
    assert x.shape == (12, 2, 1024) and torch.isfinite(x).all()
    physics = m.physics_checks(x, rows)
    assert physics["physics_pass"].all(), physics["physics_reason"].tolist()
    assert physics["background_r"].between(2.0, 5.0).all()
    checked = m.simulator_checks(x, rows)
    assert checked["sim_pass"].all(), checked["sim_reason"].tolist()
    got = m.measure(x)
    np.testing.assert_allclose(got[list(m.fraction_fields)], rows[list(m.fraction_fields)], atol=0.015)
    np.testing.assert_allclose(got["t_lambda"], rows["t_lambda"], atol=0.01)


def test_spoiled_spectra_fail_and_say_why(simulated):
    m, x, rows = simulated
    rows = rows.reset_index(drop=True)
    absent = int(np.flatnonzero(rows["x_Fe"].to_numpy() == 0)[0])
    claimed = rows.copy()
    claimed.loc[absent, "x_Fe"] = 0.3  # an element the spectrum does not show
    physics = m.physics_checks(x, claimed)
    assert not physics.loc[absent, "edges_pass"] and "no Fe L3 edge at 708 eV" in physics.loc[absent, "condition_reason"]
    shifted = x.clone()
    shifted[0, 0] = torch.roll(shifted[0, 0], 20)  # the zero-loss peak 10 eV off
    assert not m.physics_checks(shifted[:1], rows[:1])["zlp_pass"].iloc[0]
    thicker = rows.copy()
    thicker["t_lambda"] = thicker["t_lambda"] + 0.2
    checked = m.simulator_checks(x[:3], thicker[:3])
    assert not checked["sim_pass"].any() and checked["sim_reason"].str.contains("t/λ").all()


def test_conditions_are_a_simplex_with_a_thickness():
    m = get_modality("eels")
    m.schema.validate({"x_Ti": 0.4, "x_O": 0.6, "t_lambda": 0.5})
    with pytest.raises(ConditionError, match="sum of the atomic fractions"):
        m.schema.validate({"x_C": 0.3, "x_N": 0.1, "x_Ti": 0.1, "x_O": 0.1, "x_Fe": 0.1})
    with pytest.raises(ConditionError, match="t_lambda"):
        m.schema.validate({"t_lambda": 3.0})
    drawn = m.draw_processing(200, np.random.default_rng(0))
    np.testing.assert_allclose(drawn[list(m.fraction_fields)].sum(1), 1.0)
    near = m.perturb(drawn.head(20), np.random.default_rng(1), 0.05)
    assert ((near[list(m.fraction_fields)] > 0) <= (drawn.head(20)[list(m.fraction_fields)] > 0)).all(axis=None)


@pytest.mark.slow
def test_eels_runs_through_the_closed_loop(tmp_path):
    from genmat.data import DatasetStore
    from genmat.generate import GeneratorConfig, SamplerConfig
    from genmat.loop import ClosedLoop
    from genmat.nn import UNetConfig
    from tests.conftest import tiny_loop_config

    cfg = tiny_loop_config(
        tmp_path / "eels", modality="eels", modality_options={}, n_simulate=2, acquire_per_target=2,
        generator=GeneratorConfig(unet=UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1, 2), embed_dim=32,
                                                  padding_mode="replicate", position_features=2),
                                  sampler=SamplerConfig(steps=2, method="euler")))
    state = ClosedLoop(cfg).run()
    assert [row["iteration"] for row in state.history] == [0, 1]
    assert all(0 <= row["candidate_hit_rate"] <= 1 for row in state.history)
    report = pd.read_parquet(cfg.workdir / "iter_00" / "design" / "report.parquet")
    assert {"physics_pass", "edges_pass", "t_lambda_log_ratio", "verdict", "reason"} <= set(report.columns)
    assert set(DatasetStore.open(cfg.dataset).table()["provenance"]) == {"simulated"}
    assert (cfg.workdir / "iter_00" / "pictures" / "designs.png").exists()
