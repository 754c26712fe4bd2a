"""`genmat up`'s errors; both servers started, used over HTTP and stopped are in test_lab.py."""

from __future__ import annotations

import socket
import subprocess
import sys

from pipelines.server import _free_port


def _genmat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "genmat.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


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
