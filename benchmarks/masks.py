"""Any-subset conditioning benchmark (`make bench-masks`): how well does ONE generator answer
each question a user may ask — any subset of the condition fields given, the rest left to it?

    python -m benchmarks.masks --out bench_results [--workdir runs/bench-guidance] [--seeds 0 1 2] [--quick]

The generator is the demo's (`genmat loop` for two iterations, as in `make bench-guidance`,
whose trained run in ``--workdir`` is reused). Reference materials: ``--targets`` recipes drawn
from the modality's prior (a seed the training never used), each simulated twice with two
process seeds ("reference" and "replicate"). For every mask — each non-empty subset of the
property fields, the full recipe (every processing field), every field — the generator gets the
reference's values of the mask's fields only, draws ONE sample per target by classifier-free
guidance alone (no physics guidance, no screening: the generator's own answer) and the sample's
properties are measured by the oracle's own measurement (the FFT homogeniser for micrographs).

A sample **hits** when every checked property lies within the modality's tolerance (the
simulator check's) of the reference's: the given property fields; for a mask of processing
fields only, every checked property (the product that recipe makes). Beside each mask:

- **with physics guidance** (``--physics-guidance``, default 30, the spinodal loop's): the same
  draw steered at every sampling step through the modality's cheap differentiable physics
  model towards the given property fields (masks with a property field only);
- **unconditional**: samples drawn with no field given, scored against the same targets (what
  conditioning adds);
- **process replicate** (recipe masks): the reference recipe re-simulated with another
  process seed, scored the same way — the process's own scatter, the ceiling of a
  micrograph-from-recipe answer;
- **training frequency**: how often the training's mask scheme (``GeneratorConfig.cond_masks``)
  shows exactly that mask, counted on the training set's own masks.

Writes masks.json, masks.md and masks.png. Oracle calls (2 × targets reference simulations,
the measurement of every sample) are validation only; nothing here is a design budget.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

log = logging.getLogger("benchmarks.masks")

#: the prior draw of the reference recipes (never a training seed of the loop)
REFERENCE_SEED = 7_000_001


def masks_of(schema) -> list[tuple[str, ...]]:
    """Every non-empty subset of the property fields, the full recipe, every field."""
    props = list(schema.subset("property"))
    recipe = tuple(schema.subset("processing"))
    out = [tuple(c) for k in range(1, len(props) + 1) for c in itertools.combinations(props, k)]
    if recipe:
        out.append(recipe)
    out.append(tuple(schema.names))
    return out


def hits(measured: pd.DataFrame, reference: pd.DataFrame, fields, bands: dict) -> np.ndarray:
    """Per row: every field of ``fields`` within its tolerance band of the reference's value."""
    ok = np.ones(len(reference), bool)
    for f in fields:
        kind, tol = bands[f]
        ref = reference[f].to_numpy(float)
        err = np.abs(measured[f].to_numpy(float) - ref)
        ok &= err <= (tol * np.abs(ref) if kind == "rel" else tol)
    return ok


def checked_fields(mask: tuple[str, ...], bands: dict) -> tuple[str, ...]:
    """The given property fields; all banded properties for a mask of processing fields only."""
    given = tuple(f for f in mask if f in bands)
    return given or tuple(bands)


def mask_frequency(generator, table: pd.DataFrame, masks, draws: int = 50, seed: int = 0) -> dict:
    """How often the training's mask scheme gives exactly each mask, over the training rows."""
    from genmat.nn.embeddings import drop_fields

    cfg = generator.config
    names = list(generator.schema.names)
    frame = table.reindex(columns=names)
    _, given = generator.schema.encode(frame)
    gen = torch.Generator().manual_seed(seed)
    counts: dict[tuple[str, ...], int] = {}
    total = 0
    for _ in range(draws):
        m = drop_fields(given, cfg.cond_dropout, gen, scheme=cfg.cond_masks) > 0
        for row in m.numpy():
            key = tuple(n for n, k in zip(names, row) if k)
            counts[key] = counts.get(key, 0) + 1
        total += len(m)
    return {mask: counts.get(tuple(n for n in names if n in mask), 0) / total for mask in [*masks, ()]}


def run(generator, modality, n_targets: int, seeds, frequency_draws: int = 50, training: pd.DataFrame | None = None,
        physics_guidance: float = 0.0) -> dict:
    from genmat.loop.design import physics_misfit

    bands = dict(modality.tolerance_bands)
    rng = np.random.default_rng(REFERENCE_SEED)
    recipes = modality.draw_processing(n_targets, rng)
    _, reference = modality.simulate(recipes, seed=REFERENCE_SEED)
    _, replicate = modality.simulate(recipes, seed=REFERENCE_SEED + 1)
    masks = masks_of(modality.schema)
    freq = mask_frequency(generator, training, masks, frequency_draws) if training is not None else {}
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        nothing = torch.zeros(n_targets, len(generator.schema.names))  # every field hidden
        uncond = modality.measure(generator.sample(nothing, nothing, seed=seed))
        for mask in masks:
            cond = reference[list(mask)].reindex(columns=list(modality.schema.names))
            t1 = time.perf_counter()
            measured = modality.measure(generator.sample_conditions(cond, seed=seed))
            seconds = time.perf_counter() - t1
            fields = checked_fields(mask, bands)
            ok = hits(measured, reference, fields, bands)
            guided = np.full(n_targets, np.nan)
            given = [f for f in mask if f in bands]
            evaluations = {"evaluations": 0}
            if physics_guidance and given and modality.physics_model() is not None:
                sampler = generator.config.sampler.replace(physics_scale=float(physics_guidance))
                x = generator.sample_conditions(cond, seed=seed, sampler=sampler,
                                                physics=physics_misfit(modality, reference[given], 1, evaluations))
                guided = hits(modality.measure(x), reference, fields, bands)
            row = {"mask": " + ".join(mask), "n_given": len(mask), "checked": " + ".join(fields), "seed": seed,
                   "targets": n_targets, "hits": int(ok.sum()),
                   "guided_hits": int(np.sum(guided == 1)) if given and physics_guidance else None,
                   "physics_evaluations": evaluations["evaluations"],
                   "unconditional_hits": int(hits(uncond, reference, fields, bands).sum()),
                   "replicate_hits": (int(hits(replicate, reference, fields, bands).sum())
                                      if not set(mask) & set(bands) else None),
                   "train_frequency": freq.get(mask), "seconds_per_sample": seconds / n_targets}
            for f in fields:
                ref = reference[f].to_numpy(float)
                row[f"{f}_mape"] = float(np.mean(np.abs(measured[f].to_numpy(float) - ref) / np.abs(ref)))
            rows.append(row)
            log.info("seed %d, mask %-45s %2d/%d hits (unconditional %d)", seed, row["mask"], row["hits"], n_targets,
                     row["unconditional_hits"])
        log.info("seed %d done in %.0f s", seed, time.perf_counter() - t0)
    return {"targets": n_targets, "seeds": list(seeds), "tolerances": bands, "rows": rows,
            "physics_guidance": physics_guidance,
            "unconditional_frequency": freq.get(())}


def summary(rows: list[dict]) -> pd.DataFrame:
    """One line per mask: hit rates over all seeds."""
    frame = pd.DataFrame(rows)
    agg = frame.groupby("mask", sort=False).agg(
        n_given=("n_given", "first"), checked=("checked", "first"), seeds=("seed", "size"), hits=("hits", "sum"),
        targets=("targets", "sum"), unconditional=("unconditional_hits", "sum"),
        guided=("guided_hits", lambda v: v.sum() if v.notna().all() else np.nan),
        replicate=("replicate_hits", "first"), per_seed=("targets", "first"),
        train_frequency=("train_frequency", "first")).reset_index()
    agg["hit_rate"] = agg["hits"] / agg["targets"]
    agg["unconditional_rate"] = agg["unconditional"] / agg["targets"]
    agg["guided_rate"] = agg["guided"].astype(float) / agg["targets"]
    agg["replicate_rate"] = agg["replicate"].astype(float) / agg["per_seed"]
    return agg


def markdown(result: dict) -> str:
    table = summary(result["rows"])
    scale = result.get("physics_guidance") or 0
    lines = ["| fields given | checked | hit rate (CFG alone, 1 sample) | with physics guidance ×" f"{scale:g}"
             " | unconditional | process replicate | mask's share of training |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        rep = "–" if not np.isfinite(r["replicate_rate"]) else f"{r['replicate_rate']:.0%}"
        freq = "–" if r["train_frequency"] is None or not np.isfinite(r["train_frequency"]) else \
            f"{r['train_frequency']:.1%}"
        guided = "–" if not np.isfinite(r["guided_rate"]) else f"{r['guided_rate']:.0%}"
        lines.append(f"| {r['mask']} | {r['checked']} | {r['hits']}/{r['targets']} = {r['hit_rate']:.0%} | {guided} | "
                     f"{r['unconditional_rate']:.0%} | {rep} | {freq} |")
    tol = ", ".join(f"{k} ±{v[1]:g}{' (rel)' if v[0] == 'rel' else ''}" for k, v in result["tolerances"].items())
    return (f"{result['targets']} reference materials × seeds {result['seeds']}; tolerances {tol}.\n\n"
            + "\n".join(lines) + "\n")


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(result["rows"])
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(table) + 2.0))
    h = 0.21
    ax.barh(y - 1.5 * h, table["hit_rate"], h, label="conditioned on the fields given (CFG alone, 1 sample)", color="C0")
    ax.barh(y - 0.5 * h, table["guided_rate"].fillna(0.0), h, label="… and physics guidance on the given properties",
            color="C3")
    ax.barh(y + 0.5 * h, table["unconditional_rate"], h, label="unconditional sample", color="C7")
    ax.barh(y + 1.5 * h, table["replicate_rate"].fillna(0.0), h, label="process replicate of the recipe", color="C2")
    ax.set_yticks(y, [m.replace("density_g_cm3", "ρ").replace("_GPa", "").replace("_W_mK", "").replace(
        "temperature_K", "T").replace("time_s", "t") for m in table["mask"]], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of targets whose sample meets them (oracle measurement)")
    ax.set_title("one generator, any subset of the conditions", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.45, -0.09), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for masks.json/.md/.png")
    ap.add_argument("--workdir", type=Path, default=Path("runs/bench-guidance"),
                    help="the demo generator's loop run (trained there when absent; shared with bench-guidance)")
    ap.add_argument("--iterations", type=int, default=2, help="loop iterations that train the generator")
    ap.add_argument("--targets", type=int, default=32, help="reference materials")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="sampling seeds")
    ap.add_argument("--physics-guidance", type=float, default=30.0,
                    help="physics-guidance scale of the guided column (0: none; the spinodal loop's default 30)")
    ap.add_argument("--quick", action="store_true", help="8 targets, one loop iteration")
    args = ap.parse_args(argv)
    if args.targets < 1:
        ap.error(f"--targets = {args.targets}; allowed: >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.quick:
        args.targets, args.iterations = min(args.targets, 8), 1
    from benchmarks.guidance import ensure_model
    from genmat.data import DatasetStore
    from genmat.generate import Generator
    from genmat.loop import LoopConfig
    from genmat.modalities import get_modality

    ckpt, dataset = ensure_model(args.workdir, args.iterations, seed=0)
    generator = Generator.from_checkpoint(ckpt)
    store = DatasetStore.open(dataset)
    loop = LoopConfig(workdir=args.workdir, max_iterations=args.iterations, physics_guidance=0.0)
    modality = get_modality(loop.modality, **loop.modality_options)
    result = run(generator, modality, args.targets, args.seeds, training=store.table(),
                 physics_guidance=args.physics_guidance)
    result["checkpoint"] = str(ckpt)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "masks.json").write_text(json.dumps(result, indent=1, default=float))
    (args.out / "masks.md").write_text(markdown(result))
    figure(result, args.out / "masks.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
