"""Smoke test of the design benchmark (benchmarks/design.py): every approach runs on the
same targets, every oracle call is accounted for, files are written — never wall times."""

from __future__ import annotations

import json

import pytest

from benchmarks import design


@pytest.mark.slow
def test_quick_design_benchmark_writes_tables_and_pictures(tmp_path):
    payload = design.main(["--quick", "--out", str(tmp_path), "--workdir", str(tmp_path / "runs")])
    for name in ("design.json", "design.md", "design_curves.png", "design_amortised.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "design.json").read_text())
    assert [t["task"] for t in saved["tasks"]] == ["spinodal-tight", "spinodal-range", "spinodal-tight32"]
    for task in payload["tasks"]:
        rows = {r["approach"].split(" (")[0]: r for r in task["rows"]}
        gm = rows["genmat"]
        assert gm["oracle_calls"] == gm["initial_calls"] + gm["design_calls"] == task["curves"]["genmat"][-1][0]
        assert rows["lookup in genmat's initial data"]["oracle_calls"] == gm["initial_calls"]
        assert all(r["targets"] == task["targets"] == 4 for r in task["rows"])
        assert 0 <= task["random_hit_probability_per_draw"] <= 1
        micro = task["micrograph"]
        if task["task"] != "spinodal-tight32":  # ranges and the length are beyond the loop's checks
            assert micro is None
            continue
        loop = rows["genmat micrograph loop"]
        # 32 initial simulations + the design step's; the targets' own simulations not counted
        assert loop["oracle_calls"] == micro["oracle_calls"] == 32 + micro["history"][-1][0] - micro["history"][0][0]
        assert 32 <= loop["oracle_calls"] <= 32 + 4 and loop["physics_evaluations"] > 0
        d = micro["distinct"]
        assert d.get("targets", 0) == 0 or (d["calls"] <= d["targets"] * 3 and d["distinct_per_target"]
                                            <= d["hits_per_target"])
    am = payload["amortised"]
    assert [r["targets"] for r in am["rows"]] == [4, 8]
    assert all(r["total_calls"] == am["dev_calls"] + r["marginal_calls"] for r in am["rows"])
    assert "Break-even" in (tmp_path / "design.md").read_text()


def test_the_seed_summary_gives_mean_and_range_per_approach():
    runs = [{"task": "t", "seed": seed, "targets": 4,
             "rows": [{"approach": "a", "targets_hit": h, "oracle_calls": c}]} for seed, h, c in ((0, 2, 10), (1, 4, 30))]
    text = "\n".join(design.seed_summary(runs))
    assert "| a | 2 | 3.00 | 2–4 | 20.0 | 10–30 |" in text
