"""Pictures people would rather look at than read: curves and scatter plots.

Sample grids are drawn by each modality (``Modality.plot_samples``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from genmat.atomic import atomic_write  # noqa: E402


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure to PNG atomically and close it."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def hit_rate_curve(history: pd.DataFrame, goal: float | None = None):
    """Hit rate (and physics pass rate) per loop iteration, simulator calls on a twin axis."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    it = history["iteration"]
    ax.plot(it, history["hit_rate"], "o-", label="hit rate (targets whose design hits)", color="C0")
    if "candidate_hit_rate" in history:
        ax.plot(it, history["candidate_hit_rate"], "D-", label="candidate hit rate (all candidates)", color="C4")
    if "physics_pass_rate" in history:
        ax.plot(it, history["physics_pass_rate"], "s--", label="physics-check pass rate", color="C2", alpha=0.7)
    if goal is not None:
        ax.axhline(goal, color="grey", ls=":", label=f"goal {goal:.0%}")
    ax.set(xlabel="loop iteration", ylabel="rate", ylim=(-0.02, 1.02), xticks=list(it))
    if "simulator_calls_total" in history:
        ax2 = ax.twinx()
        ax2.bar(it, history["simulator_calls_total"], alpha=0.15, color="C1", width=0.5)
        ax2.set_ylabel("simulator calls (cumulative)", color="C1")
    ax.legend(loc="best", fontsize=7, framealpha=0.8)  # the candidate curve sits low: keep it visible
    ax.set_title("closed loop: hit rate per iteration")
    fig.tight_layout()
    return fig


def loss_curves(curves: dict[str, Sequence[tuple[int, float]]]):
    """Training loss against optimiser step, one line per iteration (warm starts continue the step count)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, pts in curves.items():
        if pts:
            steps, losses = zip(*pts)
            ax.plot(steps, losses, label=name)
    ax.set(xlabel="optimiser step", ylabel="training loss", yscale="log")
    ax.legend(fontsize=7)
    ax.set_title("training loss")
    fig.tight_layout()
    return fig


def target_scatter(designs: pd.DataFrame, bands: dict[str, tuple[str, float]]):
    """Simulated (measured) value of each returned design against its target, with the
    tolerance band: ``bands[field] = ("rel", 0.05)`` (±5 %) or ``("abs", 0.05)`` (±0.05)."""
    fields = [f for f in bands if f"target_{f}" in designs and f"sim_{f}" in designs]
    fig, axes = plt.subplots(1, max(1, len(fields)), figsize=(3.2 * max(1, len(fields)), 3.2), squeeze=False)
    for ax, f in zip(axes[0], fields):
        t, s = designs[f"target_{f}"], designs[f"sim_{f}"]
        hit = designs["hit"].astype(bool)
        lo, hi = float(min(t.min(), s.min())), float(max(t.max(), s.max()))
        grid = [lo, hi]
        kind, tol = bands[f]
        if kind == "rel":
            band, label = ([g * (1 - tol) for g in grid], [g * (1 + tol) for g in grid]), f"±{100 * tol:g} %"
        else:
            band, label = ([g - tol for g in grid], [g + tol for g in grid]), f"±{tol:g}"
        ax.fill_between(grid, *band, color="grey", alpha=0.2, label=label)
        ax.plot(grid, grid, "k:", lw=1)
        ax.scatter(t[hit], s[hit], c="C2", label="hit", s=18)
        ax.scatter(t[~hit], s[~hit], c="C3", marker="x", label="miss", s=18)
        ax.set(xlabel=f"target {f}", ylabel=f"simulated {f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def hits_vs_calls(ax, curves: dict[str, Sequence[tuple[int, int]]], n_targets: int, *, budget: int | None = None,
                  points: dict[str, tuple[int, int]] | None = None, title: str = "") -> None:
    """Targets hit against oracle calls (every simulation counted), one step curve per
    approach (genmat first, drawn bold), optional single points ``label → (calls, fraction
    of its targets hit)`` (e.g. a stored BO figure), and genmat's budget as a dotted line."""
    import numpy as np

    for i, (label, hist) in enumerate(curves.items()):
        c, h = zip(*hist)
        style = dict(lw=2.2, color="C0") if i == 0 else dict(lw=1.2, color=f"C{i}")
        ax.step(c, np.asarray(h) / n_targets, where="post", label=label, **style)
    for j, (label, (c, fraction)) in enumerate((points or {}).items()):
        ax.plot([c], [fraction], "s", color=f"C{len(curves) + j}", label=label)
    if budget:
        ax.axvline(budget, color="C0", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=10)
    right = max([c for hist in curves.values() for c, _ in hist] + [c for c, _ in (points or {}).values()] + [10])
    ax.set_xlim(0, right * 1.4)
    ax.set_xlabel("oracle calls (every simulation counted)")
    ax.set_ylabel("fraction of targets hit")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=1, frameon=False)
