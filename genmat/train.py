"""One training loop for every model: EMA, checkpoints, resume, seeds, callbacks.

The loop knows nothing about diffusion: it is handed a model, an objective
``loss_fn(model, batch, generator) -> scalar`` and in-memory tensors. Checkpoints
are plain dicts of tensors and JSON-like values (``torch.load(weights_only=True)``)
that carry what is needed to rebuild their model (``model_args``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from pydantic import Field

from genmat import parallel
from genmat.atomic import atomic_write
from genmat.config import Config
from genmat.errors import InputError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


class TrainConfig(Config):
    steps: int = Field(1500, ge=1)  # optimiser steps in this call (added to any resumed/warm-started step count)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)  # peak AdamW learning rate, after a linear warm-up
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # cosine decay to lr * min_lr_ratio at the last step
    weight_decay: float = Field(0.0, ge=0)
    ema_decay: float = Field(0.995, ge=0, lt=1)  # EMA of weights, used for sampling
    grad_clip: float = Field(1.0, ge=0)  # gradient-norm cap (0 = none)
    seed: int = 0
    log_every: int = Field(25, ge=1)  # steps between callback/metric reports
    checkpoint_every: int = Field(250, ge=1)  # steps between checkpoints (always one at the end)
    device: str = "auto"  # "auto": CUDA when present, else CPU


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; under torchrun a bare ``cuda`` is this process's GPU."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return parallel.local_device(torch.device(device))


class Callback(Protocol):
    def __call__(self, step: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    step: int  # total optimiser steps the model has seen
    losses: list[tuple[int, float]]  # (step, mean loss since the last report)
    checkpoint: Path | None
    seconds: float


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint dict safely (no pickled code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, corrupt or not a checkpoint at all
        raise InputError(f"{path} is not a readable genmat checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(f"{path}: checkpoint format {got!r} is not supported (expected {CHECKPOINT_FORMAT})")
    return ckpt


def _run_settings(train_config: dict | None) -> dict | None:
    """What makes two runs the same run: every setting but the device (a run checkpointed on
    a GPU worker resumes, or reads back as finished, on another host)."""
    return None if train_config is None else {k: v for k, v in train_config.items() if k != "device"}


def _lr_at(cfg: TrainConfig, i: int) -> float:
    if i < cfg.warmup_steps:
        return cfg.lr * (i + 1) / cfg.warmup_steps
    frac = (i - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Sequence[torch.Tensor], torch.Generator], torch.Tensor],
    data: Sequence[torch.Tensor],
    config: TrainConfig,
    *,
    model_args: dict,
    checkpoint_path: str | Path | None = None,
    warm_start: str | Path | None = None,
    resume: bool = True,
    callbacks: Sequence[Callback] = (),
    extra: dict | None = None,
    progress: bool = True,
) -> tuple[nn.Module, TrainResult]:
    """Train ``model`` on tensors ``data`` (each (N, ...), sampled in random minibatches).

    - ``checkpoint_path``: where checkpoints go; if it exists and ``resume``, training
      continues from it (same call count: the run ends at the same step as an
      uninterrupted one).
    - ``warm_start``: a previous checkpoint whose (EMA) weights initialise the model
      (the loop's iteration k starts from k − 1); the optimiser starts fresh.
    - ``model_args``: JSON-like description stored in the checkpoint so that it can
      rebuild its model (see ``genmat.generate.Generator.from_checkpoint``).
    Returns the EMA model (eval mode) and a TrainResult.

    Data-parallel under torchrun (:mod:`genmat.parallel`): every process draws the same
    global minibatch of ``batch_size`` rows and computes its block of it; gradients and the
    loss are averaged in one all-reduce per step; rank 0 alone writes checkpoints, reports
    to ``callbacks`` and shows progress. For objectives that are means over the batch and
    draw through :mod:`genmat.parallel` (diffusion, VAE, normalising flow: tested) the
    trajectory is the single-process one, to float rounding, so a run may resume with
    another process count. Not exactly so for the GAN (per-block mismatch permutation), the
    property regressor's loss (normalised per block by its given fields) and dropout (per
    rank): deterministic, but not the one-process numbers.
    """
    device = resolve_device(config.device)
    shard = parallel.init(device)
    main = shard.rank == 0
    if shard.world > 1:  # what a process draws from torch's global RNG (dropout) differs per rank
        torch.manual_seed(config.seed + shard.rank)
    n = int(data[0].shape[0])
    if n == 0:
        raise InputError("training data is empty: simulate a dataset first")
    if any(int(d.shape[0]) != n for d in data):
        raise InputError(f"training tensors have different lengths: {[int(d.shape[0]) for d in data]}")
    batch = min(config.batch_size, n)
    local = shard.local_size(batch, "batch_size" if batch == config.batch_size else "the dataset size (< batch_size)")
    model = model.to(device)
    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    start, base_step, losses = 0, 0, []
    if warm_start is not None:
        warm = load_checkpoint(warm_start)
        model.load_state_dict(warm["ema"])
        base_step = int(warm["step"])
    parallel.broadcast_module(model, shard)  # every process starts from rank 0's weights
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    # a model with several players (a GAN) may give each its own lr scale and Adam betas
    groups = model.param_groups() if hasattr(model, "param_groups") else [{"params": list(model.parameters())}]
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    if ckpt_path is not None and resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        same = _run_settings(ckpt.get("train_config")) == _run_settings(config.to_dict())
        if same and ckpt.get("call_step", 0) < config.steps:
            model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
            opt.load_state_dict(ckpt["optimizer"])
            gen.set_state(ckpt["rng"])
            start, base_step = int(ckpt["call_step"]), int(ckpt["step"]) - int(ckpt["call_step"])
            losses = [tuple(x) for x in ckpt.get("losses", [])]
            log.info("resuming training from %s at step %d/%d", ckpt_path, start, config.steps)
        elif same:
            log.info("%s already holds a finished run of this config; nothing to train", ckpt_path)
            ema.load_state_dict(ckpt["ema"])
            return ema, TrainResult(int(ckpt["step"]), [tuple(x) for x in ckpt["losses"]], ckpt_path, 0.0)

    def save(call_step: int) -> None:
        if ckpt_path is None:
            return
        if not main:  # rank 0 writes; the others wait until it has
            parallel.barrier(shard)
            return
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "model_args": model_args,
                "extra": extra or {},
                "train_config": config.to_dict(),
                "step": base_step + call_step,
                "call_step": call_step,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": gen.get_state(),
                "losses": [list(x) for x in losses],
            },
            ckpt_path,
        )
        parallel.barrier(shard)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    data_dev = [d.to(device) for d in data]
    model.train()
    t0, running, count = time.perf_counter(), 0.0, 0
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="training",
               disable=not (progress and main))
    for i in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(config, i) * group.get("lr_scale", 1.0)
        idx = torch.randint(0, n, (batch,), generator=gen)[shard.block(local)].to(device)
        with autocast, parallel.sharded(shard):
            loss = loss_fn(model, [d[idx] for d in data_dev], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # the mean over processes: the gradient and loss of the whole global batch
        step_loss = loss.detach().float().reshape(1)
        parallel.all_reduce_mean([p.grad for p in model.parameters() if p.grad is not None] + [step_loss], shard)
        if not torch.isfinite(step_loss):  # every process sees the same value and stops together
            raise FloatingPointError(f"training loss became {step_loss.item()} at step {base_step + i}")
        if config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        with torch.no_grad():
            # from scratch the EMA warms up; a warm start keeps averaging the previous model
            decay = config.ema_decay if warm_start is not None else min(config.ema_decay, (1 + i) / (10 + i))
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
            for b_ema, b in zip(ema.buffers(), model.buffers()):
                b_ema.copy_(b)
        running, count = running + step_loss.item(), count + 1
        if (i + 1) % config.log_every == 0 or i + 1 == config.steps:
            mean = running / count
            losses.append((base_step + i + 1, mean))
            bar.set_postfix(loss=f"{mean:.4f}")
            for cb in callbacks if main else ():
                cb(base_step + i + 1, {"train_loss": mean, "lr": _lr_at(config, i)})
            running, count = 0.0, 0
        if (i + 1) % config.checkpoint_every == 0 or i + 1 == config.steps:
            save(i + 1)
    model.eval()
    return ema, TrainResult(base_step + config.steps, losses, ckpt_path, time.perf_counter() - t0)

