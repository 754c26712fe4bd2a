"""Smoke tests of ``make bench`` (benchmarks/run.py): files and sections, never wall times."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import report, run

SECTIONS_MD = (
    "## 1. Simulator throughput",
    "## 2. Homogenisation",
    "## 3. Sampling time and quality vs steps",
    "## 4. Demo loop hit rate per iteration",
    "## 5. Spectra simulator throughput",
    "## 6. Spectra loop hit rate per iteration",
)
SPECTRA_HISTORY = {
    "iteration": [0, 1, 2], "hit_rate": [0.25, 0.5, 0.75], "hits": [3, 6, 9], "candidate_hit_rate": [0.1, 0.3, 0.6],
    "physics_pass_rate": [0.8, 0.9, 0.95], "fraction_mae": [0.1, 0.05, 0.03],
    "fraction_mae_hits": [float("nan"), 0.02, 0.01], "size_mape": [0.3, 0.2, 0.1], "rwp_ratio_median": [2.0, 1.5, 1.1],
    "simulator_calls_total": [256, 304, 352], "n_train": [256, 304, 352], "train_seconds": [40.0, 30.0, 31.0],
}


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        run.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--quick", "--device", "--workdir", "--spectra-workdir"):
        assert flag in out


def test_bad_repeats_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        run.parse_args(["--repeats", "0"])
    assert exc.value.code == 2


def test_history_is_read_and_plotted(tmp_path):
    hist = pd.DataFrame({"iteration": [0, 1, 2], "hit_rate": [0.25, 0.5, 0.75], "physics_pass_rate": [0.8, 0.9, 0.95],
                         "simulator_calls": [768, 100, 90], "not_a_benchmark_column": [1, 2, 3]})
    hist.to_csv(tmp_path / "history.csv", index=False)
    got = run.read_history(tmp_path)
    assert got["available"] and [r["hit_rate"] for r in got["rows"]] == [0.25, 0.5, 0.75]
    assert "not_a_benchmark_column" not in got["columns"]
    assert report.hit_rate_plot(got["rows"], tmp_path / "hit.png").stat().st_size > 0
    assert run.read_history(tmp_path / "missing") == {"available": False, "path": str(tmp_path / "missing" / "history.csv"),
                                                      "rows": []}


def test_spectra_history_is_read_and_plotted(tmp_path):
    pd.DataFrame(SPECTRA_HISTORY).to_csv(tmp_path / "history.csv", index=False)
    got = run.read_spectra_history(tmp_path)
    assert got["available"] and [r["candidate_hit_rate"] for r in got["rows"]] == [0.1, 0.3, 0.6]
    assert got["columns"] == [c for c in run.SPECTRA_HISTORY_COLUMNS if c in SPECTRA_HISTORY]
    assert "hits" not in got["columns"]
    assert got["rows"][0]["fraction_mae_hits"] is None  # NaN metric (no hits yet) -> JSON null
    assert report.spectra_hit_rate_plot(got["rows"], tmp_path / "hit.png").stat().st_size > 0
    assert run.read_spectra_history(tmp_path / "missing")["available"] is False


def test_markdown_table_formats_cells():
    md = report.table([{"a": 1, "b": 0.123456, "c": float("nan"), "d": "x|y"}], ["a", "b", "c", "d"])
    assert md.splitlines()[2] == "| 1 | 0.123 | – | x\\|y |"


@pytest.mark.slow
def test_quick_run_writes_json_markdown_and_plots(tmp_path):
    (tmp_path / "xrd").mkdir()
    pd.DataFrame(SPECTRA_HISTORY).to_csv(tmp_path / "xrd" / "history.csv", index=False)
    results = run.main(["--quick", "--out", str(tmp_path), "--workdir", str(tmp_path / "none"),
                        "--spectra-workdir", str(tmp_path / "xrd")])

    data = json.loads((tmp_path / "results.json").read_text())
    for key in ("machine", "simulator", "homogenisation", "solvers", "sampling", "loop", "spectra_simulator",
                "spectra_loop"):
        assert key in data, key
    assert data["quick"] is True
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["torch"] and data["machine"]["timestamp_utc"]

    sim = data["simulator"]
    assert sim["batched_samples_per_s"] > 0 and sim["loop_samples_per_s"] > 0 and sim["speedup"] > 0
    assert data["homogenisation"]["speedup"] > 0

    solvers = {(r["kind"], r["material"]): r for r in data["solvers"]}
    assert set(solvers) == {(k, m) for k in ("elastic", "conductivity") for m in ("default", "high contrast")}
    for r in solvers.values():
        assert r["cg_iterations_mean"] > 0 and r["basic_iterations_mean"] > 0
        assert r["max_rel_difference"] < 1e-2  # both solvers converge to the same effective property

    rows = data["sampling"]["rows"]
    assert {r["method"] for r in rows} == {"euler", "heun", "ddim"}
    for r in rows:
        assert r["network_evals"] == r["network_evals_formula"]
        assert r["net_batch"] == data["sampling"]["batch_size"]  # guidance 1: the conditional branch only
        assert 0.0 <= r["physics_pass_rate"] <= 1.0 and r["vf_abs_error_mean"] >= 0
        assert r["seconds_per_sample"] > 0

    assert data["loop"]["available"] is False

    spec = data["spectra_simulator"]
    assert spec["batch_size"] == run.Settings.quick_settings().sim_batch
    assert [r["technique"] for r in spec["rows"]] == ["xrd", "raman"]
    for r in spec["rows"]:
        assert r["batch_size"] == spec["batch_size"] and r["axis"]["n"] == 1024 and r["phases"]
        for k in ("batched_spectra_per_s", "loop_spectra_per_s", "speedup", "physics_checks_spectra_per_s",
                  "simulator_checks_spectra_per_s"):
            assert r[k] > 0, k
        assert 0.0 <= r["physics_pass_rate"] <= 1.0 and 0.0 <= r["simulator_pass_rate"] <= 1.0
        assert isinstance(r["simulator_fail_reasons"], dict)
    sl = data["spectra_loop"]
    assert sl["available"] is True and [r["iteration"] for r in sl["rows"]] == [0, 1, 2]
    assert "candidate_hit_rate" in sl["columns"] and "hits" not in sl["columns"]

    md = (tmp_path / "results.md").read_text()
    for heading in SECTIONS_MD:
        assert heading in md, heading
    assert "run `make demo` first" in md
    assert md.count("\n|---|") >= 7  # throughput ×2, solver iterations, sampler sweep, spectra ×2, spectra loop
    pngs = {"throughput.png", "homogenisation_iterations.png", "sampling_vs_steps.png", "spectra_throughput.png",
            "spectra_loop_hit_rate.png"}
    for png in pngs:
        assert (tmp_path / png).stat().st_size > 0, png
    assert set(results["plots"]) == pngs
    assert not (tmp_path / "loop_hit_rate.png").exists()

    (tmp_path / "nohist").mkdir()
    missing = {**results, "spectra_loop": run.read_spectra_history(tmp_path / "none")}
    assert "run `make demo-xrd`" in run.write_markdown(missing, tmp_path / "nohist").read_text()
