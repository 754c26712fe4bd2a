from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.sim import CahnHilliardConfig, simulate_spinodal
from genmat.validate import (
    VERDICTS,
    Tolerances,
    ValidateInputError,
    build_report,
    implied_volume_fraction,
    novelty_check,
    physics_checks,
    reference_s2,
    simulator_check,
    summarise,
)

CFG = CahnHilliardConfig(grid=32)
PROCESS = {"temperature_K": 775.0, "time_s": 1800.0}  # τ ≈ 82: quick to simulate


@pytest.fixture(scope="module")
def case():
    """Six candidates: hit, E miss, untargeted hit, copy, uniform field, wrong composition."""
    sims = simulate_spinodal(torch.full((12,), 0.5), PROCESS["temperature_K"], PROCESS["time_s"], CFG, seed=21)
    training = torch.cat([sims[6:], torch.roll(sims[3:4], shifts=(4, 9), dims=(-2, -1))])
    candidates = torch.cat([sims[:4], torch.zeros(1, 1, 32, 32), sims[5:6]])
    meta = pd.DataFrame(
        {
            "target_id": ["t0", "t0", "t1", "t1", "t2", "t3"],
            "candidate": [0, 1, 0, 1, 0, 0],
            "x_B": [0.5, 0.5, 0.5, 0.5, 0.5, 0.65],
            **{k: [v] * 6 for k, v in PROCESS.items()},
        }
    )
    measured = simulator_check(candidates, pd.DataFrame(index=range(6))).sim_E_GPa.to_numpy()
    meta["E_GPa"] = [measured[0], measured[1] / 1.079, np.nan, measured[3], measured[4], np.nan]
    phys = physics_checks(
        candidates,
        expected_volume_fraction=implied_volume_fraction(meta),
        reference_s2=reference_s2(meta, CFG, n_ref=2),
    )
    sim = simulator_check(candidates, meta)
    nov = novelty_check(candidates, training)
    return meta, phys, sim, nov, measured, candidates


def test_verdicts_and_readable_reasons(case):
    meta, phys, sim, nov, measured, _ = case
    report = build_report(meta, phys, sim, nov)
    assert len(report) == 6
    assert report.verdict.tolist() == ["hit", "miss", "hit", "copy", "invalid", "miss"]
    assert set(report.verdict) <= set(VERDICTS)
    reasons = report.reason.tolist()
    target = measured[1] / 1.079
    assert f"E {measured[1]:.1f} GPa is 7.9 % above target {target:.1f} GPa (tolerance 5 %)" in reasons[1]
    assert re.match(r"E \d+\.\d GPa within 0\.0 % of target \d+\.\d GPa \(tolerance 5 %\); novelty", reasons[0])
    assert "no property target" in reasons[2]
    assert re.match(r"copy of training sample 6 \(novelty 0\.00\d ≤ 0\.1\)", reasons[3])
    assert reasons[4].startswith("not two-phase (Otsu score 0.00 < 0.78)")
    assert "volume fraction" in reasons[5] and "0.650 implied by the condition" in reasons[5]
    # one row per candidate, meta first, a column per check
    assert list(report.columns[:6]) == list(meta.columns[:6])
    for col in ("physics_pass", "two_phase_score", "sim_E_GPa", "E_rel_err", "novelty", "verdict", "reason"):
        assert col in report.columns


def test_summarise_counts_and_errors(case):
    meta, phys, sim, nov, measured, _ = case
    summary = summarise(build_report(meta, phys, sim, nov))
    assert summary["n_candidates"] == 6
    assert (summary["n_hit"], summary["n_miss"], summary["n_copy"], summary["n_invalid"]) == (2, 2, 1, 1)
    assert summary["hit_rate"] == pytest.approx(2 / 6)
    assert summary["physics_pass_rate"] == pytest.approx(phys.physics_pass.mean())
    targeted = meta.E_GPa.notna().to_numpy()
    assert summary["E_mae"] == pytest.approx(np.abs(measured - meta.E_GPa.to_numpy())[targeted].mean())
    assert summary["sim_pass_rate"] == pytest.approx(sim.sim_pass[targeted].mean())
    assert summary["mean_novelty"] == pytest.approx(nov.novelty.mean())
    assert math.isnan(summary["k_mae"])  # k never targeted
    assert summary["n_unscreened"] == 0


def test_missing_checks_leave_candidates_unscreened(case):
    meta, phys, sim, nov, _, candidates = case
    only_novelty = build_report(meta, nov)
    assert only_novelty.verdict[3] == "copy"
    assert (only_novelty.verdict.drop(index=3) == "unscreened").all()
    no_sim = build_report(meta, phys)
    assert no_sim.verdict[0] == "unscreened"  # E target but no simulator check
    assert "simulator check was not run" in no_sim.reason[0]
    assert no_sim.verdict[2] == "hit"  # nothing targeted: physics checks decide


def test_thresholds_in_reasons_follow_the_checks_used(case):
    meta, phys, sim, nov, measured, candidates = case
    targets = pd.DataFrame({"E_GPa": [measured[0] / 1.08]})  # 8 % above target
    one = candidates[:1]
    strict = build_report(meta.iloc[:1], physics_checks(one), simulator_check(one, targets))
    loose = build_report(
        meta.iloc[:1], physics_checks(one), simulator_check(one, targets, tolerances=Tolerances(E_rel=0.1))
    )
    assert strict.verdict[0] == "miss" and "8.0 % above target" in strict.reason[0]
    assert "(tolerance 5 %)" in strict.reason[0]
    assert loose.verdict[0] == "hit" and "within 8.0 % of target" in loose.reason[0]
    assert "(tolerance 10 %)" in loose.reason[0]


def test_bad_inputs_raise_typed_errors(case):
    meta, phys, sim, nov, _, candidates = case
    with pytest.raises(ValidateInputError) as err:
        build_report(meta, phys.iloc[:3])
    assert err.value.field == "frames[0]"
    with pytest.raises(ValidateInputError):
        build_report(meta, phys, phys)  # duplicate columns
    with pytest.raises(ValidateInputError):
        summarise(meta)
