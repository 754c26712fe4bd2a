"""`genmat up` / `genmat down`, for real on loopback: a Prefect server and an MLflow
tracking server with their stores under one folder; a run logged over HTTP (artifact
included) lands in that folder; `down` stops both and frees the ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from pipelines.server import _free_port


def _genmat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "genmat.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.slow
def test_up_starts_both_servers_a_run_logs_over_http_and_down_stops_them(tmp_path, monkeypatch):
    folder = tmp_path / "services"
    prefect_port, mlflow_port = _free_port(), _free_port()
    out = _genmat("up", "--folder", str(folder), "--prefect-port", str(prefect_port), "--mlflow-port",
                  str(mlflow_port))
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        state = json.loads((folder / "services.json").read_text())
        assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}" in out.stdout
        assert f"export PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in out.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{prefect_port}/api/health", timeout=5) as r:
            assert r.status == 200
        again = _genmat("up", "--folder", str(folder), "--prefect-port", str(prefect_port), "--mlflow-port",
                        str(mlflow_port))
        assert again.returncode == 0 and "already running" in again.stdout
        assert json.loads((folder / "services.json").read_text())["mlflow"]["pid"] == state["mlflow"]["pid"]

        from genmat.tracking.mlflow_tracker import MlflowTracker

        uri = state["mlflow"]["tracking_uri"]
        picture = tmp_path / "note.txt"
        picture.write_text("a picture would go here")
        with MlflowTracker.start("services-test", "over-http", tracking_uri=uri, params={"a": 1}) as run:
            run.log_metrics({"hit_rate": 0.75}, step=0)
            run.log_artifact(picture)
        stored = run.client.get_run(run.run_id)
        assert stored.data.metrics["hit_rate"] == 0.75 and stored.info.status == "FINISHED"
        assert list((folder / "mlflow" / "artifacts").rglob("note.txt"))  # served: written by the server
        assert (folder / "mlflow" / "mlflow.db").exists() and (folder / "prefect").is_dir()
    finally:
        stop = _genmat("down", "--folder", str(folder))
    assert stop.returncode == 0 and "prefect" in stop.stdout and "mlflow" in stop.stdout, stop.stderr
    assert not (folder / "services.json").exists()
    for port in (prefect_port, mlflow_port):  # nothing listens any more (the port may sit in TIME_WAIT)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert "nothing was running" in _genmat("down", "--folder", str(folder)).stdout


def test_a_taken_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = _genmat("up", "--folder", str(tmp_path / "s"), "--prefect-port", str(port), "--mlflow-port",
                      str(_free_port()))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"port {port} on 127.0.0.1 is taken: the prefect server needs it" in out.stderr
    assert not (tmp_path / "s" / "services.json").exists()
