"""Tests of the tracker protocol helpers and the no-op tracker (no MLflow needed)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from genmat.tracking import NullTracker, Tracker, TrackingError, flatten_params, is_better_score
from genmat.tracking.base import MAX_PARAM_VALUE_CHARS


def test_flatten_params_nests_with_dots_and_stringifies() -> None:
    flat = flatten_params({"lr": 1e-3, "model": {"depth": 4, "attn": {"heads": 2}}, "tags": [1, 2]})
    assert flat == {"lr": "0.001", "model.depth": "4", "model.attn.heads": "2", "tags": "[1, 2]"}


def test_flatten_params_truncates_long_values() -> None:
    flat = flatten_params({"long": "x" * (MAX_PARAM_VALUE_CHARS + 10)})
    assert len(flat["long"]) == MAX_PARAM_VALUE_CHARS
    assert flat["long"].endswith("...")


@pytest.mark.parametrize(
    ("new", "current", "higher", "expected"),
    [
        (0.9, 0.8, True, True),
        (0.7, 0.8, True, False),
        (0.7, 0.8, False, True),
        (0.8, 0.8, True, False),  # a tie keeps the champion
        (0.1, None, True, True),
        (0.1, math.nan, False, True),
        (None, 0.5, True, False),
        (math.nan, 0.5, True, False),
        (None, None, True, False),
    ],
)
def test_is_better_score(new: float | None, current: float | None, higher: bool, expected: bool) -> None:
    assert is_better_score(new, current, higher_is_better=higher) is expected


def test_null_tracker_does_nothing(tmp_path: Path) -> None:
    tracker = NullTracker()
    assert isinstance(tracker, Tracker)
    with tracker as run:
        assert run.run_id is None
        child = run.child("inner", tags={"k": "v"})
        assert child is run
        child.log_params({"a": {"b": 1}})
        child.log_metrics({"loss": 0.1}, step=2)
        child.log_artifact(tmp_path / "missing.txt")
        child.log_figure(object(), "fig")
        child.log_table(object(), "table")
        child.set_tags({"x": "y"})
        child.set_description("nothing")
        assert child.log_model(tmp_path / "c.pt", name="m", registered_model="r", score=1.0) is None
        child.end()
    assert list(tmp_path.iterdir()) == []


def test_null_tracker_rejects_unknown_status() -> None:
    with pytest.raises(TrackingError, match="BOGUS"):
        NullTracker().end("BOGUS")


def test_import_is_cheap() -> None:
    """``import genmat.tracking`` must not load MLflow (checked in a fresh interpreter)."""
    import subprocess

    code = "import sys, genmat.tracking; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
