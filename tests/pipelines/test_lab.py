"""A lab on loopback, for real (docs/operations.md): `genmat up` (a Prefect server and an
MLflow tracking server with served artifacts, stores under one folder), `genmat deploy`
(the flows as deployments on a CPU pool and a GPU pool with a concurrency limit), real
`prefect worker`s picking the runs up, the closed loop handing its train and design steps
to the GPU pool's worker, the runs on the MLflow server over HTTP, then `genmat down`.

One test, so that the servers start once (they take most of its time)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from genmat.data import DatasetStore
from pipelines.server import _api_url_set, _free_port


def _genmat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "genmat.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def _worker(pool: str, env: dict, cwd, *, once: bool):
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool] + (["--run-once"] if once else [])
    if once:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
                            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, start_new_session=True)


def _stop(worker: subprocess.Popen) -> None:
    """Ctrl-C to the worker's process group (a worker may sit out SIGTERM), SIGKILL after 10 s."""
    os.killpg(worker.pid, signal.SIGINT)
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=20)


@pytest.mark.slow
def test_a_lab_on_loopback_up_deploy_workers_remote_steps_mlflow_server_down(tmp_path):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.deployments import run_deployment

    from genmat.tracking.mlflow_tracker import MlflowTracker
    from pipelines.flows import closed_loop
    from tests.conftest import tiny_loop_config

    folder = tmp_path / "services"
    prefect_port, mlflow_port = _free_port(), _free_port()
    up = ("up", "--folder", str(folder), "--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port))
    out = _genmat(*up)
    try:
        # -- genmat up: both servers, healthy, idempotent
        assert out.returncode == 0, out.stderr[-3000:]
        state = json.loads((folder / "services.json").read_text())
        api, mlflow_uri = state["prefect"]["api_url"], state["mlflow"]["tracking_uri"]
        assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}" in out.stdout
        assert f"export PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in out.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{prefect_port}/api/health", timeout=5) as r:
            assert r.status == 200
        again = _genmat(*up)
        assert again.returncode == 0 and "already running" in again.stdout
        assert json.loads((folder / "services.json").read_text())["mlflow"]["pid"] == state["mlflow"]["pid"]

        # -- an artifact logged over HTTP is written by the server into the folder
        note = tmp_path / "note.txt"
        note.write_text("a picture would go here")
        with MlflowTracker.start("services-test", "over-http", tracking_uri=mlflow_uri, params={"a": 1}) as run:
            run.log_metrics({"hit_rate": 0.75}, step=0)
            run.log_artifact(note)
        assert run.client.get_run(run.run_id).data.metrics["hit_rate"] == 0.75
        assert list((folder / "mlflow" / "artifacts").rglob("note.txt"))
        assert (folder / "mlflow" / "mlflow.db").exists() and (folder / "prefect").is_dir()

        # -- genmat deploy: a CPU pool and a GPU pool (one run at a time); job variables reach the runs
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
        out = _genmat("deploy", "--pool", "genmat-test-cpu", "--gpu-pool", "genmat-test-gpu", "--workdir",
                      str(tmp_path), "--env", "GENMAT_TEST=1", "--env", f"MLFLOW_TRACKING_URI={mlflow_uri}",
                      "--env", "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true",
                      "--env", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL=0.5", env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "simulate/genmat-simulate  (pool genmat-test-cpu)" in out.stdout
        assert "train/genmat-train  (pool genmat-test-gpu)" in out.stdout
        with _api_url_set(api):
            with get_client(sync_client=True) as client:
                assert client.read_work_pool("genmat-test-gpu").concurrency_limit == 1
                dep = client.read_deployment_by_name("simulate/genmat-simulate")
                assert dep.job_variables["env"]["GENMAT_TEST"] == "1" and dep.work_pool_name == "genmat-test-cpu"
                loop_dep = client.read_deployment_by_name("closed_loop/genmat-closed_loop")
                assert loop_dep.parameters["remote_steps"] == ["train", "design"]

            # -- simulate on a CPU-pool worker, then train on a GPU-pool worker (each run once)
            common = {"modality": "spinodal", "modality_options": {"grid": 16}, "dataset": str(tmp_path / "ds")}
            tiny = {"unet": {"base_channels": 8, "channel_mults": [1, 2], "embed_dim": 16}}
            runs = {}
            for flow, pool, params in (
                ("simulate", "genmat-test-cpu", {**common, "n": 8, "seed": 1, "chunk": 4}),
                ("train", "genmat-test-gpu", {**common, "checkpoint": str(tmp_path / "model.ckpt"), "generator": tiny,
                                              "train": {"steps": 3, "batch_size": 4, "log_every": 1}}),
            ):
                extra = {"experiment": "lab"} if flow == "train" else {}
                runs[flow] = run_deployment(f"{flow}/genmat-{flow}", parameters={"params": params, **extra}, timeout=0)
                worker = _worker(pool, env, tmp_path, once=True)
                assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
                with get_client(sync_client=True) as client:
                    run_state = client.read_flow_run(runs[flow].id).state
                assert run_state.is_completed(), (flow, run_state, worker.stdout[-3000:], worker.stderr[-3000:])
        store = DatasetStore.open(tmp_path / "ds")
        assert len(store) == 8 and (tmp_path / "model.ckpt").exists()

        # -- the worker's training run is on the MLflow server: flow-run tag, loss curve, lineage, system metrics
        client = MlflowClient(mlflow_uri)
        (run,) = client.search_runs([client.get_experiment_by_name("lab").experiment_id])
        assert run.data.tags["prefect.flow_run_id"] == str(runs["train"].id)
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.digest == store.digest and '"num_rows": 8' in inp.dataset.profile
        assert any(k.startswith("system/cpu") for k in run.data.metrics)

        # -- the closed loop here hands its train and design steps to the GPU pool's worker
        gpu_worker = _worker("genmat-test-gpu", env, tmp_path, once=False)
        try:
            with _api_url_set(api):
                result = closed_loop(config=tiny_loop_config(tmp_path / "loop", max_iterations=1), tracking=False,
                                     remote_steps=["train", "design"])
                with get_client(sync_client=True) as prefect:
                    ran = {}
                    for d in ("train", "design"):
                        dep = prefect.read_deployment_by_name(f"{d}/genmat-{d}")
                        # (a sort given: prefect 3.8.8's client otherwise sends one its server refuses)
                        everything = prefect.read_flow_runs(sort=FlowRunSort.ID_DESC, limit=50)
                        ran[d] = [r for r in everything if r.deployment_id == dep.id]
        finally:
            _stop(gpu_worker)
        assert len(result["history"]) == 1 and (tmp_path / "loop" / "iter_00" / "design" / "metrics.json").exists()
        assert len(ran["train"]) == 2 and len(ran["design"]) == 1  # the train deployment ran above, and here
        assert all(r.state.is_completed() for r in ran["train"] + ran["design"])
    finally:
        stop = _genmat("down", "--folder", str(folder))

    # -- genmat down: both stopped, the ports free, the state file gone
    assert stop.returncode == 0 and "prefect" in stop.stdout and "mlflow" in stop.stdout, stop.stderr
    assert not (folder / "services.json").exists()
    for port in (prefect_port, mlflow_port):  # nothing listens any more (the port may sit in TIME_WAIT)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert "nothing was running" in _genmat("down", "--folder", str(folder)).stdout
