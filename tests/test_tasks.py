"""Targets as intervals: parsing, tolerance widening, hits and violation in tolerance
units, targets files, and the task registry's held-out targets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from genmat.conditions import ConditionError
from genmat.modalities import design_tasks, get_modality, get_task
from genmat.tasks import TargetSet, Tolerance, parse_target

TOL = {"E_GPa": Tolerance("rel", 0.05), "density_g_cm3": Tolerance("abs", 0.01), "k_W_mK": Tolerance("rel", 0.05)}


@pytest.mark.parametrize("text, expected", [
    ("E_GPa=180", ("E_GPa", 180.0, 180.0, True)),
    ("E_GPa >= 180", ("E_GPa", 180.0, math.inf, False)),
    ("E_GPa>1.8e2", ("E_GPa", 180.0, math.inf, False)),
    ("density_g_cm3<=2.9", ("density_g_cm3", -math.inf, 2.9, False)),
    ("k_W_mK in [90, 110]", ("k_W_mK", 90.0, 110.0, False)),
    ("k_W_mK=[90,110]", ("k_W_mK", 90.0, 110.0, False)),
])
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text, match", [
    ("E_GPa=nan", "E_GPa = 'nan' is not finite"),
    ("E_GPa>=inf", "is not finite"),
    ("k_W_mK in [110, 90]", "is empty"),
    ("E_GPa~180", "is not understood"),
    ("=180", "is not understood"),
])
def test_bad_targets_name_the_field_and_what_is_allowed(text, match):
    with pytest.raises(ConditionError, match=match):
        parse_target(text)


def test_point_targets_widen_by_their_tolerance_and_violation_counts_in_tolerance_units():
    ts = TargetSet.parse_many([["E_GPa=200", "density_g_cm3<=2.9"], ["k_W_mK in [90, 110]"]], TOL)
    assert ts.fields == ("E_GPa", "density_g_cm3", "k_W_mK")
    np.testing.assert_allclose(ts.lo[0, 0], 190.0)
    np.testing.assert_allclose(ts.hi[0, 0], 210.0)
    values = np.array([[205.0, 2.85, np.nan], [220.0, 2.85, 100.0], [205.0, 2.95, 100.0]])
    v = ts.violation(values)  # (3 values, 2 targets)
    assert v[0, 0] <= 0 and v[1, 0] == pytest.approx(1.0)  # 220 is one 10-GPa tolerance above 210
    assert v[2, 0] == pytest.approx((2.95 - 2.9) / 0.01)  # one-sided: in units of the field's tolerance
    assert v[0, 1] == math.inf  # NaN measurement never hits
    assert ts.hits(values[1:], np.array([1, 1])).all()  # k inside [90, 110]; other fields not asked
    assert ts.describe(0) == "E_GPa=200±10, density_g_cm3<=2.9"


def test_each_field_once_and_only_checkable_fields():
    with pytest.raises(ConditionError, match="given twice"):
        TargetSet.parse_many([["E_GPa=200", "E_GPa>=100"]], TOL)
    with pytest.raises(ConditionError, match="allowed: E_GPa, density_g_cm3, k_W_mK"):
        TargetSet.parse_many([["x_B=0.5"]], TOL)
    with pytest.raises(ConditionError, match="is empty"):
        TargetSet.parse_many([[]], TOL)


def test_targets_file_cells_are_numbers_or_texts():
    frame = pd.DataFrame({"E_GPa": [200, ">=180", None], "k_W_mK": ["in [90, 110]", None, "<=150"]})
    ts = TargetSet.from_frame(frame, TOL)
    assert [ts.describe(i) for i in range(3)] == ["E_GPa=200±10, k_W_mK in [90, 110]", "E_GPa>=180", "k_W_mK<=150"]
    with pytest.raises(ConditionError, match="row 1: E_GPa = 'nan' is not finite"):
        TargetSet.from_frame(pd.DataFrame({"E_GPa": [200, "nan"]}), TOL)


def test_registered_tasks_draw_feasible_targets_their_own_simulations_hit():
    assert {"spinodal-demo", "spinodal-tight", "spinodal-range", "spinodal-many"} <= set(design_tasks())
    task = get_task("spinodal-range")
    mod = get_modality("spinodal", grid=16)
    targets = task.targets(mod, 12)
    assert len(targets) == 12 and targets.reference is not None
    _, rows = mod.simulate(targets.reference, seed=task.seed)  # the held-out simulations themselves
    assert targets.hits(targets.values_of(rows), np.arange(12)).all()
    kinds = np.isinf(targets.lo).sum() + np.isinf(targets.hi).sum()
    assert kinds > 0  # one-sided bounds among them
    with pytest.raises(ConditionError, match="allowed: spinodal-demo"):
        get_task("nope")
