"""Markdown tables and PNG plots for the benchmark results (no genmat imports)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


# ------------------------------------------------------------------------ Markdown
def fmt(v: Any, digits: int = 3) -> str:
    """A cell: floats to ``digits`` significant figures (fixed point when readable)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v == 0:
            return "0"
        a = abs(v)
        if 1e-3 <= a < 1e6:
            decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
            return f"{v:.{decimals}f}"
        return f"{v:.{digits - 1}e}"
    return str(v).replace("|", "\\|")


def table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (dicts) restricted to ``columns``."""
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots
def save(fig, path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def throughput_plot(sim: dict, hom: dict, path: Path) -> Path:
    """Samples/s one at a time vs batched, simulator and homogenisation side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4))
    for ax, res, title in ((axes[0], sim, "Cahn–Hilliard simulator"), (axes[1], hom, "homogenisation (E, k, ρ)")):
        labels = [f"one at a time\n(loop of {res['n_loop']})", f"batched\n(B = {res['batch_size']})"]
        vals = [res["loop_samples_per_s"], res["batched_samples_per_s"]]
        bars = ax.bar(labels, vals, color=["C7", "C0"])
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.3g}/s", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("samples / s")
        ax.set_title(f"{title}: ×{res['speedup']:.2g} batched", fontsize=9)
        ax.set_ylim(0, max(vals) * 1.18)
    fig.tight_layout()
    return save(fig, path)


def iterations_plot(cases: list[dict], path: Path) -> Path:
    """Mean iterations to converge per case, CG vs basic; max shown as a whisker."""
    names = [c["case"] for c in cases]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    width = 0.38
    for k, (solver, color) in enumerate((("basic", "C7"), ("cg", "C0"))):
        means = [c[f"{solver}_iterations_mean"] for c in cases]
        maxs = [c[f"{solver}_iterations_max"] for c in cases]
        pos = [i + (k - 0.5) * width for i in x]
        ax.bar(pos, means, width, label=solver, color=color,
               yerr=[[0] * len(means), [m - a for m, a in zip(maxs, means)]], capsize=3, ecolor="0.3")
    for i, c in enumerate(cases):
        top = max(c["basic_iterations_max"], c["cg_iterations_max"])
        ax.annotate(f"×{c['iteration_ratio']:.2g}", (i, top), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("iterations to tol (mean; whisker = max)")
    ax.set_title("FFT homogenisation: conjugate gradient vs basic fixed point (label: basic/CG)", fontsize=9)
    ax.legend(fontsize=8)
    ax.set_ylim(0, max(max(c["basic_iterations_max"], c["cg_iterations_max"]) for c in cases) * 1.15)
    fig.tight_layout()
    return save(fig, path)


def sampling_plot(rows: list[dict], path: Path) -> Path:
    """Seconds/sample, physics pass rate and |vf error| against solver steps, per method."""
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.4))
    for k, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["steps"])
        steps = [r["steps"] for r in rs]
        style = dict(marker="os^v"[k % 4], color=f"C{k}", label=method)
        axes[0].plot(steps, [r["seconds_per_sample"] for r in rs], **style)
        axes[1].plot(steps, [r["physics_pass_rate"] for r in rs], **style)
        axes[2].plot(steps, [r["vf_abs_error_mean"] for r in rs], **style)
    axes[0].set(xscale="log", yscale="log", xlabel="solver steps", ylabel="seconds / sample",
                title="sampling time")
    axes[1].set(xscale="log", xlabel="solver steps", ylabel="fraction passing", ylim=(-0.02, 1.02),
                title="physics checks pass rate")
    axes[2].set(xscale="log", xlabel="solver steps", ylabel="mean |φ − φ_target|",
                title="volume-fraction error")
    all_steps = sorted({r["steps"] for r in rows})
    for ax in axes:
        ax.set_xticks(all_steps)
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def hit_rate_plot(history: list[dict], path: Path) -> Path:
    """Closed-loop hit rate (and physics pass rate) per iteration."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    it = [r["iteration"] for r in history]
    ax.plot(it, [r.get("hit_rate") for r in history], "o-", color="C0", label="hit rate")
    if all("physics_pass_rate" in r for r in history):
        ax.plot(it, [r["physics_pass_rate"] for r in history], "s--", color="C2", alpha=0.7,
                label="physics pass rate")
    ax.set(xlabel="loop iteration", ylabel="rate", ylim=(-0.02, 1.02), xticks=it,
           title="demo loop: hit rate per iteration")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def _floats(values) -> list[float]:
    """Plot values with None (JSON null, e.g. a NaN metric) as NaN."""
    return [float("nan") if v is None else float(v) for v in values]


def spectra_throughput_plot(rows: list[dict], path: Path) -> Path:
    """Spectra/s per technique: one at a time vs batched oracle calls (log scale), the
    validators' spectra/s on the batched spectra beside them."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    bars = [
        ("loop_spectra_per_s", "oracle, one at a time", "C7"),
        ("batched_spectra_per_s", "oracle, batched", "C0"),
        ("physics_checks_spectra_per_s", "physics checks (batched)", "C2"),
        ("simulator_checks_spectra_per_s", "simulator check (batched)", "C1"),
    ]
    width = 0.8 / len(bars)
    names = [r["technique"] for r in rows]
    for k, (key, label, color) in enumerate(bars):
        pos = [i + (k - (len(bars) - 1) / 2) * width for i in range(len(rows))]
        vals = [r[key] for r in rows]
        hatch = "//" if "checks" in key else None
        drawn = ax.bar(pos, vals, width, label=label, color=color, hatch=hatch, edgecolor="white")
        for b, v in zip(drawn, vals):
            ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{n}\n×{r['speedup']:.2g} batched (B = {r['batch_size']} vs {r['n_loop']} × B=1)"
                        for n, r in zip(names, rows)], fontsize=8)
    ax.set_yscale("log")
    top = max(max(r[key] for key, _, _ in bars) for r in rows)
    low = min(min(r[key] for key, _, _ in bars) for r in rows)
    ax.set_ylim(low / 3, top * 3)
    ax.set_ylabel("spectra / s (log)")
    ax.set_title("1-D spectra: oracle batched vs one at a time; validators on the batch", fontsize=9)
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.tight_layout()
    return save(fig, path)


def spectra_hit_rate_plot(history: list[dict], path: Path, title: str = "spectra loop") -> Path:
    """A spectra loop's candidate hit rate, target hit rate and physics pass rate per iteration."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    it = [r["iteration"] for r in history]
    lines = [
        ("candidate_hit_rate", "candidate hit rate (all candidates)", "D-", "C4"),
        ("hit_rate", "hit rate (targets whose design hits)", "o-", "C0"),
        ("physics_pass_rate", "physics pass rate", "s--", "C2"),
    ]
    for key, label, style, color in lines:
        if any(key in r for r in history):
            ax.plot(it, _floats(r.get(key) for r in history), style, color=color, label=label,
                    alpha=0.7 if key == "physics_pass_rate" else 1.0)
    ax.set(xlabel="loop iteration", ylabel="rate", ylim=(-0.02, 1.02), xticks=it,
           title=f"{title}: hit rate per iteration")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def methods_plot(rows: Sequence[dict], path: Path, reference: dict | None = None, teacher: dict | None = None) -> Path:
    """S2 error and hit rate against network evaluations, one line per (model, sampler);
    the 250-step DDPM's S2 error (+10 %) and 80 % of the teacher's hit rate as guides."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["sampler"]), []).append(r)
    cmap = plt.get_cmap("tab10")
    models = list(dict.fromkeys(r["model"] for r in rows))
    styles = ["-", "--", ":", "-."]
    for (model, sampler), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["network_evals"])
        color = cmap(models.index(model) % 10)
        k = [s for m, s in groups if m == model].index(sampler)
        for ax, key in zip(axes, ("s2_error", "hit_rate")):
            ax.plot([r["network_evals"] for r in rs], [r[key] for r in rs], styles[k % 4], marker="o", ms=4,
                    color=color, label=f"{model} · {sampler}")
    if reference:
        ref = reference["s2_error"]
        axes[0].axhspan(0, 1.1 * ref, color="0.85", zorder=0, label=f"≤ 1.1 × DDPM-250 S2 error ({ref:.3f})")
    if teacher:
        axes[1].axhline(0.8 * teacher["hit_rate"], color="0.4", lw=1, ls="--",
                        label=f"80 % of the teacher's hit rate ({teacher['hit_rate']:.0%})")
    for ax, title in zip(axes, ("S2 error vs simulator (lower is better)", "hit rate on held-out targets")):
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(0, 1.02)
    axes[1].yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = axes[1].get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(h2, l2) if lab not in labels]
    fig.legend(handles + [h for h, _ in extra], labels + [lab for _, lab in extra], loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    return save(fig, path)
