"""A long simulation commits in chunks: a crash or a full disk loses at most the chunk in
flight, and the same step run again simulates only the rest — nothing lost, nothing
duplicated, every oracle call counted from the store."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from genmat.data import DatasetStore
from genmat.loop.steps import SimulateParams, simulate_step
from genmat.modalities.spinodal import SpinodalModality


def params(path, **kw) -> SimulateParams:
    return SimulateParams(**{"modality": "spinodal", "modality_options": {"grid": 16}, "dataset": path, "n": 10,
                             "seed": 3, "chunk": 4, **kw})


class DiskFull:
    """The oracle succeeds ``ok`` times, then the disk is full."""

    def __init__(self, ok: int) -> None:
        self.ok, self.calls, self.real = ok, [], SpinodalModality.simulate

    def __call__(self, modality, processing, *, seed, progress=False):
        self.calls.append(len(processing))
        if len(self.calls) > self.ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(modality, processing, seed=seed, progress=progress)

    def install(self, monkeypatch) -> "DiskFull":
        monkeypatch.setattr(SpinodalModality, "simulate", lambda mod, processing, **kw: self(mod, processing, **kw))
        return self


def rows_by_key(path) -> dict[str, int]:
    return DatasetStore.open(path).table()["batch_key"].value_counts().to_dict()


def test_a_crash_loses_one_chunk_and_the_rerun_simulates_only_the_rest(tmp_path, monkeypatch):
    whole = simulate_step(params(tmp_path / "whole"), progress=False)  # the same run, never interrupted
    assert whole == {"added": 10, "total": 10, "batch_key": "simulate/seed3/n10", "simulator_calls": 10}

    crash = DiskFull(ok=2).install(monkeypatch)
    with pytest.raises(OSError):
        simulate_step(params(tmp_path / "ds"), progress=False)
    assert crash.calls == [4, 4, 2]  # two chunks committed, the third lost
    assert len(DatasetStore.open(tmp_path / "ds")) == 8

    monkeypatch.undo()
    again = simulate_step(params(tmp_path / "ds"), progress=False)
    assert again["added"] == 2 and again["total"] == 10
    assert again["simulator_calls"] == 10  # the crashed run's committed chunks are counted too
    assert rows_by_key(tmp_path / "ds") == {
        "simulate/seed3/n10/rows0-4": 4, "simulate/seed3/n10/rows4-8": 4, "simulate/seed3/n10/rows8-10": 2}
    a, b = DatasetStore.open(tmp_path / "ds"), DatasetStore.open(tmp_path / "whole")
    np.testing.assert_array_equal(a.load(), b.load())  # the interruption changed nothing
    cols = ["x_B", "temperature_K", "time_s", "E_GPa"]
    np.testing.assert_array_equal(a.table()[cols].to_numpy(), b.table()[cols].to_numpy())

    done = simulate_step(params(tmp_path / "ds"), progress=False)
    assert done["added"] == 0 and done["simulator_calls"] == 10 and len(a) == 10
    a.verify()


def test_a_rerun_with_another_chunk_size_fills_only_the_gaps(tmp_path, monkeypatch):
    DiskFull(ok=1).install(monkeypatch)
    with pytest.raises(OSError):
        simulate_step(params(tmp_path / "ds"), progress=False)
    monkeypatch.undo()
    out = simulate_step(params(tmp_path / "ds", chunk=3), progress=False)
    assert out["added"] == 6 and out["total"] == 10 and out["simulator_calls"] == 10
    assert rows_by_key(tmp_path / "ds") == {
        "simulate/seed3/n10/rows0-4": 4, "simulate/seed3/n10/rows4-7": 3, "simulate/seed3/n10/rows7-10": 3}


def test_one_chunk_keeps_the_plain_batch_key(tmp_path):
    out = simulate_step(params(tmp_path / "ds", chunk=256, batch_key="initial"), progress=False)
    assert out["simulator_calls"] == 10 and rows_by_key(tmp_path / "ds") == {"initial": 10}
    assert simulate_step(params(tmp_path / "ds", chunk=4, batch_key="initial"), progress=False)["added"] == 0
