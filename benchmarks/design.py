"""The design benchmark: does genmat beat what a scientist would do instead?

``python -m benchmarks.design`` (``make bench-design``) runs, per design task of the
registry (``genmat tasks``), on the same oracle, targets and tolerances, counting every
oracle call (training data, design rounds, acquisitions, validation):

- **lookup** — the first sample of genmat's own initial data that meets the target
  (no new calls beyond that data);
- **random library** — prior draws simulated, shared by all targets (curve over its size);
- **Bayesian optimisation** per target (botorch GP + qLogEI, stop at the first hit, capped);
- **genmat** — the recipe loop from scratch (:func:`genmat.loop.recipes.search_recipes`:
  initial prior draws, the interval-conditioned recipe generator, a shared GP screen, one
  simulation per open target and round), and two ablations: the same screen on uniform
  prior proposals (no generator), and the generator without the screen;
- **robustness** — every returned recipe re-simulated with 4 fresh process seeds (the
  Cahn–Hilliard initial noise): how often it holds (same check for every approach, its
  calls in their own column);
- **distinct designs** — for a few hit targets, the 16 best-screened proposals simulated:
  how many distinct recipes (normalised distance > ``--distinct-threshold``) hit;
- **amortised** — genmat's trained model and data designing for 16, 128 and 1000 new
  targets: oracle calls per validated hit against BO's and against a random library of
  the same total budget, and the break-even number of targets against BO.

Writes ``design.json``, ``design.md``, ``design_curves.png`` and ``design_amortised.png``
under ``--out`` (default ``bench_results``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from benchmarks import report
from benchmarks.run import machine_info, setup_logging, write_json
from genmat import baselines
from genmat.loop.recipes import (
    CountingOracle,
    RecipeSearchConfig,
    distinct_count,
    search_recipes,
    unit_cube,
    verify_recipes,
)
from genmat.modalities import get_modality, get_task

log = logging.getLogger("benchmarks.design")


@dataclass(frozen=True)
class Settings:
    tasks: tuple[str, ...] = ("spinodal-demo", "spinodal-tight", "spinodal-range")
    amortised_task: str = "spinodal-many"  # new targets for the amortised view (same fields as the dev task)
    amortised_from: str = "spinodal-tight"  # whose trained model and data design them
    amortised_sizes: tuple[int, ...] = (16, 128, 1000)
    n_targets: int | None = None  # None: the task's own
    grid: int | None = None  # None: the task's own
    search: RecipeSearchConfig = RecipeSearchConfig(initial=256, rounds=6, train_steps=1500, finetune_steps=200)
    amortised_rounds: int = 4
    bo_max_calls: int = 40
    library_budget: int = 2048
    robustness_seeds: int = 4
    distinct_targets: int = 8
    distinct_per_target: int = 16
    distinct_threshold: float = 0.1  # in the recipe's [-1, 1]^D coordinates (5 % of each range)
    ablations: bool = True

    @classmethod
    def quick(cls) -> "Settings":
        return cls(tasks=("spinodal-tight", "spinodal-range"), amortised_sizes=(4, 8), n_targets=4, grid=16,
                   search=RecipeSearchConfig(initial=48, rounds=2, proposals=8, train_steps=30, finetune_steps=5,
                                             batch_size=32),
                   amortised_rounds=1, bo_max_calls=3, library_budget=96, robustness_seeds=2, distinct_targets=2,
                   distinct_per_target=3)


def _setup(name: str, s: Settings):
    task = get_task(name)
    options = dict(task.modality_options)
    if s.grid is not None:
        options["grid"] = s.grid
    modality = get_modality(task.modality, **options)
    return task, modality, options


def _at_budget(history: Sequence[tuple[int, int]], budget: int) -> int:
    """Targets hit by a curve at ``budget`` calls."""
    return max([h for c, h in history if c <= budget], default=0)


def _row(name: str, hits: int, n: int, calls: int, seconds: float, robust: np.ndarray, **extra) -> dict:
    held = robust[np.isfinite(robust)]
    return {"approach": name, "targets_hit": hits, "targets": n, "hit_rate": hits / n, "oracle_calls": calls,
            "calls_per_hit": calls / hits if hits else float("inf"),
            "recipe_hold_rate": float(held.mean()) if len(held) else float("nan"),
            "robust_recipes": int((held >= 0.75).sum()), "seconds": seconds, **extra}


def run_task(name: str, s: Settings, seed: int) -> dict:
    """Every approach on one task; returns rows, curves and the genmat run (for the amortised view)."""
    task, mod, options = _setup(name, s)
    targets = task.targets(mod, s.n_targets)
    n = len(targets)
    log.info("%s: %d targets (%s)", name, n, task.description)
    checks = CountingOracle(mod, seed=10_000_000 + seed)  # robustness and distinct-design checks

    t0 = time.perf_counter()
    oracle = CountingOracle(mod, seed=seed)
    gm = search_recipes(mod, targets, s.search, oracle=oracle, seed=seed)
    t_gm = time.perf_counter() - t0
    budget = oracle.calls
    hits_gm = int(gm.recipes["hit"].sum())
    rows = [_row("genmat (recipe loop)", hits_gm, n, budget, t_gm, verify_recipes(mod, targets, gm.recipes,
                 seeds=s.robustness_seeds, oracle=checks), initial_calls=gm.oracle_calls.get("initial", 0),
                 design_calls=gm.oracle_calls.get("design", 0))]
    curves = {"genmat": gm.history}

    if s.ablations:
        for label, cfg in (("ablation: GP screen on prior draws (no generator)", replace(s.search, proposer="prior")),
                           ("ablation: generator without the screen", replace(s.search, screen=False))):
            t0 = time.perf_counter()
            ab = search_recipes(mod, targets, cfg, oracle=CountingOracle(mod, seed=seed), seed=seed)
            rows.append(_row(label, int(ab.recipes["hit"].sum()), n, ab.history[-1][0], time.perf_counter() - t0,
                             np.full(n, np.nan)))
            curves[label] = ab.history

    initial = gm.table[gm.table["purpose"] == "initial"]
    lk = baselines.lookup(targets, initial)
    rows.append(_row("lookup in genmat's initial data", int(lk.recipes["hit"].sum()), n, len(initial), 0.0,
                     verify_recipes(mod, targets, lk.recipes, seeds=s.robustness_seeds, oracle=checks)))

    t0 = time.perf_counter()
    lib = baselines.random_library(mod, targets, max(s.library_budget, budget), seed=seed + 17)
    t_lib = time.perf_counter() - t0
    lib_at = _at_budget(lib.history, budget)
    first = lib.recipes["calls_at_hit"].to_numpy(float)
    at_budget = lib.recipes.assign(hit=lib.recipes["hit"] & (first <= budget))
    rows.append(_row("random library (genmat's budget)", lib_at, n, budget, t_lib * budget / lib.oracle_calls,
                     verify_recipes(mod, targets, at_budget, seeds=s.robustness_seeds, oracle=checks)))
    rows.append(_row(f"random library ({lib.oracle_calls} draws)", int(lib.recipes["hit"].sum()), n, lib.oracle_calls,
                     t_lib, np.full(n, np.nan)))
    curves["random library"] = lib.history

    t0 = time.perf_counter()
    bo = baselines.bayes_opt(mod, targets, max_calls=s.bo_max_calls, seed=seed)
    t_bo = time.perf_counter() - t0
    per_target = budget // n
    bo_calls = bo.recipes["calls"].to_numpy()
    bo_equal = int((bo.recipes["hit"].to_numpy(bool) & (bo_calls <= per_target)).sum())
    rows.append(_row(f"Bayesian optimisation per target (cap {s.bo_max_calls})", int(bo.recipes["hit"].sum()), n,
                     bo.oracle_calls, t_bo, verify_recipes(mod, targets, bo.recipes, seeds=s.robustness_seeds,
                                                           oracle=checks)))
    rows.append(_row(f"Bayesian optimisation at genmat's budget ({per_target} per target, fixed)", bo_equal, n,
                     int(np.minimum(bo_calls, per_target).sum()), float("nan"), np.full(n, np.nan)))
    curves["Bayesian optimisation"] = bo.history

    distinct = _distinct(mod, targets, gm, s, checks, seed)
    result = {"task": name, "description": task.description, "modality_options": options, "targets": n,
              "random_hit_probability_per_draw": float(targets.hits(targets.values_of(lib.table)).mean()),
              "rows": rows, "curves": curves, "distinct": distinct, "check_calls": checks.calls,
              "genmat_oracle_calls": gm.oracle_calls}
    return result, gm, targets, bo


def _distinct(mod, targets, gm, s: Settings, oracle: CountingOracle, seed: int) -> dict:
    """Distinct validated recipes per target among the 16 best-screened proposals."""
    hit_ids = np.flatnonzero(gm.recipes["hit"].to_numpy(bool))[: s.distinct_targets]
    if len(hit_ids) == 0 or gm.generator is None:
        return {"targets": 0}
    sub = targets.subset(hit_ids)
    props = gm.generator.propose(sub, 4 * s.distinct_per_target, seed=seed + 99)
    x = unit_cube(mod, props)
    tid = props["target_id"].to_numpy()
    score = gm.surrogate.hit_probability(x, sub.lo[tid], sub.hi[tid])
    rank = pd.Series(score).groupby(tid).rank(ascending=False, method="first").to_numpy()
    chosen = props[rank <= s.distinct_per_target].reset_index(drop=True)
    rows = oracle(chosen.drop(columns="target_id"), "distinct")
    ok = sub.hits(sub.values_of(rows), chosen["target_id"].to_numpy())
    xn = gm.generator.normalised(chosen)
    counts = [distinct_count(xn[(chosen["target_id"].to_numpy() == j) & ok], s.distinct_threshold)
              for j in range(len(hit_ids))]
    return {"targets": int(len(hit_ids)), "simulated_per_target": s.distinct_per_target,
            "hits_per_target": float(ok.reshape(len(hit_ids), -1).sum(1).mean()) if len(ok) else 0.0,
            "distinct_per_target": float(np.mean(counts)), "distinct_min": int(np.min(counts)),
            "distinct_max": int(np.max(counts)), "calls": int(len(chosen)), "threshold": s.distinct_threshold}


def amortised(gm, dev_task: str, s: Settings, bo, seed: int) -> dict:
    """genmat's trained model + data designing for new targets; BO's calls per hit from the dev task."""
    task, mod, _ = _setup(s.amortised_task, s)
    dev_calls = len(gm.table)
    bo_hits = int(bo.recipes["hit"].sum())
    bo_per_hit = bo.oracle_calls / bo_hits if bo_hits else float("inf")
    all_targets = task.targets(mod, max(s.amortised_sizes))
    cfg = replace(s.search, rounds=s.amortised_rounds)
    lib = baselines.random_library(mod, all_targets, dev_calls + 4 * max(s.amortised_sizes), seed=seed + 31)
    rows = []
    for size in s.amortised_sizes:
        targets = all_targets.subset(np.arange(size))
        oracle = CountingOracle(mod, seed=seed + 7 * size)
        t0 = time.perf_counter()
        res = search_recipes(mod, targets, cfg, oracle=oracle, table=gm.table, generator=copy.deepcopy(gm.generator),
                             seed=seed)
        hits = int(res.recipes["hit"].sum())
        total = dev_calls + oracle.calls
        lib_hits = int((lib.recipes["hit"].to_numpy(bool)[:size] & (lib.recipes["calls_at_hit"].to_numpy(float)[:size]
                                                                    <= total)).sum())
        rows.append({"targets": size, "hits": hits, "hit_rate": hits / size, "marginal_calls": oracle.calls,
                     "marginal_calls_per_hit": oracle.calls / hits if hits else float("inf"),
                     "total_calls": total, "calls_per_hit": total / hits if hits else float("inf"),
                     "bo_calls_per_hit": bo_per_hit, "ratio_to_bo": (total / hits) / bo_per_hit if hits else float("inf"),
                     "random_library_hits_same_budget": lib_hits, "seconds": time.perf_counter() - t0})
        log.info("amortised %d targets: %d hit, %d marginal calls", size, hits, oracle.calls)
    # T targets cost genmat dev + m·h·T and BO b·h_BO·T calls for the hits h·T: equal hit counts at
    # T = dev / ((b − m) · h), with m, h the largest run's new calls per hit and hit rate
    m, h = rows[-1]["marginal_calls_per_hit"], rows[-1]["hit_rate"]
    breakeven = dev_calls / ((bo_per_hit - m) * h) if bo_per_hit > m and h > 0 else float("inf")
    return {"dev_task": dev_task, "task": s.amortised_task, "dev_calls": dev_calls, "rows": rows,
            "break_even_targets_vs_bo": breakeven, "rounds": s.amortised_rounds}


# --------------------------------------------------------------------------- report
def curves_plot(results: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    from genmat.plots import hits_vs_calls

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.4), squeeze=False)
    for ax, res in zip(axes[0], results):
        budget = next(r for r in res["rows"] if r["approach"].startswith("genmat"))["oracle_calls"]
        hits_vs_calls(ax, res["curves"], res["targets"], budget=budget, title=f"{res['task']} ({res['targets']} targets)")
    fig.tight_layout()
    return report.save(fig, path)


def amortised_plot(am: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for r in am["rows"]:
        hits = r["random_library_hits_same_budget"]
        r["random_library_calls_per_hit"] = r["total_calls"] / hits if hits else float("inf")
    for key, style, label in (("calls_per_hit", "o-", "genmat (its training data included)"),
                              ("bo_calls_per_hit", "s--", "Bayesian optimisation per target"),
                              ("random_library_calls_per_hit", "^:", "random library of genmat's budget")):
        pts = [(r["targets"], r[key]) for r in am["rows"] if np.isfinite(r[key])]
        if pts:
            ax.plot(*zip(*pts), style, label=label)
    ax.set_xscale("log")
    if ax.lines:
        ax.set_yscale("log")
    ax.set_xlabel("number of targets designed")
    ax.set_ylabel("oracle calls per validated hit")
    ax.set_title(f"amortised: {am['task']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return report.save(fig, path)


def markdown(results: list[dict], am: dict | None, info: dict, s: Settings) -> str:
    cols = ["approach", "targets_hit", "targets", "oracle_calls", "calls_per_hit", "recipe_hold_rate",
            "robust_recipes", "seconds"]
    heads = ["approach", "targets hit", "of", "oracle calls", "calls per hit", "recipe holds (4 seeds)",
             "robust recipes (≥ 3/4)", "s"]
    out = ["# Design benchmark", "", f"`python -m benchmarks.design` — {info['timestamp_utc']}, "
           f"{info['cpu_count']} CPUs, torch {info['torch']}.", ""]
    for res in results:
        out += [f"## {res['task']}", "", res["description"] + ".", "",
                f"Random draw hits a target with probability {res['random_hit_probability_per_draw']:.4f} "
                f"(mean over targets, measured on the library).", "", report.table(res["rows"], cols, heads), ""]
        d = res["distinct"]
        if d.get("targets"):
            out += [f"Distinct designs: for {d['targets']} hit targets, the {d['simulated_per_target']} best-screened "
                    f"proposals each were simulated ({d['calls']} calls): {d['hits_per_target']:.1f} hits and "
                    f"{d['distinct_per_target']:.1f} distinct validated recipes per target "
                    f"(min {d['distinct_min']}, max {d['distinct_max']}; distance > {d['threshold']}). "
                    "BO and the library return one recipe per target.", ""]
        out += [f"Robustness and distinct-design checks used {res['check_calls']} further oracle calls "
                "(same checks for every approach, not in the budgets above).", ""]
    if am:
        out += [f"## Amortised: {am['task']} designed by the {am['dev_task']} model", "",
                f"genmat's development cost: {am['dev_calls']} oracle calls (initial data + design rounds), "
                f"counted in every row; {am['rounds']} design rounds per new target set.", "",
                report.table(am["rows"], ["targets", "hits", "marginal_calls", "marginal_calls_per_hit", "total_calls",
                                          "calls_per_hit", "bo_calls_per_hit", "ratio_to_bo",
                                          "random_library_hits_same_budget"],
                             ["targets", "hit", "new calls", "new calls per hit", "all calls", "calls per hit",
                              "BO calls per hit", "genmat / BO", "random library hits, same budget"]), "",
                f"Break-even against per-target BO: {am['break_even_targets_vs_bo']:.1f} targets.", ""]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="where tables and pictures go")
    p.add_argument("--tasks", nargs="*", help="task names (default: spinodal-demo spinodal-tight spinodal-range)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny settings (the test suite's smoke test)")
    p.add_argument("--no-ablations", action="store_true", help="skip the two ablation runs")
    p.add_argument("--no-amortised", action="store_true", help="skip the amortised view")
    p.add_argument("--store", action="store_true",
                   help="also write data/design_benchmark.json (what `genmat recipes --task` compares against)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging(args.verbose)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = Settings.quick() if args.quick else Settings()
    if args.tasks:
        s = replace(s, tasks=tuple(args.tasks))
    if args.no_ablations:
        s = replace(s, ablations=False)
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine_info(torch.device("cpu"))
    results, am = [], None
    for name in s.tasks:
        res, gm, targets, bo = run_task(name, s, args.seed)
        results.append(res)
        if name == s.amortised_from and not args.no_amortised:
            am = amortised(gm, name, s, bo, args.seed)
    payload = {"machine": info, "settings": asdict(s), "tasks": results, "amortised": am}
    write_json(payload, args.out, "design.json")
    if args.store:
        write_json(payload, Path(baselines.STORED_BENCHMARK).parent, Path(baselines.STORED_BENCHMARK).name)
    (args.out / "design.md").write_text(markdown(results, am, info, s))
    curves_plot(results, args.out / "design_curves.png")
    if am:
        amortised_plot(am, args.out / "design_amortised.png")
    log.info("wrote %s", args.out / "design.md")
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
