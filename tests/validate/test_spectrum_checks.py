"""Spectrum validators on cases with known answers: simulator spectra pass; a spurious
line, a wrong phase, a dip, a wrong size, wrong fractions or a wrong temperature fail
with the check that names it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genmat.sim import XRD, render_lines
from genmat.validate import build_report
from genmat.validate.spectrum import SpectrumChecks, spectrum_physics_checks, spectrum_simulator_check

PHASES = ("anatase", "rutile", "ZnO")
XRD_ORACLE = XRD()


def _conditions(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.dirichlet([1, 1, 1], n)
    return pd.DataFrame({"frac_anatase": f[:, 0], "frac_rutile": f[:, 1], "frac_ZnO": f[:, 2],
                         "size_nm": rng.uniform(5, 30, n), "strain": rng.uniform(0, 0.003, n),
                         "temperature_K": rng.uniform(300, 1000, n)})


def _simulate(cond: pd.DataFrame, seed: int = 1) -> np.ndarray:
    y, _ = XRD_ORACLE.simulate(PHASES, cond[["frac_anatase", "frac_rutile", "frac_ZnO"]].to_numpy(),
                               size_nm=cond["size_nm"].to_numpy(), strain=cond["strain"].to_numpy(),
                               temperature_K=cond["temperature_K"].to_numpy(), rng=np.random.default_rng(seed))
    return y


@pytest.fixture(scope="module")
def truth():
    cond = _conditions(48)
    return cond, _simulate(cond)


def test_simulated_spectra_pass_the_physics_checks(truth):
    cond, y = truth
    out = spectrum_physics_checks(y, XRD_ORACLE, PHASES, cond)
    assert out["physics_pass"].all(), out.loc[~out["physics_pass"], "physics_reason"].tolist()
    assert (out["unmatched_peaks"] == 0).all() and (out["spurious_fraction"] < 0.05).all()


def test_simulated_spectra_pass_the_simulator_check(truth):
    cond, y = truth
    out = spectrum_simulator_check(y, XRD_ORACLE, PHASES, cond)
    assert out["sim_pass"].mean() >= 0.95
    assert out["fraction_abs_err"].max() < 0.02  # NNLS on Poisson-noisy spectra
    assert out["rwp_ratio"].between(0.9, 1.15).all()  # R_wp of a noisy simulation ≈ R_exp


def test_a_line_where_no_phase_has_a_reflection_is_caught(truth):
    cond, y = truth
    one = cond.iloc[:1]
    spike = y[:1] + render_lines(XRD_ORACLE.axis, [[20.0]], [[0.3]], [[30000.0]], 0.5)  # nothing at 20° 2θ
    out = spectrum_physics_checks(spike, XRD_ORACLE, PHASES, one)
    assert not out["physics_pass"][0] and out["unmatched_peaks"][0] >= 1
    assert "no allowed line" in out["physics_reason"][0]


def test_a_phase_that_the_condition_excludes_is_spurious():
    cond = pd.DataFrame({"frac_anatase": [1.0], "frac_rutile": [0.0], "frac_ZnO": [0.0], "size_nm": [20.0],
                         "strain": [0.0], "temperature_K": [300.0]})
    zno = cond.assign(frac_anatase=0.0, frac_ZnO=1.0)
    y = _simulate(zno)  # a pure ZnO pattern checked as pure anatase
    out = spectrum_physics_checks(y, XRD_ORACLE, PHASES, cond)
    assert not out["physics_pass"][0] and out["spurious_fraction"][0] > 0.3
    assert spectrum_physics_checks(y, XRD_ORACLE, PHASES, zno)["physics_pass"][0]
    # with no fractions given, every phase of the modality is allowed
    assert spectrum_physics_checks(y, XRD_ORACLE, PHASES, cond[["size_nm"]])["physics_pass"][0]


def test_non_finite_and_negative_spectra_fail():
    cond = _conditions(2)
    bad = _simulate(cond)
    bad[0, 100] = np.nan
    bad[1, 300:340] = 0.0  # a hole far below the background
    out = spectrum_physics_checks(bad, XRD_ORACLE, PHASES, cond)
    assert not out["finite"][0] and not out["physics_pass"][0]
    assert out["negative_fraction"][1] > SpectrumChecks().max_negative_fraction and not out["physics_pass"][1]


def test_wrong_fractions_size_and_temperature_are_measured():
    cond = pd.DataFrame({"frac_anatase": [0.6], "frac_rutile": [0.4], "frac_ZnO": [0.0], "size_nm": [10.0],
                         "strain": [0.001], "temperature_K": [400.0]})
    y = _simulate(cond)
    # fractions: the spectrum of 0.6/0.4 checked against 0.3/0.7
    out = spectrum_simulator_check(y, XRD_ORACLE, PHASES, cond.assign(frac_anatase=0.3, frac_rutile=0.7))
    assert out["fraction_abs_err"][0] == pytest.approx(0.3, abs=0.02) and not out["sim_pass"][0]
    assert "phase fraction" in out["sim_reason"][0]
    # size: a 10 nm crystal checked against 20 nm → Scherrer gives ~10 nm, 50 % off
    out = spectrum_simulator_check(y, XRD_ORACLE, PHASES, cond.assign(size_nm=20.0))
    assert out["sim_size_nm"][0] == pytest.approx(10.0, rel=0.1) and not out["sim_pass"][0]
    # temperature: 400 K measured, 1000 K asked → lines shifted, R_wp far above R_exp
    out = spectrum_simulator_check(y, XRD_ORACLE, PHASES, cond.assign(temperature_K=1000.0))
    assert out["rwp_ratio"][0] > 2 and "R_wp" in out["sim_reason"][0]
    ok = spectrum_simulator_check(y, XRD_ORACLE, PHASES, cond)
    assert ok["sim_pass"][0] and ok["sim_size_nm"][0] == pytest.approx(10.0, rel=0.05)


def test_report_verdicts_come_from_the_checks_reasons(truth):
    cond, y = truth
    y = y[:3].copy()
    y[0] += render_lines(XRD_ORACLE.axis, [[20.0]], [[0.3]], [[30000.0]], 0.5)[0]
    targets = cond.iloc[:3].reset_index(drop=True).copy()
    targets.loc[1, ["frac_anatase", "frac_rutile", "frac_ZnO"]] = targets.loc[1, ["frac_rutile", "frac_ZnO",
                                                                                  "frac_anatase"]].to_numpy()
    phys = spectrum_physics_checks(y, XRD_ORACLE, PHASES, targets)
    sim = spectrum_simulator_check(y, XRD_ORACLE, PHASES, targets)
    sim = sim.drop(columns=[c for c in sim.columns if c.startswith("target_")])
    report = build_report(pd.DataFrame({"candidate": range(3)}), phys, sim)
    assert report["verdict"].tolist()[0] == "invalid"
    assert report["verdict"].tolist()[2] == "hit" and report["reason"][2] == "every check passed"
    if phys["physics_pass"][1]:
        assert report["verdict"][1] == "miss" and "phase fraction" in report["reason"][1]
