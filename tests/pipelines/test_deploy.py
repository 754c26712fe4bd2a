"""`genmat deploy`'s errors; deployments run by real workers are in test_lab.py."""

from __future__ import annotations

import os
import subprocess
import sys


def test_deploy_without_a_server_is_one_line_and_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "deploy", "--pool", "p"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "needs a Prefect server: set PREFECT_API_URL" in out.stderr


def test_one_pool_for_cpu_and_gpu_is_refused_before_anything_is_registered(tmp_path):
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "deploy", "--pool", "p", "--gpu-pool", "p"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "gpu_pool = 'p' is the CPU pool too" in out.stderr
