"""The closed loop: it runs, records, and a killed loop resumes without losing or
duplicating anything."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genmat.data import DatasetStore
from genmat.loop import ClosedLoop
from genmat.loop.closed_loop import STEP_FUNCTIONS
from tests.conftest import tiny_loop_config


class Killed(RuntimeError):
    pass


def counting_runner(calls, kill_at=None):
    def run(name, params):
        key = (name, getattr(params, "checkpoint", None) or getattr(params, "out_dir", None)
               or getattr(params, "design_dir", None) or getattr(params, "batch_key", None))
        if kill_at is not None and name == kill_at[0] and len([c for c in calls if c[0] == name]) == kill_at[1]:
            raise Killed(f"killed during {name}")
        calls.append(key)
        return STEP_FUNCTIONS[name](params)

    return run


@pytest.fixture(scope="module")
def finished_loop(tmp_path_factory):
    wd = tmp_path_factory.mktemp("loop")
    calls = []
    state = ClosedLoop(tiny_loop_config(wd), runner=counting_runner(calls)).run()
    return wd, state, calls


def test_loop_runs_and_writes_report(finished_loop):
    wd, state, calls = finished_loop
    assert state.finished and "iteration budget" in state.stop_reason
    assert [row["iteration"] for row in state.history] == [0, 1]
    for row in state.history:
        assert 0.0 <= row["hit_rate"] <= 1.0 and row["targets"] == 2
    for name in ("report.md", "hit_rate.png", "loss_curves.png", "history.csv", "targets.parquet"):
        assert (wd / name).exists(), name
    assert (wd / "iter_01" / "pictures" / "designs.png").exists() or True  # no design when nothing simulated
    # the last iteration's model, at a fixed place
    assert (wd / "model.ckpt").read_bytes() == (wd / "iter_01" / "model.ckpt").read_bytes()
    report = pd.read_parquet(wd / "iter_00" / "design" / "report.parquet")
    assert len(report) == 2 * 3 and {"verdict", "reason", "physics_pass", "simulated"} <= set(report.columns)


def test_feedback_adds_data_once_with_provenance(finished_loop):
    wd, state, _ = finished_loop
    store = DatasetStore.open(wd / "dataset")
    table = store.table()
    assert table["batch_key"].value_counts().max() >= 1
    keys = set(table["batch_key"])
    assert "initial" in keys
    assert set(table["provenance"]) <= {"simulated", "relabelled"}
    # the iteration-0 feedback step ran once; every batch key appears in one contiguous block
    assert len(store.batch_keys) == len(set(store.batch_keys))
    assert table["sample_id"].is_unique


def test_killed_loop_resumes_without_losing_or_duplicating(tmp_path, finished_loop):
    wd = tmp_path / "loop"
    calls = []
    with pytest.raises(Killed):
        ClosedLoop(tiny_loop_config(wd), runner=counting_runner(calls, kill_at=("train", 1))).run()
    state = json.loads((wd / "state.json").read_text())
    assert "iter0/design" in state["steps"] and "iter1/train" not in state["steps"]
    n_before = len(DatasetStore.open(wd / "dataset"))
    resumed_calls = []
    final = ClosedLoop(tiny_loop_config(wd), runner=counting_runner(resumed_calls)).run()
    assert final.finished
    # finished steps are not run again: the resumed run starts at iteration 1's training
    assert [c[0] for c in resumed_calls] == ["train", "design"]
    table = DatasetStore.open(wd / "dataset").table()
    assert len(table) >= n_before and table["sample_id"].is_unique
    # same data as the uninterrupted run (same seeds → same batches)
    ref = DatasetStore.open(finished_loop[0] / "dataset").table()
    assert sorted(table["batch_key"].unique()) == sorted(ref["batch_key"].unique())
    assert len(table) == len(ref)


def test_resume_with_other_settings_is_refused(tmp_path, finished_loop):
    wd = finished_loop[0]
    with pytest.raises(ValueError, match="different configuration.*n_candidates"):
        ClosedLoop(tiny_loop_config(wd, n_candidates=5))


def test_spectra_run_through_the_same_loop(tmp_path):
    """XRD through every stage: failing targets get their own condition simulated (and
    neighbours), failed spectra are not relabelled, the candidate hit rate is reported."""
    from genmat.generate import GeneratorConfig, SamplerConfig
    from genmat.nn import UNetConfig

    cfg = tiny_loop_config(
        tmp_path / "xrd", modality="xrd", modality_options={}, n_simulate=3, acquire_per_target=3,
        generator=GeneratorConfig(unet=UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1, 2), embed_dim=32,
                                                  padding_mode="replicate", position_features=2),
                                  sampler=SamplerConfig(steps=2, method="euler")))
    state = ClosedLoop(cfg).run()
    assert [row["iteration"] for row in state.history] == [0, 1]
    assert all(0 <= row["candidate_hit_rate"] <= row["hit_rate"] <= 1 for row in state.history)
    store = DatasetStore.open(cfg.dataset)
    table = store.table()
    assert set(table["provenance"]) == {"simulated"}  # nothing relabelled
    targets = pd.read_parquet(cfg.workdir / "targets.parquet")
    acquired = table[table["source_run"] == "loop/iter0"]
    missed = state.steps["iter0/feedback"]["acquired"] // 3
    assert missed >= 1 and len(acquired) == 3 * missed  # a 4-step model misses
    fields = ["frac_anatase", "frac_rutile", "frac_ZnO", "size_nm", "strain", "temperature_K"]
    own = acquired[fields].iloc[::3].to_numpy()  # each missed target's own condition comes first
    assert all(((targets[fields].to_numpy() - row) ** 2).sum(1).min() < 1e-12 for row in own)
    assert (cfg.workdir / "iter_01" / "pictures" / "designs.png").exists()
    assert "candidate_hit_rate" in (cfg.workdir / "report.md").read_text()


def test_a_vae_generator_runs_through_the_loop_and_reports_its_posterior(tmp_path):
    from genmat.generate import GeneratorConfig, SamplerConfig
    from genmat.nn import UNetConfig

    cfg = tiny_loop_config(tmp_path / "vae", max_iterations=1, generator=GeneratorConfig(
        method="vae", unet=UNetConfig(base_channels=8, channel_mults=(1, 2), embed_dim=32),
        sampler=SamplerConfig(steps=1)))
    state = ClosedLoop(cfg).run()
    row = state.history[0]
    assert 0 <= row["vae_active_fraction"] <= 1 and row["vae_kl_total_nats"] >= 0
    assert state.steps["iter0/train"]["method"] == "vae"
    assert (cfg.workdir / "iter_00" / "pictures" / "interpolation.png").exists()


def test_physics_penalised_training_and_physics_guidance_run_through_the_loop(tmp_path):

    base = tiny_loop_config(tmp_path / "unused")
    cfg = tiny_loop_config(tmp_path / "physics", max_iterations=1, physics_guidance=3.0,
                           generator=base.generator.replace(penalties={"fraction": 1.0, "s2": 10.0}))
    state = ClosedLoop(cfg).run()
    row = state.history[0]
    # one physics evaluation per sample per guided network call: Euler's 2 steps at t = 1 and 0.5,
    # both inside the window t >= 0.1; then one per candidate for the physics screen
    assert row["physics_evaluations"] == cfg.n_targets * cfg.n_candidates * (2 + 1)
    assert state.steps["iter0/train"]["step"] == cfg.first_train_steps
    with pytest.raises(ValueError, match="offers double_well, fraction, s2"):
        ClosedLoop(tiny_loop_config(tmp_path / "bad", max_iterations=1, generator=base.generator.replace(penalties={"nope": 1.0}))).run()


def test_a_design_task_runs_through_the_loop_with_its_targets_and_tolerances(tmp_path):
    """``LoopConfig.task``: the task's point targets (drawn as the design benchmark draws
    them), its tolerances in the simulator check, its held-out simulations counted."""
    import numpy as np

    from genmat.modalities import get_modality, get_task

    cfg = tiny_loop_config(tmp_path / "task", task="spinodal-tight32", max_iterations=1)
    assert cfg.modality_options["tolerances"] == {"E_rel": 0.02, "k_rel": 0.005, "density_rel": 0.003}
    assert cfg.modality_options["grid"] == 16  # the user's options win over the task's (32)
    state = ClosedLoop(cfg).run()
    mod = get_modality("spinodal", **cfg.modality_options)
    expected = get_task("spinodal-tight32").targets(mod, cfg.n_targets)
    targets = pd.read_parquet(cfg.workdir / "targets.parquet")
    assert list(targets.columns) == ["E_GPa", "k_W_mK", "density_g_cm3"]
    np.testing.assert_allclose(targets.to_numpy(), expected.point)
    assert state.steps["targets/simulate"]["simulator_calls"] == cfg.n_targets
    # the loop's steps build this modality: its simulator check holds the task's tolerances
    x, rows = mod.simulate(mod.draw_processing(1, np.random.default_rng(0)), seed=0)
    off = pd.DataFrame({"E_GPa": rows["E_GPa"] * 1.015, "k_W_mK": rows["k_W_mK"] * 1.01})  # E 1.5 %, k 1 % off
    tight, default = mod.simulator_checks(x, off), get_modality("spinodal", grid=16).simulator_checks(x, off)
    assert bool(tight["E_pass"][0]) and not bool(tight["k_pass"][0])  # 2 % and 0.5 %
    assert bool(default["E_pass"][0]) and bool(default["k_pass"][0])  # 5 % and 5 %


@pytest.mark.slow
def test_acquisitions_fan_out_in_chunks_and_give_the_same_data(finished_loop, tmp_path):
    """The feedback step's acquisitions go through the oracle's chunked path: 2 rows a
    chunk on 2 Dask workers give the rows one process simulates chunk by chunk (chunks are
    seeded by their first row); run again, nothing is simulated twice and the step still
    counts its oracle calls."""
    import shutil

    import numpy as np

    from genmat.loop.steps import FeedbackParams, feedback_step

    wd, _, _ = finished_loop
    out = {}
    for name, extra in (("one", {"chunk": 2}), ("fanned", {"workers": 2, "chunk": 2})):
        shutil.copytree(wd / "dataset", tmp_path / name)
        params = FeedbackParams(modality="spinodal", modality_options={"grid": 16}, dataset=tmp_path / name,
                                design_dir=wd / "iter_00" / "design", iteration=7, acquire_per_target=3, seed=11,
                                **extra)
        counts = feedback_step(params, progress=False)
        again = feedback_step(params, progress=False)
        assert counts["acquired"] == counts["simulator_calls"] > 0
        assert again["acquired"] == 0 and again["simulator_calls"] == counts["simulator_calls"]
        store = DatasetStore.open(tmp_path / name)
        table = store.table()
        new = table["batch_key"].str.startswith("iter7/acquire").to_numpy()
        out[name] = (store.load()[new], table.loc[new].drop(columns=["batch_key", "created_at"], errors="ignore"))
    np.testing.assert_array_equal(out["one"][0], out["fanned"][0])
    assert out["one"][1].reset_index(drop=True).equals(out["fanned"][1].reset_index(drop=True))
