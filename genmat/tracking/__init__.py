"""Experiment tracking for genmat: a :class:`Tracker` protocol, a no-op tracker, an MLflow tracker.

This package is the only place in genmat that imports ``mlflow``, and it does so lazily:
``import genmat.tracking`` stays cheap, and code that never builds an
:class:`MlflowTracker` never loads MLflow.

Typical use::

    from genmat.tracking import MlflowTracker

    with MlflowTracker.start("spinodal", "train-ddim", params=config) as run:
        with run.child("epoch-sweep") as sweep:
            sweep.log_metrics({"loss": 0.1}, step=3)
        run.log_model(ckpt_path, name="generator", registered_model="spinodal-gen", score=0.93)
"""

from __future__ import annotations

from genmat.tracking.base import NullTracker, Tracker, TrackingError, flatten_params, is_better_score
from genmat.tracking.mlflow_tracker import (
    CHAMPION_ALIAS,
    MlflowTracker,
    default_tracking_uri,
    experiment_artifact_location,
)

__all__ = [
    "CHAMPION_ALIAS",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "TrackingError",
    "default_tracking_uri",
    "experiment_artifact_location",
    "flatten_params",
    "is_better_score",
]
