"""Shared fixtures: every test gets its own MLflow store; Prefect runs on one
temporary server for the whole session (only for tests that ask for it)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP keeps its default wait policy (spin briefly, then sleep). Session 1 set
# OMP_WAIT_POLICY=PASSIVE against FFT stalls beside the Prefect server thread; measured in
# session 7 it made every small-tensor training test about twice as slow (the GAN known
# answer 89 s → 41 s without it, the whole suite 700–842 s → 562 s) and the Prefect tests no
# faster, so it is gone.


def pytest_collection_modifyitems(config, items):
    """``GENMAT_TEST_ORDER=reverse`` or ``shuffle:SEED`` runs the suite in another order
    (modules reordered, then the tests inside each module, so module fixtures are built
    once): every test must pass whatever ran before it (``make test-shuffled``)."""
    import random

    order = os.environ.get("GENMAT_TEST_ORDER", "")
    if not order:
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    if order == "reverse":
        groups = [g[::-1] for g in groups[::-1]]
    elif order.startswith("shuffle:"):
        rng = random.Random(int(order.partition(":")[2]))
        rng.shuffle(groups)
        for g in groups:
            rng.shuffle(g)
    else:
        raise pytest.UsageError(f"GENMAT_TEST_ORDER = {order!r}; allowed: reverse or shuffle:SEED")
    items[:] = [item for g in groups for item in g]
    print(f"\ntest order: {order}")


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global random state, whatever ran before it
    (library code takes explicit seeds; this catches what a test draws itself)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # no system-metrics sampling thread beside every test's loop (tests that check it turn it on)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def tiny_loop_config(workdir, **overrides):
    """A closed loop small enough for a test: 16×16 micrographs, a handful of steps."""
    from genmat.generate import GeneratorConfig, SamplerConfig
    from genmat.loop import LoopConfig
    from genmat.nn import UNetConfig
    from genmat.train import TrainConfig

    settings = dict(
        workdir=workdir,
        modality_options={"grid": 16},
        initial_samples=32,
        n_targets=2,
        max_iterations=2,
        first_train_steps=4,
        next_train_steps=2,
        n_candidates=3,
        n_simulate=1,
        acquire_per_target=2,
        generator=GeneratorConfig(
            unet=UNetConfig(base_channels=8, channel_mults=(1, 2), embed_dim=32),
            sampler=SamplerConfig(steps=2, method="euler"),
        ),
        train=TrainConfig(batch_size=8, warmup_steps=1, log_every=1, checkpoint_every=2),
        physics_guidance=0.0,  # the spinodal default (30) is tested on its own
    )
    settings.update(overrides)
    return LoopConfig(**settings)
