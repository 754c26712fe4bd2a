"""Data-parallel training (genmat.parallel, genmat.train under torchrun): N processes take
the step one process takes on the whole global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genmat import parallel
from genmat.errors import InputError
from genmat.nn.embeddings import drop_fields

HERE = Path(__file__).resolve().parent


def _blocks(draw, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(one process's draw for 8 rows, the world's blocks of 8 / world rows concatenated),
    each from a generator seeded alike; ``draw(generator, rows)``."""
    one = draw(torch.Generator().manual_seed(7), 8)
    parts = []
    for rank in range(world):
        with parallel.sharded(parallel.Shard(rank, world)):
            parts.append(draw(torch.Generator().manual_seed(7), 8 // world))
    return one, torch.cat(parts)


@pytest.mark.parametrize("world", [2, 4])
def test_batch_draws_are_blocks_of_the_single_process_draw(world):
    mask = torch.ones(8, 3)
    mask[::3, 1] = 0  # some rows lack a field

    def masks(g, rows):  # the "subsets" condition masks draw three times per row
        return drop_fields(mask[parallel.current().block(rows)], 0.3, g, "subsets")

    draws = {
        "rand": lambda g, rows: parallel.rand((rows, 3, 5), g),
        "randn": lambda g, rows: parallel.randn((rows, 2), g),
        "randint": lambda g, rows: parallel.randint(18, (rows,), g),
        "drop_fields": masks,
    }
    for name, draw in draws.items():
        one, joined = _blocks(draw, world)
        assert one.shape[0] == 8 and torch.equal(one, joined), name


def test_draws_leave_every_process_generator_in_the_same_state():
    states = []
    for rank in range(2):
        g = torch.Generator().manual_seed(3)
        with parallel.sharded(parallel.Shard(rank, 2)):
            parallel.randn((4, 2), g)
            parallel.randperm(4, g)
        states.append(g.get_state())
    g = torch.Generator().manual_seed(3)
    parallel.randn((8, 2), g)
    parallel.rand((8,), g)  # what randperm draws for the global batch
    assert torch.equal(states[0], states[1]) and torch.equal(states[0], g.get_state())


def test_randperm_is_a_permutation_of_the_block():
    with parallel.sharded(parallel.Shard(1, 2)):
        perm = parallel.randperm(6, torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(6))
    assert torch.equal(parallel.randperm(6, torch.Generator().manual_seed(0)),
                       torch.randperm(6, generator=torch.Generator().manual_seed(0)))  # one process: unchanged


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(InputError, match=r"batch_size = 10 is not divisible by the 4 .*multiple of 4"):
        parallel.Shard(0, 4).local_size(10)
    assert parallel.Shard(3, 4).local_size(12) == 3 and parallel.Shard(3, 4).block(3) == slice(9, 12)


def test_without_torchrun_there_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not parallel.launched() and parallel.init(torch.device("cpu")) == parallel.Shard()
    assert parallel.local_device(torch.device("cuda")) == torch.device("cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert parallel.launched() and parallel.local_device(torch.device("cuda")) == torch.device("cuda", 1)


def _torchrun(nproc: int, *args: str, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def _same_run(a: Path, b: Path, *, rtol: float = 1e-5, atol: float = 1e-4) -> None:
    """Losses to ``rtol``; weights to ``atol`` — 3 % of one Adam step at lr 3e-3: Adam divides by
    √v, which magnifies the float rounding of the all-reduce in near-zero gradient components
    (measured: losses 1e-7 relative, weights 2e-5 after 6 steps)."""
    ca, cb = (torch.load(p, weights_only=True) for p in (a, b))
    la, lb = torch.tensor(ca["losses"]), torch.tensor(cb["losses"])
    assert la.shape == lb.shape and torch.equal(la[:, 0], lb[:, 0])  # a loss at every step
    torch.testing.assert_close(lb[:, 1], la[:, 1], rtol=rtol, atol=0)
    for part in ("model", "ema"):
        for k in ca[part]:
            torch.testing.assert_close(cb[part][k], ca[part][k], rtol=0, atol=atol, msg=f"{part}.{k}")
    assert torch.equal(ca["rng"], cb["rng"]) and ca["step"] == cb["step"]


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_trajectory(tmp_path):
    """Diffusion, VAE and normalising flow: 6 steps of a global batch of 8 on 2 gloo
    processes give the one-process losses (rel. 1e-5) and weights (abs. 1e-4, float
    rounding of the gradient all-reduce); and a one-process run interrupted after 3 steps
    resumes on 2 processes to the uninterrupted run's end."""
    sys.path.insert(0, str(HERE))
    try:
        import ddp_worker
    finally:
        sys.path.remove(str(HERE))
    methods = ("diffusion", "vae", "normalizing_flow")
    for m in methods:
        ddp_worker.main(m, 6, str(tmp_path / f"{m}-1.ckpt"))
    ddp_worker.main("diffusion", 6, str(tmp_path / "resumed.ckpt"), stop_after=3)
    assert torch.load(tmp_path / "resumed.ckpt", weights_only=True)["call_step"] == 3
    _torchrun(2, str(HERE / "ddp_worker.py"), "6", *(f"{m}={tmp_path / f'{m}-2.ckpt'}" for m in methods),
              f"diffusion={tmp_path / 'resumed.ckpt'}", cwd=tmp_path)
    for m in methods:
        _same_run(tmp_path / f"{m}-1.ckpt", tmp_path / f"{m}-2.ckpt")
    _same_run(tmp_path / "diffusion-1.ckpt", tmp_path / "resumed.ckpt")


@pytest.mark.slow
def test_genmat_train_nproc_per_node(tmp_path):
    """The command a user types: `genmat train --nproc-per-node 2` restarts itself under
    torchrun with the same options and writes the checkpoint one process would."""
    from genmat.loop.steps import SimulateParams, simulate_step

    ds = tmp_path / "ds"
    simulate_step(SimulateParams(modality="spinodal", modality_options={"grid": 16}, dataset=ds, n=8), progress=False)
    common = ["--dataset", str(ds), "--steps", "3", "--batch-size", "4", "--seed", "2", "--penalty", "fraction=0.5"]
    runs = {}
    for n in (1, 2):
        out = subprocess.run([sys.executable, "-m", "genmat", "train", *common, "--checkpoint", str(tmp_path / f"{n}.ckpt"),
                              "--nproc-per-node", str(n)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[n] = out.stdout
    assert runs[1].count("trained to step 3") == runs[2].count("trained to step 3") == 1  # rank 0 alone reports
    ckpts = [torch.load(tmp_path / f"{n}.ckpt", weights_only=True) for n in (1, 2)]
    assert ckpts[0]["model_args"] == ckpts[1]["model_args"]  # the same options reached the training processes
    assert ckpts[1]["model_args"]["generator"]["penalties"] == {"fraction": 0.5}
    _same_run(tmp_path / "1.ckpt", tmp_path / "2.ckpt")


def test_nproc_per_node_needs_a_batch_that_splits(tmp_path):
    out = subprocess.run([sys.executable, "-m", "genmat", "train", "--dataset", str(tmp_path), "--batch-size", "9",
                          "--nproc-per-node", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert "--batch-size = 9 is not divisible by --nproc-per-node = 2" in out.stderr
    if not torch.cuda.is_available():  # two processes on CUDA need two GPUs
        out = subprocess.run([sys.executable, "-m", "genmat", "train", "--dataset", str(tmp_path), "--device", "cuda",
                              "--nproc-per-node", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert out.returncode == 2 and "needs one GPU per process" in out.stderr
