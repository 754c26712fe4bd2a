"""Data-parallel training: which block of the global batch this process computes, and
the batch's random numbers drawn so that the block does not depend on the process count.

``genmat train --nproc-per-node N`` (or ``torchrun --nproc-per-node N -m genmat train``)
starts N processes. Each holds the whole model and the same seeded generator, draws the
same global minibatch indices, computes the loss of its own block of that minibatch, and
the gradients (and the loss, for logging) are averaged with one ``all_reduce`` per step
over torch.distributed — gloo on CPU, NCCL on CUDA. Weights start equal (broadcast from
rank 0), every process takes the same optimiser step, and rank 0 alone writes
checkpoints and reports.

For that step to be the one a single process takes on the whole minibatch, the
objective's own randomness (diffusion times, noise, condition masks, a VAE's
reparameterisation noise) must be the global batch's too. Objectives therefore draw it
through :func:`rand`, :func:`randn` and :func:`randint`: they draw for the whole global
batch from the generator (in the same state in every process) and return this process's
block. With one process they are the plain draws, so single-process results are
unchanged. They draw on the generator's device and then move the result, so a CPU
generator also serves a model on CUDA.

This module imports only torch and genmat.errors, so that every layer may use it.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from genmat.errors import InputError

__all__ = ["Shard", "all_reduce_mean", "barrier", "broadcast_module", "current", "init", "is_main", "launched",
           "local_device", "rand", "randint", "randn", "randperm", "sharded"]


@dataclass(frozen=True)
class Shard:
    """This process's place: ``rank`` of ``world`` processes; it computes block ``rank`` of
    every global batch (blocks are contiguous and of equal size)."""

    rank: int = 0
    world: int = 1

    def block(self, n_local: int) -> slice:
        return slice(self.rank * n_local, (self.rank + 1) * n_local)

    def local_size(self, n_global: int, what: str = "batch_size") -> int:
        if n_global % self.world:
            raise InputError(f"{what} = {n_global} is not divisible by the {self.world} training processes "
                             f"(allowed: a multiple of {self.world})")
        return n_global // self.world


_CURRENT: ContextVar[Shard] = ContextVar("genmat_shard", default=Shard())


def current() -> Shard:
    return _CURRENT.get()


@contextmanager
def sharded(shard: Shard) -> Iterator[Shard]:
    """Within the block, batch draws (:func:`rand`, …) return ``shard``'s block."""
    token = _CURRENT.set(shard)
    try:
        yield shard
    finally:
        _CURRENT.reset(token)


def _draw(fn: Callable, shape: Sequence[int], generator: torch.Generator | None, device) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    home = generator.device if generator is not None else torch.device("cpu")
    s = _CURRENT.get()
    if s.world == 1 or not shape:
        out = fn(shape, generator=generator, device=home)
    else:  # the whole global batch, then this process's block of it
        out = fn((shape[0] * s.world, *shape[1:]), generator=generator, device=home)[s.block(shape[0])]
    return out if device is None else out.to(device)


def rand(shape: Sequence[int], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """U[0, 1) of ``shape`` (leading dim = this process's batch), on ``device``."""
    return _draw(torch.rand, shape, generator, device)


def randn(shape: Sequence[int], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """N(0, 1) of ``shape`` (leading dim = this process's batch), on ``device``."""
    return _draw(torch.randn, shape, generator, device)


def randint(high: int, shape: Sequence[int], generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Integers in [0, high) of ``shape`` (leading dim = this process's batch), on ``device``."""
    return _draw(lambda sh, **kw: torch.randint(0, int(high), sh, **kw), shape, generator, device)


def randperm(n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """A random permutation of this process's n batch rows. With several processes it is
    the order of this block's keys in a global draw (the generator stays in step), not a
    block of the single-process permutation, which would point into other blocks."""
    if _CURRENT.get().world == 1:  # torch's own permutation: one process draws what it always drew
        return _draw(lambda shape, **kw: torch.randperm(shape[0], **kw), (n,), generator, device)
    return rand((n,), generator, device).argsort()


# --- torch.distributed, as torchrun sets it up -----------------------------------------------------------


def launched() -> bool:
    """True in a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main() -> bool:
    """Rank 0 (or no torchrun): the process that writes checkpoints, reports and logs."""
    return int(os.environ.get("RANK", "0")) == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a bare ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device) -> Shard:
    """Join torchrun's process group (once per process: NCCL for CUDA, gloo for CPU) and
    return this process's shard; ``Shard()`` when not started by torchrun."""
    if not launched():
        return Shard()
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_shutdown)
    return Shard(dist.get_rank(), dist.get_world_size())


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, shard: Shard) -> None:
    """Rank 0's parameters and buffers to every process."""
    if shard.world == 1:
        return
    import torch.distributed as dist

    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def all_reduce_mean(tensors: Sequence[torch.Tensor], shard: Shard) -> None:
    """Average ``tensors`` over the processes in place, in one collective (one flat buffer)."""
    if shard.world == 1 or not tensors:
        return
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= shard.world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def barrier(shard: Shard) -> None:
    if shard.world > 1:
        import torch.distributed as dist

        dist.barrier()
