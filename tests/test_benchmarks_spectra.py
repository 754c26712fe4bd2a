"""The spectra benchmarks' own code: refinement against the truth, and the guidance table."""

from __future__ import annotations

import pytest

from benchmarks import refinement, spectra_guidance


def test_refinement_benchmark_measures_errors_against_the_truth():
    row = refinement.measure("raman", 3, seed=0)
    assert row["spectra"] == 3 and row["seconds_per_spectrum"] > 0
    assert row["fraction_abs_err_median"] < 0.02 and row["rwp_over_rexp_median"] < 1.2
    assert row["fraction_abs_err_median"] <= row["fraction_abs_err_p90"]
    assert "| raman | 3 |" in refinement.markdown([row])


def test_spectra_guidance_table_sums_hits_over_seeds():
    rows = [{"modality": "xrd", "physics_scale": s, "seed": seed, "candidate_hits": h, "candidates": 48,
             "oracle_calls": 40, "physics_evaluations": 0 if s == 0 else 1824, "seconds_per_target": 0.5,
             **{k: 0.5 for k in spectra_guidance.METRICS}}
            for s, seed, h in ((0.0, 0, 10), (0.0, 1, 14), (1.0, 0, 40), (1.0, 1, 44))]
    table = spectra_guidance.markdown(rows)
    assert "| xrd | 0 | 2 | 24 | 96 | 0.25 |" in table and "| xrd | 1 | 2 | 84 | 96 | 0.875 |" in table


@pytest.mark.parametrize("module", [refinement, spectra_guidance])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0 and "--out" in capsys.readouterr().out
