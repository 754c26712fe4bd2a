"""Smoke test of the methods benchmark (benchmarks/methods.py): every family trains and is
swept, files are written, the acceptance checks read the right rows — never wall times."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import methods


def test_precision_recall_sees_a_missing_mode():
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(-3, 0.3, (100, 2)), rng.normal(3, 0.3, (100, 2))])
    both = np.concatenate([rng.normal(-3, 0.3, (100, 2)), rng.normal(3, 0.3, (100, 2))])
    one = rng.normal(3, 0.3, (200, 2))
    p_both, r_both = methods.precision_recall(real, both)
    p_one, r_one = methods.precision_recall(real, one)
    assert p_both > 0.9 and r_both > 0.9
    assert p_one > 0.9 and r_one == pytest.approx(0.5, abs=0.06)  # precise, but half the modes missed


def test_network_evals_formula():
    assert methods.network_evals("flow_matching", "heun", 10) == 19
    assert methods.network_evals("ddpm", "ddpm", 250) == 250
    assert methods.network_evals("latent_diffusion", "heun", 4) == 8  # 7 latent evaluations + the decoder
    assert methods.network_evals("gan", "generate", 1) == 1


def test_nearest_steps_falls_back_to_the_closest_swept_count():
    quick = methods.Settings.quick_settings()
    assert methods.nearest_steps("flow_matching", "heun", 50, quick) == 4
    assert methods.nearest_steps("ddpm", "ddpm", 250, quick) == 10  # no ddpm count in (1, 2, 4): its fewest
    assert methods.nearest_steps("flow_matching", "heun", 10, methods.Settings()) == 10


@pytest.mark.slow
def test_quick_run_writes_tables_and_pictures_and_resumes_from_its_cache(tmp_path):
    res = methods.main(["--quick", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work")])
    data = json.loads((tmp_path / "out" / "methods.json").read_text())
    models = {r["model"] for r in data["rows"]}
    assert models == {"flow_matching", "ddpm", "vae", "latent_diffusion", "normalizing_flow", "gan", "reflow",
                      "consistency"}
    for r in data["rows"]:
        assert r["network_evals"] >= 1 and r["seconds_per_sample"] > 0
        assert 0 <= r["hit_rate"] <= 1 and 0 <= r["physics_pass_rate"] <= 1 and r["s2_error"] >= 0
    assert [f["family"] for f in data["families"]] == list(methods.FAMILIES)
    nf = next(f for f in data["families"] if f["family"] == "normalizing flow")
    assert nf["exact_likelihood"] and np.isfinite(nf["heldout_nll_nats_per_value"])
    for f in data["families"]:
        assert len(f["hit_rate_seeds"]) == 2 and 0 <= f["recall"] <= 1
    acc = data["acceptance"]
    assert acc["reference"]["model"] == "ddpm" and acc["few_nfe"]["network_evals"] <= 20
    assert acc["student"]["model"] in ("reflow", "consistency") and acc["student"]["steps"] <= 4
    md = (tmp_path / "out" / "methods.md").read_text()
    for heading in ("## Methods × samplers × steps", "## Trade-offs, measured", "## Acceptance (issue 4)"):
        assert heading in md
    for png in ("methods_vs_nfe.png", "methods_samples.png"):
        assert (tmp_path / "out" / png).stat().st_size > 0
    assert res["plots"] == ["methods_vs_nfe.png", "methods_samples.png"]
    # a second run reuses the data and every trained model (one marker per model): nothing is retrained
    s = methods.Settings.quick_settings()
    again = methods.train_models(s, methods.build_data(s, tmp_path / "work"), tmp_path / "work")
    assert {f"{n}_s{sd}": m.train_seconds for (n, sd), m in again.items()} == {
        k: v["seconds"] for k, v in res["train"].items()}
