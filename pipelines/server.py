"""A real local Prefect server for scheduled and served flows, and a ``serve`` wrapper.

Prefect's temporary (ephemeral) server, started when ``PREFECT_API_URL`` is unset, does not
fire schedules ("Cannot schedule flows on an ephemeral server"). :func:`local_prefect_server`
starts ``prefect server start`` on loopback instead (or reuses ``PREFECT_API_URL``), and
:func:`serve_flow` serves a flow against it until interrupted::

    from pipelines.server import serve_flow
    from pipelines.flows import closed_loop         # any @flow

    serve_flow(closed_loop, name="nightly", cron="0 2 * * *")
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from genmat.errors import InputError, ServiceError

__all__ = ["PrefectServerError", "local_prefect_server", "serve_flow"]

_log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Seconds to wait for ``/api/health`` after starting the server (a fresh database is migrated first).
STARTUP_TIMEOUT_S = 120.0
#: Seconds between SIGTERM and SIGKILL when stopping the server.
STOP_TIMEOUT_S = 15.0
_LOG_TAIL_LINES = 40


class PrefectServerError(ServiceError):
    """The local Prefect server could not be started (port taken, crash, startup timeout)."""


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _server_command(port: int) -> list[str]:
    """``prefect server start`` on loopback, run by this interpreter."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def _is_healthy(base_url: str, health_path: str = "/api/health") -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}{health_path}", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_healthy(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float,
    health_path: str = "/api/health", what: str = "prefect server", error: type[ServiceError] | None = None,
) -> None:
    """Poll ``health_path`` until it answers; raise ``error`` (default :class:`PrefectServerError`)
    naming ``what`` when the process exits first or the time is up."""
    error = error or PrefectServerError
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            raise error(
                f"{what} exited with code {code} before answering at {base_url}; "
                f"log {log_path}:\n{_log_tail(log_path)}"
            )
        if _is_healthy(base_url, health_path):
            return
        if time.monotonic() > deadline:
            raise error(
                f"{what} did not answer at {base_url}{health_path} within {timeout_s:.0f} s; "
                f"log {log_path}:\n{_log_tail(log_path)}"
            )
        time.sleep(0.25)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it outlives ``timeout_s``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        _log.warning("prefect server (pid %d) ignored SIGTERM; killing it", process.pid)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


@contextmanager
def _api_url_set(api_url: str) -> Iterator[None]:
    """Point this process (settings) and its children (environment) at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        # Prefect reads its settings once at import: the environment alone is not enough here.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


@contextmanager
def local_prefect_server(
    port: int | None = None,
    home: Path | None = None,
    *,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Yield the API URL of a Prefect server that can run schedules.

    If ``PREFECT_API_URL`` is set, that server is used and nothing is started. Otherwise
    ``prefect server start`` runs on ``127.0.0.1:<port>`` (a free port when None) in its own
    process group, ``PREFECT_API_URL`` points at it (environment and Prefect settings) while
    the block runs, and the server is stopped on exit (SIGTERM, SIGKILL after
    :data:`STOP_TIMEOUT_S`).

    Args:
        port: TCP port; must be free.
        home: ``PREFECT_HOME`` of the server (database, server log); default: the user's
            Prefect home, with the log in a new temporary folder.
        startup_timeout_s: seconds to wait for ``/api/health``.

    Raises:
        PrefectServerError: the port is taken, or the server exited or did not answer in
            time (the message ends with the tail of the server log).
    """
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        _log.info("using the Prefect server at %s (PREFECT_API_URL)", existing)
        yield existing
        return

    if port is None:
        port = _free_port()
    elif not _port_is_free(port):
        raise PrefectServerError(f"port {port} on {HOST} is already in use; pass another port or none")
    env = os.environ.copy()
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from loopback
    if home is not None:
        home = Path(home).absolute()
        home.mkdir(parents=True, exist_ok=True)
        env["PREFECT_HOME"] = str(home)
    log_dir = home if home is not None else Path(tempfile.mkdtemp(prefix="genmat-prefect-"))
    log_path = log_dir / "prefect-server.log"
    base_url = f"http://{HOST}:{port}"
    api_url = f"{base_url}/api"

    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            _server_command(port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us, not the server; we stop it in order
        )
    try:
        _log.info("starting a Prefect server at %s (log %s)", base_url, log_path)
        started = time.monotonic()
        _wait_until_healthy(base_url, process, log_path, startup_timeout_s)
        _log.info(
            "Prefect server ready after %.1f s: UI %s, API %s", time.monotonic() - started, base_url, api_url
        )
        with _api_url_set(api_url):
            yield api_url
    finally:
        _stop(process)
        _log.info("Prefect server at %s stopped", base_url)


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve_flow(
    flow: Any,
    *,
    name: str,
    cron: str | None = None,
    interval_s: float | None = None,
    parameters: dict[str, Any] | None = None,
    limit: int | None = None,
) -> None:
    """Serve ``flow`` as deployment ``name`` on a schedule until interrupted (Ctrl-C or SIGTERM).

    Runs inside :func:`local_prefect_server`, so schedules fire even without a configured
    Prefect server. With neither ``cron`` nor ``interval_s`` the deployment has no schedule
    and runs only when triggered (UI, ``prefect deployment run``).

    Args:
        flow: a Prefect flow (an object made by ``@prefect.flow``).
        name: deployment name.
        cron: cron schedule (e.g. ``"0 2 * * *"``).
        interval_s: seconds between scheduled runs.
        parameters: default flow parameters of the deployment's runs.
        limit: most runs of this deployment at once in this process.

    Raises:
        ValueError: ``interval_s`` or ``limit`` is not positive.
        PrefectServerError: the local server could not be started.
    """
    if interval_s is not None and not interval_s > 0:
        raise InputError(f"interval_s must be > 0 seconds, got {interval_s}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    # Until Prefect's runner installs its own handler, SIGTERM unwinds (and stops the server).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_system_exit) if in_main_thread else None
    try:
        with local_prefect_server() as api_url:
            flow_name = getattr(flow, "name", flow)
            _log.info("serving flow %r as deployment %r against %s", flow_name, name, api_url)
            try:
                flow.serve(
                    name=name,
                    cron=cron,
                    interval=interval_s,
                    parameters=parameters,
                    limit=limit,
                )
            except KeyboardInterrupt:
                pass
            _log.info("stopped serving deployment %r", name)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
