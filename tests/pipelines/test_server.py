"""Tests of the local Prefect server plumbing in :mod:`pipelines.server`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines import server
from pipelines.server import PrefectServerError, local_prefect_server, serve_flow

FLOW_NAME = "genmat-heartbeat"
DEPLOYMENT = "heartbeat-every-3s"

SERVED_SCRIPT = f'''
from prefect import flow

from pipelines.server import serve_flow


@flow(name="{FLOW_NAME}")
def heartbeat(n: int = 0) -> int:
    return n + 1


if __name__ == "__main__":
    serve_flow(heartbeat, name="{DEPLOYMENT}", interval_s=3, parameters={{"n": 41}}, limit=1)
'''


def test_prefect_server_api_imports() -> None:
    """Guards the fastapi pin: new fastapi releases have broken Prefect's server at import."""
    import prefect.server.api  # noqa: F401


def test_sqlalchemy_below_2_1() -> None:
    """Guards a pin: with SQLAlchemy 2.1, Prefect 3.8's scheduler service fails on every loop
    ("Can't evaluate bulk DML statement; please supply a bulk_dml decorated function"), so
    served flows never get a scheduled run. Pin ``sqlalchemy<2.1`` in constraints.txt."""
    import sqlalchemy

    major, minor = (int(part) for part in sqlalchemy.__version__.split(".")[:2])
    assert (major, minor) < (2, 1), f"sqlalchemy {sqlalchemy.__version__} breaks Prefect's scheduler"


def test_existing_api_url_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(server.subprocess, "Popen", _no_process)
    with local_prefect_server() as url:
        assert url == "http://127.0.0.1:9/api"
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"


def _no_process(*args: object, **kwargs: object) -> None:
    raise AssertionError("no server should start when PREFECT_API_URL is set")


def test_taken_port_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PrefectServerError, match=f"port {port}"), local_prefect_server(port, tmp_path):
            pass


def test_crashing_server_reports_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    crash = [sys.executable, "-c", "import sys; print('database is locked'); sys.exit(3)"]
    monkeypatch.setattr(server, "_server_command", lambda port: crash)
    with pytest.raises(PrefectServerError, match=r"(?s)exited with code 3.*database is locked"):
        with local_prefect_server(home=tmp_path):
            pass
    assert "PREFECT_API_URL" not in os.environ


def test_serve_flow_checks_arguments() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        serve_flow(object(), name="x", interval_s=0)
    with pytest.raises(ValueError, match="limit"):
        serve_flow(object(), name="x", limit=0)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_scheduled_run_completes_on_local_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A flow served with a 3 s interval gets a scheduled run that completes; Ctrl-C stops it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    script = tmp_path / "served.py"
    script.write_text(textwrap.dedent(SERVED_SCRIPT))
    home = tmp_path / "prefect-home"
    started = time.monotonic()
    with local_prefect_server(home=home) as api_url:
        assert os.environ["PREFECT_API_URL"] == api_url
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        log_path = tmp_path / "serve.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A shell's background job (`make test &`, some CI runners) ignores SIGINT, and a
                # child inherits that; give the served process Ctrl-C back, as a terminal would.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        try:
            completed = None
            with get_client(sync_client=True) as client:
                while completed is None and time.monotonic() - started < 80:
                    assert proc.poll() is None, log_path.read_text()
                    time.sleep(1)
                    try:
                        deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{DEPLOYMENT}")
                    except Exception:  # not registered yet
                        continue
                    runs = client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                        limit=20,
                    )
                    done = [r for r in runs if r.state is not None and r.state.is_completed()]
                    completed = done[0] if done else None
            assert completed is not None, (
                f"no completed scheduled run after {time.monotonic() - started:.0f} s\n"
                f"serve log:\n{log_path.read_text()}\nserver log (tail):\n"
                + "\n".join((home / "prefect-server.log").read_text().splitlines()[-30:])
            )
            assert completed.auto_scheduled, "the run should come from the schedule, not a manual trigger"
            assert completed.parameters == {"n": 41}
        finally:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
        assert code == 0, log_path.read_text()
    assert "PREFECT_API_URL" not in os.environ
    assert (home / "prefect-server.log").exists()
