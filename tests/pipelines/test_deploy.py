"""`genmat deploy` for real: a Prefect server on loopback, the flows registered as
deployments on a process work pool (and a GPU pool with a concurrency limit), a deployment
run queued and picked up by a real `prefect worker`, run to completion: the dataset it
simulated is there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from genmat.data import DatasetStore
from pipelines.server import local_prefect_server


def test_deploy_without_a_server_is_one_line_and_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "deploy", "--pool", "p"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "needs a Prefect server: set PREFECT_API_URL" in out.stderr


@pytest.mark.slow
def test_a_deployment_runs_on_a_process_worker_to_completion(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    with local_prefect_server(home=tmp_path / "prefect") as api:
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
        out = subprocess.run([sys.executable, "-m", "genmat.cli", "deploy", "--pool", "genmat-test-cpu",
                              "--gpu-pool", "genmat-test-gpu", "--workdir", str(tmp_path), "--env", "GENMAT_TEST=1"],
                             capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "simulate/genmat-simulate  (pool genmat-test-cpu)" in out.stdout
        assert "train/genmat-train  (pool genmat-test-gpu)" in out.stdout
        with get_client(sync_client=True) as client:
            assert client.read_work_pool("genmat-test-gpu").concurrency_limit == 1
            dep = client.read_deployment_by_name("simulate/genmat-simulate")
            assert dep.job_variables["env"] == {"GENMAT_TEST": "1"} and dep.work_pool_name == "genmat-test-cpu"
        params = {"modality": "spinodal", "modality_options": {"grid": 16}, "dataset": str(tmp_path / "ds"),
                  "n": 4, "seed": 1, "chunk": 4}
        run = run_deployment("simulate/genmat-simulate", parameters={"params": params}, timeout=0)
        worker = subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", "genmat-test-cpu",
                                 "--run-once"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        assert state.is_completed(), (state, worker.stdout[-3000:], worker.stderr[-3000:])
    assert len(DatasetStore.open(tmp_path / "ds")) == 4
