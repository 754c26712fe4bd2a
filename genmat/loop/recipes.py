"""Recipe design: processing that makes the asked-for material, verified by the process
simulator, with every oracle call counted.

:class:`CountingOracle` is the one door to the simulator for recipe search (genmat's and
the baselines' alike): it gives each call fresh process seeds and counts samples by
purpose (initial data, design, robustness checks).

:func:`search_recipes` is genmat's loop for recipes. The conditional recipe generator
(:class:`genmat.recipes.RecipeGenerator`, interval-conditioned) proposes ``proposals``
recipes per open target; a Gaussian-process screen over the processing box, shared by
all targets, ranks them by their probability of meeting every interval (and a few local
jitters around the best proposals); the best one per open target is simulated; what the simulator returns joins the table (the screen
conditions on it, the generator is fine-tuned on it) and the next round starts with
the targets still open. Before the first round and after each, every row simulated so far
is looked up against the open targets: a row that meets a target is a verified recipe for
it at no new call (the initial data, and one target's design landing on another's). A
recipe is a hit when its simulated product meets the target.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from genmat.conditions import ConditionError
from genmat.config import Config
from genmat.loop.screening import GPSurrogate
from genmat.recipes import RecipeConfig, RecipeGenerator
from genmat.tasks import TargetSet
from genmat.train import TrainConfig

log = logging.getLogger(__name__)


class CountingOracle:
    """``modality.simulate`` behind a counter: every simulated sample is one oracle call.

    Seeds: call k simulates with seed ``seed + 7919·k``, so no two calls share process
    noise and a rerun with the same seed repeats every call.
    """

    def __init__(self, modality, seed: int = 0) -> None:
        self.modality, self.seed = modality, int(seed)
        self.calls, self.batches = 0, 0
        self.by_purpose: Counter[str] = Counter()
        self.last_samples = None  # the samples of the latest call (B, *sample_shape)

    def __call__(self, processing: pd.DataFrame, purpose: str) -> pd.DataFrame:
        """Simulate ``processing`` (one row per sample) → the oracle's table (processing + properties)."""
        if len(processing) == 0:
            return pd.DataFrame(columns=list(processing.columns))
        samples, rows = self.modality.simulate(processing.reset_index(drop=True), seed=self.seed + 7919 * self.batches)
        self.last_samples = samples
        self.batches += 1
        self.calls += len(processing)
        self.by_purpose[purpose] += len(processing)
        return rows

    def draw(self, n: int, purpose: str, seed: int) -> pd.DataFrame:
        """``n`` recipes from the modality's prior, simulated."""
        return self(self.modality.draw_processing(int(n), np.random.default_rng(seed)), purpose)


def unit_cube(modality, frame: pd.DataFrame) -> np.ndarray:
    """Processing in [0, 1]^D (the search space of the screen and of Bayesian optimisation)."""
    names = modality.schema.subset("processing")
    return np.stack([(modality.schema.field(n).normalise(frame[n].to_numpy(float)) + 1) / 2 for n in names], axis=1)


def from_unit_cube(modality, x: np.ndarray) -> pd.DataFrame:
    fields = [modality.schema.field(n) for n in modality.schema.subset("processing")]
    return pd.DataFrame({f.name: np.clip(f.denormalise(2 * np.clip(x[:, j], 0, 1) - 1), f.low, f.high)
                         for j, f in enumerate(fields)})


class RecipeSearchConfig(Config):
    initial: int = Field(256, ge=0)  # prior draws simulated before the first model (skipped when a table is given)
    proposals: int = Field(64, ge=1)  # recipes the generator proposes per open target and round
    rounds: int = Field(6, ge=1)  # design rounds; each simulates one recipe per open target
    train_steps: int = Field(3000, ge=0)
    finetune_steps: int = Field(300, ge=0)  # per round, warm-started on the grown table (0: never)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0)
    proposer: Literal["generator", "prior"] = "generator"  # "prior": the screen alone on uniform draws (ablation)
    screen: bool = True  # False: simulate the generator's first proposal (ablation)
    refine: int = Field(8, ge=0)  # screened jitters around each target's 8 best proposals (0: proposals only)
    lookup: bool = True  # a target that a row already simulated meets is hit at no new call
    recipe: RecipeConfig = Field(default_factory=RecipeConfig)


@dataclass
class RecipeSearchResult:
    recipes: pd.DataFrame  # one row per target: target_id, hit, round, found_by, calls_at_hit, processing, properties
    table: pd.DataFrame  # every simulated row (initial data first), with ``purpose`` and ``round``
    history: list[tuple[int, int]]  # (oracle calls so far, targets hit) after the initial data and each round
    generator: RecipeGenerator | None
    surrogate: GPSurrogate | None
    oracle_calls: dict[str, int]
    samples: dict = field(default_factory=dict)  # target_id → the product its hitting recipe made (*sample_shape)
    targets: TargetSet | None = None
    modality: object = None


def search_recipes(modality, targets: TargetSet, config: RecipeSearchConfig = RecipeSearchConfig(), *,
                   oracle: CountingOracle | None = None, table: pd.DataFrame | None = None,
                   generator: RecipeGenerator | None = None, seed: int = 0,
                   checkpoint_dir: str | Path | None = None) -> RecipeSearchResult:
    """genmat's recipe loop (module docstring). With ``table`` (and optionally a trained
    ``generator``) it starts from that data — the amortised use: only the design rounds'
    calls are new."""
    oracle = oracle or CountingOracle(modality, seed=seed)
    fields = list(targets.fields)
    start_calls, start_purpose = oracle.calls, Counter(oracle.by_purpose)
    if table is None and config.initial < 1:
        raise ConditionError("initial", config.initial, "≥ 1 when no table (dataset) is given", "is not")
    row_products: dict[int, object] = {}  # table row → the sample it is, for rows this search simulated
    if table is None:
        table = oracle.draw(config.initial, "initial", seed).assign(purpose="initial", round=0)
        if oracle.last_samples is not None:
            row_products.update(enumerate(oracle.last_samples))
    table = table.reset_index(drop=True)
    train_cfg = TrainConfig(steps=config.train_steps, batch_size=config.batch_size, lr=config.lr,
                            warmup_steps=min(100, max(1, config.train_steps // 10)), log_every=max(1, config.train_steps),
                            checkpoint_every=max(1, config.train_steps), seed=seed)
    ckpt = Path(checkpoint_dir) / "recipe.ckpt" if checkpoint_dir else None
    n = len(targets)
    hit = np.zeros(n, dtype=bool)
    found: dict[int, dict] = {}
    products: dict[int, object] = {}

    def record(tid: int, row: pd.Series, r: int, how: str, product=None) -> None:
        hit[tid] = True
        found[tid] = {"round": r, "found_by": how, "calls_at_hit": oracle.calls - start_calls,
                      **{k: v for k, v in row.items() if k not in ("purpose", "round")}}
        if product is not None:
            products[tid] = product

    def look_up(r: int) -> None:
        """Targets that a row already simulated (any target's design, or the data) meets."""
        open_ids = np.flatnonzero(~hit)
        if not config.lookup or len(open_ids) == 0:
            return
        sub = targets.subset(open_ids)
        ok = sub.hits(sub.values_of(table))  # (rows, open targets)
        x = unit_cube(modality, table) if surrogate is not None else None
        for j in np.flatnonzero(ok.any(axis=0)):
            rows = np.flatnonzero(ok[:, j])
            i = int(rows[0])
            if surrogate is not None and len(rows) > 1:  # the hitting recipe most likely to hold on a new seed
                p = surrogate.hit_probability(x[rows], np.repeat(sub.lo[j:j + 1], len(rows), 0),
                                              np.repeat(sub.hi[j:j + 1], len(rows), 0))
                i = int(rows[int(np.argmax(p))])
            record(int(open_ids[j]), table.iloc[i], r, "lookup", row_products.get(i))

    surrogate = GPSurrogate(unit_cube(modality, table), table[fields].to_numpy(float), seed=seed) if config.screen else None
    look_up(0)
    history = [(0, 0)] if oracle.calls > start_calls else []  # from nothing, when the data was simulated here
    history.append((oracle.calls - start_calls, int(hit.sum())))
    if not hit.all() and config.proposer == "generator" and generator is None:  # a model only when it is needed
        generator = RecipeGenerator.for_table(modality.schema, table, fields, config.recipe, seed=seed)
        generator.fit(table, train_cfg, checkpoint_path=ckpt)
    rng = np.random.default_rng(seed + 1)
    for r in range(1, config.rounds + 1):
        open_ids = np.flatnonzero(~hit)
        if len(open_ids) == 0:
            break
        sub = targets.subset(open_ids)
        k = config.proposals
        if config.proposer == "generator":
            props = generator.propose(sub, k, seed=seed * 1000 + r)
        else:
            props = modality.draw_processing(len(open_ids) * k, rng)
            props.insert(0, "target_id", np.repeat(np.arange(len(open_ids)), k))
        if surrogate is not None:
            chosen = _screen(modality, surrogate, sub, props, config.refine, rng)
        else:  # the generator's first proposal per target
            chosen = props.groupby("target_id").head(1).drop(columns="target_id").reset_index(drop=True)
        rows = oracle(chosen, "design")
        ok = sub.hits(sub.values_of(rows), np.arange(len(open_ids)))
        for j, tid in enumerate(open_ids):
            if ok[j]:
                record(int(tid), rows.iloc[j], r, "design",
                       None if oracle.last_samples is None else oracle.last_samples[j])
        base = len(table)
        table = pd.concat([table, rows.assign(purpose="design", round=r)], ignore_index=True)
        if oracle.last_samples is not None:
            row_products.update({base + j: x for j, x in enumerate(oracle.last_samples)})
        if surrogate is not None:
            surrogate = surrogate.refit(unit_cube(modality, table), table[fields].to_numpy(float), seed=seed)
        look_up(r)  # one target's design may meet another target
        history.append((oracle.calls - start_calls, int(hit.sum())))
        log.info("recipe round %d: %d/%d targets hit, %d oracle calls", r, hit.sum(), n, oracle.calls - start_calls)
        if r == config.rounds or hit.all():
            break
        if generator is not None and config.finetune_steps:
            generator.fit(table, train_cfg.replace(steps=config.finetune_steps, warmup_steps=1,
                                         log_every=config.finetune_steps, checkpoint_every=config.finetune_steps,
                                         seed=seed + r))
    recipes = pd.DataFrame({"target_id": np.arange(n), "target": [targets.describe(i) for i in range(n)], "hit": hit})
    recipes = recipes.join(pd.DataFrame.from_dict(found, orient="index"))
    calls = {k: v - start_purpose.get(k, 0) for k, v in oracle.by_purpose.items() if v - start_purpose.get(k, 0)}
    return RecipeSearchResult(recipes, table, history, generator, surrogate, calls, products, targets, modality)


def _screen(modality, surrogate: GPSurrogate, targets: TargetSet, props: pd.DataFrame, refine: int,
            rng: np.random.Generator) -> pd.DataFrame:
    """The proposal with the highest predicted hit probability per target, after three
    passes of ``refine`` local jitters (5 %, 1.5 %, 0.5 % of each range) around each
    target's best 8 candidates so far."""
    tid = props["target_id"].to_numpy()
    x = unit_cube(modality, props)
    score = surrogate.hit_probability(x, targets.lo[tid], targets.hi[tid])
    for scale in (0.05, 0.015, 0.005) if refine else ():
        order = np.lexsort((-score, tid))
        top = order[pd.Series(tid[order]).groupby(tid[order]).cumcount().to_numpy() < 8]
        seeds = np.repeat(top, refine)
        new = np.clip(x[seeds] + scale * rng.standard_normal((len(seeds), x.shape[1])), 0, 1)
        new_score = surrogate.hit_probability(new, targets.lo[tid[seeds]], targets.hi[tid[seeds]])
        x, tid, score = np.concatenate([x, new]), np.concatenate([tid, tid[seeds]]), np.concatenate([score, new_score])
    best = pd.Series(score).groupby(tid).idxmax().to_numpy()
    return from_unit_cube(modality, x[best])


def verify_recipes(modality, targets: TargetSet, recipes: pd.DataFrame, *, seeds: int = 4,
                   oracle: CountingOracle) -> np.ndarray:
    """How often each returned recipe holds: the fraction of ``seeds`` fresh process
    simulations of it that meet its target (NaN where no recipe was returned)."""
    names = list(modality.schema.subset("processing"))
    have = recipes["hit"].to_numpy(bool) if "hit" in recipes else recipes[names].notna().all(axis=1).to_numpy()
    out = np.full(len(recipes), np.nan)
    idx = np.flatnonzero(have)
    if len(idx) == 0 or seeds < 1:
        return out
    rep = recipes.iloc[np.repeat(idx, seeds)][names].reset_index(drop=True)
    rows = oracle(rep, "robustness")
    tids = recipes["target_id"].to_numpy()[np.repeat(idx, seeds)]
    ok = targets.hits(targets.values_of(rows), tids)
    out[idx] = ok.reshape(len(idx), seeds).mean(axis=1)
    return out


def distinct_count(x: np.ndarray, threshold: float) -> int:
    """Greedy count of points (n, D) at pairwise distance > ``threshold``."""
    kept: list[np.ndarray] = []
    for p in x:
        if all(np.linalg.norm(p - q) > threshold for q in kept):
            kept.append(p)
    return len(kept)


def save_recipe_report(result: RecipeSearchResult, targets: TargetSet, modality, out: str | Path,
                       comparison: list[dict] | None = None) -> dict[str, Path]:
    """``recipes.csv`` (a row per target), ``summary.json``, ``report.md``, ``hits_vs_calls.png``
    and ``products.png`` (the micrographs or spectra the hitting recipes made) under ``out``."""
    import json

    import matplotlib.pyplot as plt
    import torch

    from genmat import plots
    from genmat.atomic import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"recipes": atomic_write(out / "recipes.csv", lambda tmp: result.recipes.to_csv(tmp, index=False))}
    hits, n = int(result.recipes["hit"].sum()), len(result.recipes)
    calls = int(sum(result.oracle_calls.values()))
    summary = {"targets": n, "targets_hit": hits, "oracle_calls": result.oracle_calls, "history": result.history,
               "comparison": comparison or []}
    files["summary"] = atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    points = {f"{r['approach']} ({r['targets']} targets)": (r["oracle_calls"], r["targets_hit"] / r["targets"])
              for r in comparison or []}
    plots.hits_vs_calls(ax, {"genmat": result.history}, n, budget=calls, points=points,
                        title=f"{hits}/{n} targets with a verified recipe")
    files["curve"] = plots.save(fig, out / "hits_vs_calls.png")
    if result.samples:
        ids = sorted(result.samples)[:32]
        titles = []
        for i in ids:
            row = result.recipes.loc[i]
            made = [f"{f.split('_')[0]} {row[f]:.4g}" for f in targets.fields if f in row]
            titles.append(f"#{i}\n" + "\n".join(", ".join(made[k:k + 2]) for k in range(0, len(made), 2)))
        fig = modality.plot_samples(torch.stack([result.samples[i] for i in ids]), titles, ncols=4)
        files["products"] = plots.save(fig, out / "products.png")
    lines = [f"# Recipes: {hits}/{n} targets", "",
             f"{calls} oracle calls ({', '.join(f'{k} {v}' for k, v in result.oracle_calls.items())}); "
             "a hit is a recipe whose simulated product meets every interval of its target.", ""]
    if comparison:
        lines += ["| approach | targets hit | oracle calls | source |", "|---|---|---|---|",
                  f"| genmat | {hits}/{n} | {calls} | this run |"]
        lines += [f"| {r['approach']} | {r['targets_hit']}/{r['targets']} | {r['oracle_calls']} | {r['source']} |"
                  for r in comparison]
        lines.append("")
    cols = ["target_id", "target", "hit", *modality.schema.subset("processing"), *targets.fields]
    table = result.recipes.reindex(columns=cols)
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    lines += ["", "![hits against oracle calls](hits_vs_calls.png)", ""]
    if "products" in files:
        lines += ["![what the hitting recipes made](products.png)", ""]
    files["report"] = atomic_write(out / "report.md", lambda tmp: tmp.write_text("\n".join(lines)))
    return files
