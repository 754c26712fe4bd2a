"""Tests of :class:`genmat.tracking.MlflowTracker` against a SQLite store in a temporary folder."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pytest

from genmat.tracking import (
    CHAMPION_ALIAS,
    MlflowTracker,
    TrackingError,
    default_tracking_uri,
    experiment_artifact_location,
)

mlflow = pytest.importorskip("mlflow")

EXPERIMENT = "genmat tests"


class Store:
    """Where the module's MLflow data lives."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = mlflow.MlflowClient(self.uri)
        self.artifacts = root / "mlartifacts" / "genmat_tests"

    def start(self, run_name: str, **kwargs: Any) -> MlflowTracker:
        return MlflowTracker.start(EXPERIMENT, run_name, tracking_uri=self.uri, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One SQLite store for the module (MLflow's first connection creates the tables: slow)."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("MPLBACKEND", "Agg")
        mp.chdir(root / "..")  # anything written to the cwd would show up beside the store
        yield Store(root)
        assert not Path("mlruns").exists()


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


def test_artifact_location_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = experiment_artifact_location(f"sqlite:///{tmp_path}/db/mlflow.db", "my exp/1")
    assert absolute == (tmp_path / "db" / "mlartifacts" / "my_exp_1").as_uri()
    monkeypatch.chdir(tmp_path)
    relative = experiment_artifact_location("sqlite:///mlflow.db", "e")
    assert relative == (tmp_path / "mlartifacts" / "e").as_uri()
    assert experiment_artifact_location("http://127.0.0.1:5000", "e") is None
    assert experiment_artifact_location("sqlite:///:memory:", "e") is None
    assert experiment_artifact_location("http://x", "e", artifact_root="s3://bucket/a/") == "s3://bucket/a/e"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri() == "http://127.0.0.1:5000"


def test_params_metrics_tags_land_in_store(store: Store) -> None:
    with store.start("basics", tags={"stage": "test"}, params={"model": {"depth": 3}, "lr": 0.01}) as run:
        run.log_params({"sampler": {"name": "ddim", "steps": 20}})
        for step in range(3):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
        run.set_tags({"modality": "spinodal"})
        run.set_description("# basics\nA test run.")
        run_id = run.run_id
    assert run_id is not None
    stored = store.client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {
        "model.depth": "3", "lr": "0.01", "sampler.name": "ddim", "sampler.steps": "20"
    }
    assert stored.data.metrics["loss"] == pytest.approx(1 / 3)
    assert [m.step for m in store.client.get_metric_history(run_id, "loss")] == [0, 1, 2]
    assert stored.data.tags["stage"] == "test"
    assert stored.data.tags["modality"] == "spinodal"
    assert stored.data.tags["mlflow.note.content"].startswith("# basics")
    experiment = store.client.get_experiment(stored.info.experiment_id)
    assert experiment.name == EXPERIMENT
    assert experiment.artifact_location == store.artifacts.as_uri()


def test_artifacts_figure_and_table(store: Store, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    note = tmp_path / "note.txt"
    note.write_text("hello")
    folder = tmp_path / "grid"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    table = pd.DataFrame({"E_GPa": [1.5, 2.5], "phase": ["a", "b"], 3: [1, 2]})
    with store.start("artifacts") as run:
        run.log_artifact(note)
        run.log_artifact(note, artifact_dir="notes")
        run.log_artifact(folder, artifact_dir="samples")
        run.log_figure(fig, "loss_curve", artifact_dir="plots")
        run.log_table(table, "candidates", artifact_dir="reports")
        with pytest.raises(FileNotFoundError):
            run.log_artifact(tmp_path / "missing.bin")
        run_id = run.run_id
    root = _local_path(store.client.get_run(run_id).info.artifact_uri)
    assert root.is_relative_to(store.artifacts)
    assert (root / "note.txt").read_text() == "hello"
    assert (root / "notes" / "note.txt").exists()
    assert (root / "samples" / "grid" / "sub" / "a.txt").read_text() == "a"
    assert (root / "plots" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(root / "reports" / "candidates.csv")["phase"].tolist() == ["a", "b"]
    back = pd.read_parquet(root / "reports" / "candidates.parquet")
    assert back["E_GPa"].tolist() == [1.5, 2.5]
    assert list(back.columns) == ["E_GPa", "phase", "3"]


def test_child_runs_are_nested_and_ended_with_parent(store: Store) -> None:
    parent = store.start("parent")
    kids = [parent.child(f"trial-{i}", tags={"trial": str(i)}) for i in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:  # trackers are shared by Prefect task threads
        list(pool.map(lambda kid: kid.log_metrics({"score": 1.0}, step=1), kids))
    kids[0].end("FINISHED")
    parent.end("KILLED")
    parent.end("FINISHED")  # a second end does nothing
    assert store.client.get_run(parent.run_id).info.status == "KILLED"
    for i, kid in enumerate(kids):
        stored = store.client.get_run(kid.run_id)
        assert stored.data.tags["mlflow.parentRunId"] == parent.run_id
        assert stored.data.tags["trial"] == str(i)
        assert stored.data.metrics["score"] == 1.0
        assert stored.info.experiment_id == parent.experiment_id
        assert stored.info.status == ("FINISHED" if i == 0 else "KILLED")


def test_context_manager_marks_failures(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.start("fails") as run:
        child = run.child("inner")
        raise RuntimeError("boom")
    assert store.client.get_run(run.run_id).info.status == "FAILED"
    assert store.client.get_run(child.run_id).info.status == "FAILED"


def test_typed_errors(store: Store) -> None:
    with store.start("errors") as run:
        with pytest.raises(TrackingError, match="'loss'"):
            run.log_metrics({"loss": "not a number"})
        with pytest.raises(TrackingError, match="DONE"):
            run.end("DONE")
        with pytest.raises(FileNotFoundError):
            run.log_model(Path("no/such/checkpoint.pt"), name="generator")


def test_attach_reopens_a_run(store: Store) -> None:
    with store.start("attach") as run:
        MlflowTracker.attach(run.run_id, tracking_uri=store.uri).log_metrics({"m": 2.0})
    assert store.client.get_run(run.run_id).data.metrics["m"] == 2.0


@pytest.fixture()
def fake_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``genmat.generate`` whose generator echoes the checkpoint and the params."""
    module = types.ModuleType("genmat.generate")

    class Generator:
        def __init__(self, checkpoint: str) -> None:
            self.label = Path(checkpoint).read_text()

        @classmethod
        def from_checkpoint(cls, path: str) -> Generator:
            return cls(path)

        def sample_frame(self, conditions: pd.DataFrame, steps: int = 1, seed: int = 0) -> pd.DataFrame:
            out = conditions.copy()
            out["checkpoint"] = self.label
            out["steps"] = steps
            out["seed"] = seed
            return out

    setattr(module, "Generator", Generator)
    monkeypatch.setitem(sys.modules, "genmat.generate", module)


def test_log_model_registers_and_moves_champion_only_on_improvement(
    store: Store, tmp_path: Path, fake_generate: None
) -> None:
    name = "spinodal-generator"
    env_before = os.environ["MLFLOW_TRACKING_URI"]
    versions = {}
    earlier = set((store.artifacts / "models").glob("*/artifacts"))  # the module's store: other tests log too
    with store.start("models") as run:
        for label, score in [("first", 0.50), ("better", 0.70), ("worse", 0.60)]:
            ckpt = tmp_path / f"{label}.pt"
            ckpt.write_text(label)
            versions[label] = run.log_model(
                ckpt, name="generator", registered_model=name, score=score,
                predict_params={"steps": 10, "seed": 0},
            )
            aliases = store.client.get_registered_model(name).aliases
            expected = "first" if label == "first" else "better"
            assert str(aliases[CHAMPION_ALIAS]) == versions[expected], label
        # logging a model leaves the run going and the fluent state as it was
        assert store.client.get_run(run.run_id).info.status == "RUNNING"
        assert mlflow.active_run() is None
        assert os.environ["MLFLOW_TRACKING_URI"] == env_before
        assert run.log_model(tmp_path / "first.pt", name="unregistered") is None
    assert versions == {"first": "1", "better": "2", "worse": "3"}
    tags = store.client.get_model_version(name, "3").tags
    assert float(tags["score"]) == pytest.approx(0.60)
    assert tags["genmat.run_id"] == run.run_id
    assert store.client.get_registered_model(name).tags["latest_version"] == "3"
    # the model artifacts live in the experiment's artifact folder, with the code file, no pickle
    model_dirs = sorted(set((store.artifacts / "models").glob("*/artifacts")) - earlier)
    assert len(model_dirs) == 4
    for folder in model_dirs:
        assert (folder / "pyfunc_generator.py").exists()
        assert not list(folder.rglob("*.pkl"))

    # end to end: load the champion and sample through the fake generator
    mlflow.set_tracking_uri(store.uri)  # models:/ URIs resolve through the global tracking URI
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION_ALIAS}")
    finally:
        mlflow.set_tracking_uri(None)
    out = model.predict(pd.DataFrame({"E_GPa": [1.0, 2.0]}), params={"steps": 7})
    assert out["checkpoint"].tolist() == ["better", "better"]
    assert out["steps"].tolist() == [7, 7]
    assert out["seed"].tolist() == [0, 0]


def test_lower_is_better_champion(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "c.pt"
    ckpt.write_text("c")
    name = "spectrum-generator"
    # the process default points elsewhere: log_model must use the tracker's store, then restore it
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    with store.start("lower") as run:
        first = run.log_model(ckpt, name="g", registered_model=name, score=0.3, higher_is_better=False)
        run.log_model(ckpt, name="g", registered_model=name, score=0.4, higher_is_better=False)
        assert str(store.client.get_registered_model(name).aliases[CHAMPION_ALIAS]) == first
        third = run.log_model(ckpt, name="g", registered_model=name, score=0.2, higher_is_better=False)
        assert str(store.client.get_registered_model(name).aliases[CHAMPION_ALIAS]) == third
    assert os.environ["MLFLOW_TRACKING_URI"] == other
    assert mlflow.get_tracking_uri() == other
    assert not (tmp_path / "other.db").exists()


def test_dataset_lineage_is_an_input_of_the_run(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    folder.mkdir()
    tracker = store.start("lineage")
    tracker.log_dataset(folder, digest="0123456789abcdef", name="dataset", rows=48)
    tracker.end()
    (inp,) = store.client.get_run(tracker.run_id).inputs.dataset_inputs
    assert (inp.dataset.name, inp.dataset.digest, inp.dataset.source_type) == ("dataset", "0123456789abcdef", "local")
    assert str(folder.resolve()) in inp.dataset.source and '"num_rows": 48' in inp.dataset.profile
    assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "training"}


def test_system_metrics_are_sampled_onto_the_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tracker = store.start("system metrics")
    with tracker.system_metrics():
        time.sleep(1.0)
    tracker.end()
    metrics = store.client.get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and "system/system_memory_usage_megabytes" in metrics
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")  # MLflow's own switch turns it off
    quiet = store.start("no system metrics")
    with quiet.system_metrics():
        time.sleep(0.5)
    quiet.end()
    assert not any(k.startswith("system/") for k in store.client.get_run(quiet.run_id).data.metrics)
