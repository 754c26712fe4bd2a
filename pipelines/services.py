"""``genmat up`` / ``genmat down``: a lab's shared services on this machine, for real.

:func:`up` starts, detached from the calling shell and on loopback,

- a **Prefect server** (``prefect server start``; its database in ``<folder>/prefect``), which
  schedules and records flow runs and which work pools and workers talk to;
- an **MLflow tracking server** (``mlflow server --serve-artifacts``; runs in
  ``<folder>/mlflow/mlflow.db``, artifacts in ``<folder>/mlflow/artifacts``, served over HTTP,
  so a worker on another machine logs pictures and models without a shared disk),

waits until both answer their health checks, and writes ``<folder>/services.json`` (pids,
URLs, logs). Point genmat at them with the two variables it prints
(``PREFECT_API_URL``, ``MLFLOW_TRACKING_URI``). :func:`down` stops both (SIGTERM to each
process group, SIGKILL after 15 s) and removes the file. ``up`` on a folder whose services
answer reports them and starts nothing; a stale file (a service that died) is cleaned first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genmat.atomic import atomic_write
from genmat.errors import ServiceError
from pipelines.server import HOST, _free_port, _is_healthy, _port_is_free, _server_command, _wait_until_healthy

__all__ = ["ServicesError", "up", "down", "status", "STATE_FILE"]

_log = logging.getLogger(__name__)

STATE_FILE = "services.json"
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
HEALTH = {"prefect": "/api/health", "mlflow": "/health"}  # each server's health endpoint


class ServicesError(ServiceError):
    """A service of ``genmat up`` could not be started or stopped (port taken, crash, timeout)."""


def _mlflow_command(port: int, folder: Path) -> list[str]:
    store = folder / "mlflow"
    return [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
            "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts", "--workers", "1"]


def _read(folder: Path) -> dict | None:
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    """Running (a zombie — exited, not yet reaped by whoever adopted it — is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def status(folder: Path) -> dict | None:
    """The services of ``folder`` if every one is running and answers, else None."""
    state = _read(Path(folder).absolute())
    if not state:
        return None
    for name, health in HEALTH.items():
        service = state.get(name, {})
        if not (service.get("pid") and _alive(service["pid"]) and _is_healthy(service.get("url", ""), health)):
            return None
    return state


def _start(command: list[str], log_path: Path, env: dict) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # outlives the shell that ran `genmat up`


def _stop_pid(pid: int, what: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it if it outlives ``timeout_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        try:  # reap it if it is our child (a test's `up` then `down` in one process)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if _alive(pid):
        _log.warning("%s (pid %d) ignored SIGTERM; killing it", what, pid)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def up(folder: Path, *, prefect_port: int | None = 4200, mlflow_port: int | None = 5000,
       timeout_s: float = STARTUP_TIMEOUT_S) -> dict:
    """Start (or find running) the Prefect and MLflow servers of ``folder``; their state."""
    folder = Path(folder).absolute()
    running = status(folder)
    if running:
        _log.info("services of %s already running", folder)
        return {**running, "already_running": True}
    if _read(folder):
        down(folder)  # a stale file: a service died; stop what is left
    ports = {}
    for name, port in (("prefect", prefect_port), ("mlflow", mlflow_port)):
        port = _free_port() if port is None else int(port)
        if not _port_is_free(port):
            raise ServicesError(f"port {port} on {HOST} is taken: the {name} server needs it (pass another port, "
                                "or stop what listens there)")
        ports[name] = port
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # the server is the API; it must not point at another one
    started: dict[str, subprocess.Popen] = {}
    state: dict = {"folder": str(folder)}
    commands = {"prefect": _server_command(ports["prefect"]), "mlflow": _mlflow_command(ports["mlflow"], folder)}
    try:
        for name, command in commands.items():  # both start, then both are waited for
            log_path = folder / f"{name}-server.log"
            started[name] = _start(command, log_path, env)
            state[name] = {"pid": started[name].pid, "url": f"http://{HOST}:{ports[name]}", "log": str(log_path)}
        for name in commands:
            _wait_until_healthy(state[name]["url"], started[name], Path(state[name]["log"]), timeout_s,
                                health_path=HEALTH[name], what=f"the {name} server", error=ServicesError)
    except BaseException:
        for name, process in started.items():
            _stop_pid(process.pid, f"the {name} server")
        raise
    state["prefect"]["api_url"] = state["prefect"]["url"] + "/api"
    state["mlflow"]["tracking_uri"] = state["mlflow"]["url"]
    atomic_write(folder / STATE_FILE, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=2)))
    _log.info("Prefect at %s, MLflow at %s (state %s)", state["prefect"]["url"], state["mlflow"]["url"],
              folder / STATE_FILE)
    return state


def down(folder: Path) -> list[str]:
    """Stop the services ``up`` started in ``folder``; the names of those that were running."""
    folder = Path(folder).absolute()
    state = _read(folder)
    stopped = []
    for name in HEALTH:
        pid = (state or {}).get(name, {}).get("pid")
        if pid and _alive(pid):
            _stop_pid(pid, f"the {name} server")
            stopped.append(name)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return stopped
