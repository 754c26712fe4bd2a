"""The lab-data benchmark (benchmarks/lab_data.py) runs end to end on a tiny import and
writes its tables and picture; its oracle measures the candidates' phase maps."""

from __future__ import annotations

import json

import pytest

from benchmarks import lab_data


@pytest.mark.slow
def test_quick_lab_benchmark_writes_tables_and_picture(tmp_path):
    out = lab_data.main(["--quick", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "w")])
    assert out["n_imported"] == 48 and out["targets"] == 2 and out["candidates"] == 16
    assert set(out["surrogate_error"]) == {"E_GPa", "density_g_cm3"}
    assert out["both"] <= min(out["surrogate_hits"], out["oracle_hits"]) <= out["checked"]
    assert json.loads((tmp_path / "out" / "lab_data.json").read_text())["grid"] == 16
    assert (tmp_path / "out" / "lab_data.md").exists() and (tmp_path / "out" / "lab_data.png").stat().st_size > 0
