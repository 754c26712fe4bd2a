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
  the same total budget, and the break-even number of targets against BO;
- **micrograph loop** — on tasks the closed loop can run (point targets of fields its
  simulator check verifies, e.g. spinodal-tight32): the micrograph generator's own designs
  (``genmat loop --task``: initial simulations, training, one physics-guided design step),
  their oracle calls and physics evaluations, and distinct validated micrographs per target
  (translation-invariant distance above the novelty check's copy threshold).

``--seeds 0 1 2`` repeats every approach with other seeds and adds a table of the spread.

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
    tasks: tuple[str, ...] = ("spinodal-demo", "spinodal-tight", "spinodal-range", "spinodal-tight32")
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
    micrograph: bool = True  # the micrograph loop on the tasks the loop can run
    micrograph_loop: tuple[tuple[str, object], ...] = ()  # LoopConfig overrides (the loop's own defaults if empty)

    @classmethod
    def quick(cls) -> "Settings":
        return cls(tasks=("spinodal-tight", "spinodal-range", "spinodal-tight32"), amortised_sizes=(4, 8), n_targets=4, grid=16,
                   search=RecipeSearchConfig(initial=48, rounds=2, proposals=8, train_steps=30, finetune_steps=5,
                                             batch_size=32),
                   amortised_rounds=1, bo_max_calls=3, library_budget=96, robustness_seeds=2, distinct_targets=2,
                   distinct_per_target=3, micrograph_loop=QUICK_LOOP)


#: The micrograph loop of the quick run: 16² cells, a tiny U-Net, a few steps.
QUICK_LOOP = (("initial_samples", 32), ("first_train_steps", 4), ("n_candidates", 2),
              ("generator", {"unet": {"base_channels": 8, "channel_mults": [1, 2], "embed_dim": 32},
                             "sampler": {"steps": 2, "method": "euler"}}),
              ("train", {"batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2}))


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


def run_task(name: str, s: Settings, seed: int, workdir: Path | None = None) -> dict:
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
        for label, cfg in (("ablation: GP screen on prior draws (no generator)", s.search.replace(proposer="prior")),
                           ("ablation: generator without the screen", s.search.replace(screen=False))):
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
    micro = micrograph_loop(name, s, seed, workdir) if s.micrograph and workdir is not None else None
    if micro is not None:
        recipes = micro.pop("recipes")
        held = (verify_recipes(mod, targets, recipes, seeds=s.robustness_seeds, oracle=checks) if len(recipes)
                else np.full(n, np.nan))
        rows.insert(0, _row(micro["approach"], micro["hits"], n, micro["oracle_calls"], micro["seconds"], held,
                            physics_evaluations=micro["physics_evaluations"]))
        curves["genmat micrograph loop"] = micro["history"]
    result = {"task": name, "seed": seed, "description": task.description, "modality_options": options, "targets": n,
              "random_hit_probability_per_draw": float(targets.hits(targets.values_of(lib.table)).mean()),
              "rows": rows, "curves": curves, "distinct": distinct, "check_calls": checks.calls,
              "genmat_oracle_calls": gm.oracle_calls, "micrograph": micro}
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


def micrograph_loop(name: str, s: Settings, seed: int, workdir: Path) -> dict | None:
    """The closed loop's micrograph designs for a task (one design step), or None where the
    loop cannot run the task (ranges, fields its simulator check does not verify)."""
    from pydantic import ValidationError

    from genmat.errors import InputError
    from genmat.loop import ClosedLoop, LoopConfig

    overrides = {k: v for k, v in s.micrograph_loop}
    if s.grid is not None:
        overrides["modality_options"] = {"grid": s.grid}
    try:
        cfg = LoopConfig(task=name, seed=seed, max_iterations=1, workdir=workdir / f"{name}-seed{seed}",
                         **({"n_targets": s.n_targets} if s.n_targets else {}), **overrides)
    except (InputError, ValidationError) as exc:  # the loop refuses the task (a validator's InputError)
        log.info("%s: no micrograph loop (%s)", name, str(exc).splitlines()[-1 if isinstance(exc, InputError) else 1])
        return None
    t0 = time.perf_counter()
    loop = ClosedLoop(cfg)
    state = loop.run()
    seconds = time.perf_counter() - t0
    row = state.history[0]
    held_out = int(state.steps.get("targets/simulate", {}).get("simulator_calls", 0))
    calls = loop.simulator_calls() - held_out  # like every approach: the targets' own simulations not counted
    guided = f"guided ×{cfg.physics_guidance:g}" if cfg.physics_guidance else "CFG alone"
    out = {"approach": f"genmat micrograph loop ({guided}, one design step)", "hits": int(row["hits"]),
           "oracle_calls": calls, "physics_evaluations": float(row.get("physics_evaluations", 0.0)),
           "seconds": seconds, "history": [(calls - int(row["simulator_calls"]), 0), (calls, int(row["hits"]))],
           "workdir": str(cfg.workdir)}
    out["distinct"] = _distinct_micrographs(loop, s, seed)
    # the recipe head's processing for each hit design (checked over fresh process seeds by the caller)
    from genmat.loop.steps import load_design

    designs = load_design(cfg.iteration_dir(0) / "design").designs
    names = list(loop.modality.schema.subset("processing"))
    if all(f"recipe_{c}" in designs for c in names):
        out["recipes"] = designs[["target_id", "hit", *(f"recipe_{c}" for c in names)]].rename(
            columns=lambda c: c.removeprefix("recipe_"))
    else:
        out["recipes"] = pd.DataFrame()
    log.info("%s seed %d: micrograph loop %d/%d with %d oracle calls", name, seed, out["hits"], len(loop.prepare()),
             calls)
    return out


def _distinct_micrographs(loop, s: Settings, seed: int) -> dict:
    """Distinct validated micrographs per target: for the first hit targets, ``distinct_per_target``
    guided candidates each go through the design step's checks and the oracle; hits closer
    than the novelty check's copy threshold to a hit already counted are not counted again."""
    from genmat.data import DatasetStore
    from genmat.loop.steps import DesignParams, design_step, load_design
    from genmat.validate.novelty import nearest_training_distance, training_scale

    c = loop.config
    designs = load_design(c.iteration_dir(0) / "design").designs
    hit_ids = designs.loc[designs["hit"].astype(bool), "target_id"].to_numpy()[: s.distinct_targets]
    if len(hit_ids) == 0:
        return {"targets": 0}
    out_dir = c.workdir / "distinct"
    targets = loop.prepare().iloc[hit_ids].reset_index(drop=True)
    targets.to_parquet(c.workdir / "distinct_targets.parquet")
    k = s.distinct_per_target
    metrics = design_step(DesignParams(
        **loop._common(), checkpoint=c.iteration_dir(0) / "model.ckpt", targets_file=c.workdir / "distinct_targets.parquet",
        out_dir=out_dir, n_candidates=k, n_simulate=k, sampler=c.sampler, seed=seed + 99,
        physics_guidance=c.physics_guidance), progress=False)
    result = load_design(out_dir)
    scale = training_scale(torch.as_tensor(DatasetStore.open(c.dataset).load()))
    threshold = loop.modality.novelty.copy_threshold
    hits, distinct = [], []
    for j in range(len(hit_ids)):
        idx = result.report.index[(result.report["target_id"] == j) & result.report["verdict"].eq("hit")].to_numpy()
        kept: list[int] = []
        for i in idx:
            x = result.samples[int(i)][None]
            if not kept or float(nearest_training_distance(x, result.samples[torch.as_tensor(kept)],
                                                           scale=scale)[0][0]) > threshold:
                kept.append(int(i))
        hits.append(len(idx))
        distinct.append(len(kept))
    return {"targets": int(len(hit_ids)), "simulated_per_target": k, "calls": int(metrics["simulator_calls"]),
            "physics_evaluations": float(metrics.get("physics_evaluations", 0.0)),
            "hits_per_target": float(np.mean(hits)), "distinct_per_target": float(np.mean(distinct)),
            "distinct_min": int(np.min(distinct)), "distinct_max": int(np.max(distinct)), "threshold": threshold}


def amortised(gm, dev_task: str, s: Settings, bo, seed: int) -> dict:
    """genmat's trained model + data designing for new targets; BO's calls per hit from the dev task."""
    task, mod, _ = _setup(s.amortised_task, s)
    dev_calls = len(gm.table)
    bo_hits = int(bo.recipes["hit"].sum())
    bo_per_hit = bo.oracle_calls / bo_hits if bo_hits else float("inf")
    all_targets = task.targets(mod, max(s.amortised_sizes))
    cfg = s.search.replace(rounds=s.amortised_rounds)
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
        budget = next(r for r in res["rows"] if r["approach"] == "genmat (recipe loop)")["oracle_calls"]
        curves = {("genmat recipe loop" if k == "genmat" else k): v for k, v in res["curves"].items()}
        hits_vs_calls(ax, curves, res["targets"], budget=budget,
                      title=f"{res['task']} ({res['targets']} targets, seed {res.get('seed', 0)})")
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
    if len({r.get("seed", 0) for r in results}) > 1:
        out += seed_summary(results)
    for res in results:
        out += [f"## {res['task']} (seed {res.get('seed', 0)})", "", res["description"] + ".", "",
                f"Random draw hits a target with probability {res['random_hit_probability_per_draw']:.4f} "
                f"(mean over targets, measured on the library).", "", report.table(res["rows"], cols, heads), ""]
        d = res["distinct"]
        if d.get("targets"):
            out += [f"Distinct designs: for {d['targets']} hit targets, the {d['simulated_per_target']} best-screened "
                    f"proposals each were simulated ({d['calls']} calls): {d['hits_per_target']:.1f} hits and "
                    f"{d['distinct_per_target']:.1f} distinct validated recipes per target "
                    f"(min {d['distinct_min']}, max {d['distinct_max']}; distance > {d['threshold']}). "
                    "BO and the library return one recipe per target.", ""]
        dm = (res.get("micrograph") or {}).get("distinct") or {}
        if dm.get("targets"):
            out += [f"Distinct micrographs: for {dm['targets']} targets the micrograph loop hit, "
                    f"{dm['simulated_per_target']} guided candidates each went through the checks and the oracle "
                    f"({dm['calls']} calls, {dm['physics_evaluations']:.0f} physics evaluations): "
                    f"{dm['hits_per_target']:.1f} hits and {dm['distinct_per_target']:.1f} distinct validated "
                    f"micrographs per target (min {dm['distinct_min']}, max {dm['distinct_max']}; translation-invariant "
                    f"distance > {dm['threshold']}, the copy threshold). Each design carries the recipe head's "
                    "processing; the table's recipe columns re-simulate the returned designs' recipes.", ""]
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


def seed_summary(results: list[dict]) -> list[str]:
    """Per task and approach: targets hit and oracle calls over the seeds (mean, min–max)."""
    out = ["## Over seeds", ""]
    for task in dict.fromkeys(r["task"] for r in results):
        runs = [r for r in results if r["task"] == task]
        rows = []
        for approach in dict.fromkeys(row["approach"] for r in runs for row in r["rows"]):
            got = [row for r in runs for row in r["rows"] if row["approach"] == approach]
            hits = [g["targets_hit"] for g in got]
            calls = [g["oracle_calls"] for g in got]
            rows.append({"approach": approach, "seeds": len(got), "hits_mean": float(np.mean(hits)),
                         "hits_range": f"{min(hits)}–{max(hits)}", "calls_mean": float(np.mean(calls)),
                         "calls_range": f"{min(calls)}–{max(calls)}"})
        out += [f"### {task}: {runs[0]['targets']} targets, seeds {', '.join(str(r['seed']) for r in runs)}", "",
                report.table(rows, ["approach", "seeds", "hits_mean", "hits_range", "calls_mean", "calls_range"],
                             ["approach", "seeds", "targets hit (mean)", "min–max", "oracle calls (mean)", "min–max"]),
                ""]
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="where tables and pictures go")
    p.add_argument("--tasks", nargs="*", help="task names (default: spinodal-demo spinodal-tight spinodal-range spinodal-tight32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="*", help="several seeds: every approach once per seed (overrides --seed)")
    p.add_argument("--workdir", type=Path, default=Path("runs") / "design_bench",
                   help="where the micrograph loop runs keep their datasets and models")
    p.add_argument("--no-micrograph", action="store_true", help="skip the micrograph loop")
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
    if args.no_micrograph:
        s = replace(s, micrograph=False)
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine_info(torch.device("cpu"))
    results, am = [], None
    seeds = args.seeds or [args.seed]
    for seed in seeds:
        for name in s.tasks:
            res, gm, targets, bo = run_task(name, s, seed, args.workdir)
            results.append(res)
            if name == s.amortised_from and not args.no_amortised and am is None:
                am = amortised(gm, name, s, bo, seed)
    payload = {"machine": info, "settings": {**asdict(s), "search": s.search.to_dict()}, "tasks": results, "amortised": am}
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
