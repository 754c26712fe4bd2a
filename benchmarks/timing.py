"""Side-by-side timing: warm-up, interleaved repeats, medians, CUDA synchronisation."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping

import torch


def sync(device: torch.device) -> None:
    """Wait for queued kernels so that a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fns: Mapping[str, Callable[[], object]],
    device: torch.device,
    *,
    repeats: int = 3,
    warmup: int = 1,
    budget_s: float | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured side by side.

    Every function runs ``warmup`` times untimed first; then each repeat runs every
    function once, alternating the order from repeat to repeat (A B, B A, …) so that
    slow drifts of machine load fall on both sides alike. After the first repeat the
    loop stops early once ``budget_s`` seconds have been spent on timed runs.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    spent = 0.0
    for r in range(max(1, repeats)):
        for name in names if r % 2 == 0 else reversed(names):
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            spent += dt
        if budget_s is not None and spent > budget_s:
            break
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")
