"""A :class:`~genmat.tracking.base.Tracker` that records to MLflow.

Every call goes through an :class:`mlflow.MlflowClient` with an explicit run id, so one
tracker can be shared by threads (Prefect tasks). The fluent state, which MLflow keeps per
thread (active run) and per process (tracking URI), is touched in one place only:
:meth:`MlflowTracker.log_model`, because ``mlflow.pyfunc.log_model`` needs an active run
and model registration resolves ``models:/`` URIs through the process-wide tracking URI.
There it is set under a process-wide lock and restored afterwards.

``mlflow`` is imported inside the methods, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from genmat.tracking.base import TrackingError, check_status, flatten_params, is_better_score

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

__all__ = [
    "CHAMPION_ALIAS",
    "MlflowTracker",
    "PYFUNC_CODE_PATH",
    "default_tracking_uri",
    "experiment_artifact_location",
]

_log = logging.getLogger(__name__)

#: Registered-model alias that points at the best version logged so far.
CHAMPION_ALIAS = "champion"
#: Model-version tag holding the score the version was registered with.
SCORE_TAG = "score"
#: Run tag MLflow's UI shows as the run description.
DESCRIPTION_TAG = "mlflow.note.content"
#: Run tag that makes a run a child of another in MLflow's UI.
PARENT_TAG = "mlflow.parentRunId"
#: The models-from-code file logged as the pyfunc's ``python_model``.
PYFUNC_CODE_PATH = Path(__file__).with_name("pyfunc_generator.py")

# MLflow's per-request limits for log_batch.
_MAX_PARAMS_OR_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
# Guards MLflow's process-wide fluent state (tracking URI, warnings) and alias updates.
_FLUENT_LOCK = threading.RLock()


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite store ``mlflow.db`` in the working directory."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str(Path.cwd() / "mlflow.db")


def _safe_folder_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def experiment_artifact_location(
    tracking_uri: str, experiment: str, artifact_root: str | None = None
) -> str | None:
    """Where a new experiment's artifacts go, or None to let the server decide.

    * ``artifact_root`` given: ``<artifact_root>/<experiment>``.
    * ``sqlite:///X/mlflow.db``: the folder ``X/mlartifacts/<experiment>`` as a ``file://`` URI
      (a relative ``X`` is taken from the working directory), so artifacts never land in
      ``./mlruns``.
    * anything else (an ``http://`` tracking server, an in-memory SQLite store): None.
    """
    folder = _safe_folder_name(experiment)
    if artifact_root:
        return artifact_root.rstrip("/") + "/" + folder
    if not tracking_uri.startswith("sqlite:///"):
        return None
    # SQLAlchemy's form: "sqlite:///rel/path.db" is relative, "sqlite:////abs/path.db" absolute.
    db_path = unquote(tracking_uri[len("sqlite:///") :].split("?", 1)[0])
    if not db_path or db_path == ":memory:":
        return None
    return (Path(db_path).absolute().parent / "mlartifacts" / folder).as_uri()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _distribution_version(name: str) -> str | None:
    """Installed version of distribution ``name`` without a local part (``2.13.0+cpu`` → ``2.13.0``)."""
    try:
        return metadata.version(name).split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return None


def _pyfunc_requirements() -> list[str]:
    """Pinned requirements of a logged generator (given explicitly: inference is slow)."""
    reqs = []
    for dist in ("mlflow", "torch", "numpy", "pandas", "genmat"):
        version = _distribution_version(dist)
        reqs.append(f"{dist}=={version}" if version else dist)
    return reqs


@contextlib.contextmanager
def _fluent_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide (fluent) tracking URI at ``tracking_uri``, under a lock.

    Needed where MLflow builds its own default client (fluent ``log_model``; resolving the
    logged model while registering a version). Restores the previous URI and
    ``$MLFLOW_TRACKING_URI``, which ``mlflow.set_tracking_uri`` rewrites.
    """
    import mlflow

    with _FLUENT_LOCK:
        env_before = os.environ.get("MLFLOW_TRACKING_URI")
        uri_before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        if uri_before == tracking_uri:
            yield
            return
        mlflow.set_tracking_uri(tracking_uri)
        try:
            yield
        finally:
            # A URI that came from the environment only is restored as "unset", then the
            # environment variable is put back as it was.
            mlflow.set_tracking_uri(None if uri_before == env_before else uri_before)
            if env_before is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = env_before


@contextlib.contextmanager
def _fluent_run(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Make ``run_id`` the fluent active run of this thread (inside :func:`_fluent_tracking_uri`).

    The run keeps its status: MLflow's ``end_run`` would otherwise mark a run that is still
    going FINISHED.
    """
    import mlflow

    with _fluent_tracking_uri(tracking_uri):
        status = mlflow.MlflowClient(tracking_uri).get_run(run_id).info.status
        mlflow.start_run(run_id=run_id)
        try:
            yield
        finally:
            mlflow.end_run(status=status)


class _DropSignatureWarning(logging.Filter):
    """Drops MLflow's "cannot infer a signature" warning: a generator's input is free-form."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature")


class MlflowTracker:
    """One MLflow run (or nested run) and everything logged to it.

    Build one with :meth:`start` (a new top-level run) or :meth:`attach` (an existing run,
    e.g. from another process); nested runs come from :meth:`child`.
    """

    def __init__(
        self, client: MlflowClient, run_id: str, experiment_id: str, tracking_uri: str
    ) -> None:
        self._client = client
        self.run_id: str | None = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self._children: list[MlflowTracker] = []
        self._ended = False
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str,
        *,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        artifact_root: str | None = None,
    ) -> MlflowTracker:
        """Start a run named ``run_name`` in ``experiment`` (created if missing).

        Args:
            experiment: experiment name.
            run_name: run name shown in the UI.
            tracking_uri: MLflow tracking URI; default :func:`default_tracking_uri`.
            tags: run tags.
            params: run parameters (nested mappings flattened with dots).
            artifact_root: parent of the experiment's artifact folder when it is created;
                default: see :func:`experiment_artifact_location`.
        """
        from mlflow import MlflowClient

        uri = tracking_uri or default_tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _get_or_create_experiment(client, uri, experiment, artifact_root)
        run = client.create_run(
            experiment_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()}
        )
        tracker = cls(client, run.info.run_id, experiment_id, uri)
        if params:
            tracker.log_params(params)
        _log.info("MLflow run %s (%s) in experiment %r at %s", run_name, tracker.run_id, experiment, uri)
        return tracker

    @classmethod
    def attach(cls, run_id: str, *, tracking_uri: str | None = None) -> MlflowTracker:
        """A tracker for an existing run (started elsewhere, possibly in another process)."""
        from mlflow import MlflowClient

        uri = tracking_uri or default_tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(run_id)
        return cls(client, run.info.run_id, run.info.experiment_id, uri)

    @property
    def client(self) -> MlflowClient:
        """The :class:`mlflow.MlflowClient` this tracker writes through."""
        return self._client

    def _id(self) -> str:
        if self.run_id is None:  # pragma: no cover - run_id is only None on NullTracker
            raise TrackingError("this tracker has no run")
        return self.run_id

    # -- the Tracker protocol -------------------------------------------------------------

    def child(self, name: str, tags: Mapping[str, str] | None = None) -> MlflowTracker:
        """Start a nested run (tag ``mlflow.parentRunId``) in the same experiment."""
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        all_tags[PARENT_TAG] = self._id()
        run = self._client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        child = MlflowTracker(self._client, run.info.run_id, self.experiment_id, self.tracking_uri)
        with self._lock:
            self._children.append(child)
        return child

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters; nested mappings are flattened with dots and values stringified."""
        from mlflow.entities import Param

        entries = [Param(k, v) for k, v in flatten_params(params).items()]
        for batch in _chunks(entries, _MAX_PARAMS_OR_TAGS_PER_BATCH):
            self._client.log_batch(self._id(), params=batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics at ``step`` (0 when not given)."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        entries = []
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError) as err:
                raise TrackingError(f"metric {key!r} is not a number: {value!r}") from err
            entries.append(Metric(key, number, timestamp, int(step or 0)))
        for batch in _chunks(entries, _MAX_METRICS_PER_BATCH):
            self._client.log_batch(self._id(), metrics=batch)

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        """Log a file into ``artifact_dir``, or a directory as ``<artifact_dir>/<its name>/...``."""
        source = Path(path)
        if source.is_dir():
            target = f"{artifact_dir}/{source.name}" if artifact_dir else source.name
            self._client.log_artifacts(self._id(), str(source), artifact_path=target)
        elif source.is_file():
            self._client.log_artifact(self._id(), str(source), artifact_path=artifact_dir)
        else:
            raise FileNotFoundError(f"cannot log artifact {str(source)!r}: no such file or directory")

    def log_figure(self, fig: Figure, name: str, artifact_dir: str | None = None) -> None:
        """Log a matplotlib figure as ``<artifact_dir>/<name>.png``."""
        file_name = name if name.lower().endswith(".png") else f"{name}.png"
        artifact_file = f"{artifact_dir}/{file_name}" if artifact_dir else file_name
        self._client.log_figure(
            self._id(), fig, artifact_file, save_kwargs={"dpi": 120, "bbox_inches": "tight"}
        )

    def log_table(self, df: pd.DataFrame, name: str, artifact_dir: str | None = None) -> None:
        """Log a DataFrame as ``<name>.parquet`` (typed) and ``<name>.csv`` (readable) artifacts.

        Parquet is skipped with a warning when pyarrow cannot store a column (mixed types).
        """
        frame = df.rename(columns=str)
        with tempfile.TemporaryDirectory(prefix="genmat-table-") as tmp:
            csv_path = Path(tmp) / f"{name}.csv"
            frame.to_csv(csv_path, index=False)
            self.log_artifact(csv_path, artifact_dir)
            parquet_path = Path(tmp) / f"{name}.parquet"
            try:
                frame.to_parquet(parquet_path, index=False)
            except (ImportError, TypeError, ValueError) as err:
                _log.warning("table %r logged as CSV only: parquet failed (%s)", name, err)
            else:
                self.log_artifact(parquet_path, artifact_dir)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags (values stringified)."""
        from mlflow.entities import RunTag

        entries = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for batch in _chunks(entries, _MAX_PARAMS_OR_TAGS_PER_BATCH):
            self._client.log_batch(self._id(), tags=batch)

    def set_description(self, text: str) -> None:
        """Set the run description shown in MLflow's UI (tag ``mlflow.note.content``, Markdown)."""
        self._client.set_tag(self._id(), DESCRIPTION_TAG, text)

    def log_dataset(self, path: str | Path, *, digest: str, name: str, rows: int, context: str = "training") -> None:
        """Record a dataset this run read as an MLflow input (dataset lineage: the run's
        "Datasets" in the UI, ``run.inputs.dataset_inputs`` in the API): its source is the
        folder, its digest the store's content digest, its profile the number of rows."""
        import json

        from mlflow.data.sources import LocalArtifactDatasetSource
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        source = LocalArtifactDatasetSource(str(Path(path).resolve()))
        dataset = Dataset(name=name, digest=digest, source_type=source._get_source_type(), source=source.to_json(),
                          profile=json.dumps({"num_rows": int(rows)}))
        self._client.log_inputs(self._id(), datasets=[DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])

    @contextlib.contextmanager
    def system_metrics(self) -> Iterator[None]:
        """Within the block, MLflow's system-metrics monitor samples CPU, memory, disk,
        network (and GPU where a driver answers) onto this run as ``system/*`` metrics —
        every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (MLflow's default 10).
        ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns it off."""
        if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true").strip().lower() in ("false", "0", "no"):
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines on the console
        interval = float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", 10))
        # resume_logging: a resumed loop attaches to its run again; its samples continue the steps
        monitor = SystemMetricsMonitor(self._id(), sampling_interval=interval, tracking_uri=self.tracking_uri,
                                       resume_logging=True)
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

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
        """Log a genmat checkpoint as an MLflow pyfunc model and optionally register it.

        The model is defined from code (:data:`PYFUNC_CODE_PATH`, no pickle); the checkpoint
        is its artifact ``"checkpoint"``. When ``registered_model`` is given a new version is
        created with tag ``score``; the alias ``champion`` moves to it when the registered
        model has no champion yet or ``score`` beats the champion's recorded score.

        Args:
            checkpoint: checkpoint file (or directory) written by genmat's trainer.
            name: name of the logged model.
            registered_model: registered-model name; None logs without registering.
            score: validation score of this checkpoint (for the champion decision).
            higher_is_better: direction of ``score``.
            predict_params: keyword arguments ``predict`` accepts, with their defaults
                (e.g. ``{"steps": 50, "guidance": 2.0, "seed": 0}``); MLflow forwards only
                params declared here to ``Generator.sample_frame``.

        Returns:
            The registered version (a string such as ``"3"``) or None when not registered.
        """
        import mlflow
        from mlflow.models import infer_signature

        source = Path(checkpoint)
        if not source.exists():
            raise FileNotFoundError(f"checkpoint {str(source)!r} does not exist")
        signature = infer_signature(params=dict(predict_params)) if predict_params else None
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        quiet = _DropSignatureWarning()
        with _fluent_run(self.tracking_uri, self._id()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            pyfunc_logger.addFilter(quiet)
            try:
                info = mlflow.pyfunc.log_model(
                    name=name,
                    python_model=str(PYFUNC_CODE_PATH),
                    artifacts={"checkpoint": str(source)},
                    pip_requirements=_pyfunc_requirements(),
                    signature=signature,
                )
            finally:
                pyfunc_logger.removeFilter(quiet)
        self._client.set_tag(self._id(), "genmat.model_uri", info.model_uri)
        if registered_model is None:
            return None
        with _fluent_tracking_uri(self.tracking_uri):  # the registry resolves models:/ URIs globally
            return self._register(info.model_uri, info.model_id, registered_model, score, higher_is_better)

    def _register(
        self,
        model_uri: str,
        model_id: str,
        registered_model: str,
        score: float | None,
        higher_is_better: bool,
    ) -> str:
        """Create a version of ``registered_model``; move ``champion`` to it if it is better."""
        from mlflow.exceptions import MlflowException

        client = self._client
        try:
            client.create_registered_model(registered_model)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {"genmat.run_id": self._id(), "higher_is_better": str(higher_is_better).lower()}
        if score is not None:
            tags[SCORE_TAG] = repr(float(score))
        version = client.create_model_version(
            registered_model, source=model_uri, run_id=self._id(), tags=tags, model_id=model_id
        ).version
        with _FLUENT_LOCK:  # one champion decision at a time within this process
            aliases = client.get_registered_model(registered_model).aliases
            champion = aliases.get(CHAMPION_ALIAS)
            champion_score = None if champion is None else _version_score(client, registered_model, champion)
            if champion is None or is_better_score(
                None if score is None else float(score), champion_score, higher_is_better=higher_is_better
            ):
                client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, version)
                _log.info(
                    "%s version %s is the new %s (score %s)", registered_model, version, CHAMPION_ALIAS, score
                )
        client.set_registered_model_tag(registered_model, "latest_version", str(version))
        self.set_tags({"genmat.registered_model": registered_model, "genmat.model_version": str(version)})
        return str(version)

    def end(self, status: str = "FINISHED") -> None:
        """End this run (and any child still open) with ``status``; later calls do nothing."""
        final = check_status(status)
        with self._lock:
            if self._ended:
                return
            self._ended = True
            children = list(self._children)
        for child in children:
            child.end(final)
        self._client.set_terminated(self._id(), status=final)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.end("FAILED")


def _version_score(client: MlflowClient, registered_model: str, version: str) -> float | None:
    """The ``score`` tag of a model version as a float, or None when missing or unreadable."""
    raw = client.get_model_version(registered_model, version).tags.get(SCORE_TAG)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def _get_or_create_experiment(
    client: MlflowClient, tracking_uri: str, name: str, artifact_root: str | None
) -> str:
    """Id of experiment ``name``, created (with an explicit artifact location) or restored if needed."""
    from mlflow.exceptions import MlflowException

    existing = client.get_experiment_by_name(name)
    if existing is None:
        location = experiment_artifact_location(tracking_uri, name, artifact_root)
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as err:  # created concurrently by another process
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            existing = client.get_experiment_by_name(name)
            if existing is None:  # pragma: no cover - deleted again in between
                raise
    if existing.lifecycle_stage == "deleted":
        client.restore_experiment(existing.experiment_id)
    return existing.experiment_id
