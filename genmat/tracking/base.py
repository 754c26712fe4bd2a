"""The tracker protocol every genmat stage logs through, and a tracker that does nothing.

Library code takes a :class:`Tracker` and never imports a tracking backend itself;
:class:`NullTracker` is the default so that scripts and tests run without MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from genmat.errors import InputError

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "MAX_PARAM_VALUE_CHARS",
    "NullTracker",
    "Tracker",
    "TrackingError",
    "check_status",
    "flatten_params",
    "is_better_score",
]

#: Longest parameter value MLflow accepts; longer values are cut and marked with "...".
MAX_PARAM_VALUE_CHARS = 6000

#: Run statuses a tracker accepts in :meth:`Tracker.end`.
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


class TrackingError(InputError):
    """A tracking call was given something it cannot record (bad status, missing file, ...)."""


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings into ``{"a.b.c": "value"}`` with every value as a string.

    Args:
        params: parameter mapping; nested mappings are flattened with ``.`` between keys.
        prefix: key prefix for this level (used by the recursion).

    Returns:
        A flat ``dict[str, str]``. Values longer than :data:`MAX_PARAM_VALUE_CHARS`
        are truncated (MLflow rejects them otherwise).
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_VALUE_CHARS:
            text = text[: MAX_PARAM_VALUE_CHARS - 3] + "..."
        flat[name] = text
    return flat


def is_better_score(new: float | None, current: float | None, *, higher_is_better: bool) -> bool:
    """Whether ``new`` beats ``current``; a missing or NaN current score is always beaten.

    A missing or NaN ``new`` score never wins against a recorded one.
    """
    if current is None or math.isnan(current):
        return new is not None and not math.isnan(new)
    if new is None or math.isnan(new):
        return False
    return new > current if higher_is_better else new < current


def check_status(status: str) -> str:
    """Return ``status`` upper-cased, or raise :class:`TrackingError` if it is not a run status."""
    upper = status.upper()
    if upper not in RUN_STATUSES:
        raise TrackingError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    return upper


@runtime_checkable
class Tracker(Protocol):
    """What genmat records about a run: parameters, metrics, artifacts, models.

    Implementations are context managers: leaving the ``with`` block ends the run,
    ``FAILED`` if an exception escaped it, else ``FINISHED``.
    """

    run_id: str | None

    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Tracker:
        """Start a nested run under this one and return its tracker."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters; nested mappings are flattened with dots, values stringified."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record scalar metrics, optionally at a training step."""
        ...

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        """Store a file, or a directory (kept under its own name), as run artifacts."""
        ...

    def log_figure(self, fig: Figure, name: str, artifact_dir: str | None = None) -> None:
        """Store a matplotlib figure as ``<artifact_dir>/<name>.png``."""
        ...

    def log_table(self, df: pd.DataFrame, name: str, artifact_dir: str | None = None) -> None:
        """Store a DataFrame as ``<name>.parquet`` and ``<name>.csv`` artifacts."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags (values stringified)."""
        ...

    def log_dataset(self, path: str | Path, *, digest: str, name: str, rows: int, context: str = "training") -> None:
        """Record a dataset this run read (lineage): where it is, its content digest, its size."""
        ...

    def system_metrics(self) -> AbstractContextManager:
        """Within the block, CPU, memory (and GPU, where there is one) utilisation are sampled onto the run."""
        ...

    def log_model(
        self,
        checkpoint: Path,
        *,
        name: str,
        registered_model: str | None = None,
        score: float | None = None,
        higher_is_better: bool = True,
        predict_params: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Log a generator checkpoint as a servable model; return the registered version or None."""
        ...

    def end(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        ...

    def __enter__(self) -> Tracker: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class NullTracker:
    """A tracker that records nothing; every child is the tracker itself."""

    run_id: str | None = None

    def child(self, name: str, tags: Mapping[str, str] | None = None) -> NullTracker:
        """Return ``self``: a null run has null children."""
        return self

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Do nothing."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Do nothing."""

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        """Do nothing."""

    def log_figure(self, fig: Figure, name: str, artifact_dir: str | None = None) -> None:
        """Do nothing."""

    def log_table(self, df: pd.DataFrame, name: str, artifact_dir: str | None = None) -> None:
        """Do nothing."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Do nothing."""

    def set_description(self, text: str) -> None:
        """Do nothing."""

    def log_dataset(self, path: str | Path, *, digest: str, name: str, rows: int, context: str = "training") -> None:
        """Do nothing."""

    def system_metrics(self) -> AbstractContextManager:
        """Sample nothing."""
        return nullcontext()

    def log_model(
        self,
        checkpoint: Path,
        *,
        name: str,
        registered_model: str | None = None,
        score: float | None = None,
        higher_is_better: bool = True,
        predict_params: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Do nothing; no model version is registered."""
        return None

    def end(self, status: str = "FINISHED") -> None:
        """Check ``status`` and do nothing else."""
        check_status(status)

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
