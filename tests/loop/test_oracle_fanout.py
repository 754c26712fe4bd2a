"""The oracle fanned out on Dask: `genmat simulate --workers N` / `--dask-address` give the
same dataset — samples, table, sample ids, batch keys — as one process, whatever the number
of workers and whichever finishes first; an unreachable scheduler is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genmat.data import DatasetStore
from genmat.errors import ServiceError
from genmat.loop.steps import SimulateParams, oracle_pool, simulate_step


def _params(path, **kw) -> SimulateParams:
    return SimulateParams(**{"modality": "spinodal", "modality_options": {"grid": 16}, "dataset": path, "n": 24,
                             "seed": 5, "chunk": 4, **kw})


def _content(path):
    store = DatasetStore.open(path)
    table = store.table().drop(columns=["created_at"], errors="ignore")
    return store.load(), table


@pytest.mark.slow
def test_one_two_and_four_workers_and_an_existing_cluster_give_the_same_dataset(tmp_path):
    from distributed import LocalCluster

    x1, t1 = None, None
    for workers in (1, 2, 4):
        out = simulate_step(_params(tmp_path / f"w{workers}", workers=workers), progress=False)
        assert out["added"] == 24 and out["simulator_calls"] == 24
        x, t = _content(tmp_path / f"w{workers}")
        if x1 is None:
            x1, t1 = x, t
        np.testing.assert_array_equal(x, x1)  # bit for bit: the chunks' seeds do not depend on the workers
        assert t.equals(t1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        simulate_step(_params(tmp_path / "cluster", dask_address=cluster.scheduler_address), progress=False)
    x, t = _content(tmp_path / "cluster")
    np.testing.assert_array_equal(x, x1)
    assert t.equals(t1)
    assert list(t1["batch_key"].unique()) == [f"simulate/seed5/n24/rows{lo}-{lo + 4}" for lo in range(0, 24, 4)]


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(ServiceError, match="Dask scheduler tcp://127.0.0.1:9 is unreachable"):
        with oracle_pool(1, "tcp://127.0.0.1:9"):
            pass
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "simulate", "--dataset", str(tmp_path / "d"), "--n", "8",
                          "--chunk", "4", "--dask-address", "tcp://127.0.0.1:9"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "Dask scheduler tcp://127.0.0.1:9 is unreachable" in out.stderr
    assert not (tmp_path / "d").exists()  # refused before the dataset was created
