"""Smoke test of the design benchmark (benchmarks/design.py): every approach runs on the
same targets, every oracle call is accounted for, files are written — never wall times."""

from __future__ import annotations

import json

import pytest

from benchmarks import design


@pytest.mark.slow
def test_quick_design_benchmark_writes_tables_and_pictures(tmp_path):
    payload = design.main(["--quick", "--out", str(tmp_path)])
    for name in ("design.json", "design.md", "design_curves.png", "design_amortised.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "design.json").read_text())
    assert [t["task"] for t in saved["tasks"]] == ["spinodal-tight", "spinodal-range"]
    for task in payload["tasks"]:
        rows = {r["approach"].split(" (")[0]: r for r in task["rows"]}
        gm = rows["genmat"]
        assert gm["oracle_calls"] == gm["initial_calls"] + gm["design_calls"] == task["curves"]["genmat"][-1][0]
        assert rows["lookup in genmat's initial data"]["oracle_calls"] == gm["initial_calls"]
        assert all(r["targets"] == task["targets"] == 4 for r in task["rows"])
        assert 0 <= task["random_hit_probability_per_draw"] <= 1
    am = payload["amortised"]
    assert [r["targets"] for r in am["rows"]] == [4, 8]
    assert all(r["total_calls"] == am["dev_calls"] + r["marginal_calls"] for r in am["rows"])
    assert "Break-even" in (tmp_path / "design.md").read_text()
