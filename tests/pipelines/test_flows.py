"""The Prefect flows, run once under the session's Prefect test harness, with MLflow
on a temporary SQLite store: parent run, nested iteration runs, metrics, pictures,
the registered model and its champion alias, and the Prefect summary artifacts."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_loop_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop_result(prefect_harness, tmp_path_factory):
    import os

    wd = tmp_path_factory.mktemp("flow")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{wd / 'mlflow.db'}"
    from pipelines.flows import closed_loop

    with pytest.MonkeyPatch.context() as mp:  # MLflow's system-metrics monitor on, sampling fast
        mp.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
        result = closed_loop(config=tiny_loop_config(wd / "run"), tracking=True)
    return wd, result


def test_closed_loop_flow_records_runs_metrics_and_model(loop_result, monkeypatch):
    wd, result = loop_result
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{wd / 'mlflow.db'}")
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name("genmat-spinodal")
    assert exp is not None and str(wd) in exp.artifact_location
    runs = client.search_runs([exp.experiment_id])
    parent = client.get_run(result["mlflow_run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(result["history"]) == 2
    assert len(runs) == 3  # the train subflows record into the iteration runs, not runs of their own
    assert "prefect.flow_run_id" in parent.data.tags
    assert "system/cpu_utilization_percentage" in parent.data.metrics  # the loop host, while it ran
    lineage = {}
    for child in children:  # the dataset each iteration trained on: the feedback appended in between
        (inp,) = child.inputs.dataset_inputs
        lineage[child.data.params["iteration"]] = (inp.dataset.digest, inp.dataset.profile)
    assert lineage["0"][0] != lineage["1"][0] and '"num_rows": 32' in lineage["0"][1]
    for child in children:
        assert "hit_rate" in child.data.metrics and "simulator_calls_total" in child.data.metrics
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert len(history) >= 2  # the loss curve, step by step
        names = {a.path for a in client.list_artifacts(child.info.run_id, "pictures")}
        assert any(n.endswith("target_vs_simulated.png") for n in names)
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/hit_rate.png", "summary/report.md"} <= summary
    versions = client.search_model_versions("name='genmat-spinodal'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("genmat-spinodal", "champion")
    assert champion.version in {v.version for v in versions}


def test_closed_loop_flow_publishes_prefect_artifacts(loop_result):
    import anyio
    from prefect.client.orchestration import get_client

    async def keys():
        # A full request body: prefect 3.8's client sends nulls this server version rejects.
        body = {"artifacts": {"key": {"any_": ["closed-loop-iterations", "closed-loop-report"]}},
                "sort": "CREATED_DESC", "limit": 10, "offset": 0}
        async with get_client() as client:
            response = await client._client.post("/artifacts/filter", json=body)
            return {a["key"] for a in response.json()}

    assert anyio.run(keys) == {"closed-loop-iterations", "closed-loop-report"}


def test_rerun_of_finished_loop_does_nothing_new(loop_result, monkeypatch):
    from pipelines.flows import closed_loop

    wd, first = loop_result
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{wd / 'mlflow.db'}")
    again = closed_loop(config=tiny_loop_config(wd / "run"), tracking=True)
    assert again["history"] == first["history"]
    assert again["mlflow_run_id"] == first["mlflow_run_id"]
