"""Physics guidance benchmark (`make bench-guidance`): does steering the sampler through the
differentiable homogeniser lift the hit rate at one oracle call per target?

    python -m benchmarks.guidance --out bench_results [--workdir runs/bench-guidance] [--quick]

The generator is the demo's: `genmat loop` for two iterations (192 initial simulations,
150 + 300 training steps at batch 32), trained here into ``--workdir`` unless a run is already there.
Each registered task's targets (spinodal-demo: E ±5 %, ρ ±2 %; spinodal-tight32: E ±2 %,
k ±0.5 %, ρ ±0.3 %, both on 32² cells) get ONE candidate each and that candidate ONE
simulator call — no screening, so the hit rate is the generator's own — for classifier-free
guidance alone and with physics guidance at each scale. Reported per arm: hits, physics
checks passed, the S2 error against simulations of the processing each target came from
(validation only: not counted as design calls), novelty against the training set, physics
evaluations (forward + adjoint of the cheap model, one per sample per sampling step) and
seconds per design. Writes guidance.json, guidance.md and guidance_trajectory.png.

Physics-penalised training ablation (``--penalties TERM=WEIGHT …``; ``--penalties`` with no
terms skips it): the loop's last training step is redone from the same start, steps, seed
and data, once on the data alone ("retrained") and once with the modality's physics
penalties ("penalised"); both are compared unguided and at the largest guidance scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

log = logging.getLogger("benchmarks.guidance")

TASKS = ("spinodal-demo", "spinodal-tight32")


def ensure_model(workdir: Path, iterations: int, seed: int) -> tuple[Path, Path]:
    """The demo's generator after ``iterations`` loop iterations (trained here when absent)."""
    from genmat.loop.closed_loop import ClosedLoop, LoopConfig

    ckpt = workdir / f"iter_{iterations - 1:02d}" / "model.ckpt"
    if not ckpt.exists():
        log.info("training the demo's generator into %s (%d loop iterations)", workdir, iterations)
        ClosedLoop(LoopConfig(workdir=workdir, max_iterations=iterations, seed=seed, physics_guidance=0.0)).run()
    return ckpt, workdir / "dataset"


def ensure_ablation(workdir: Path, iterations: int, penalties: dict[str, float], seed: int,
                    train_seeds: tuple[int, ...] = (0,)) -> dict[str, Path]:
    """The loop's last training step redone on the final dataset, from the same start (the
    previous iteration's weights; from scratch when there is none) and steps: for each
    training seed, once on the data alone ("retrained") and once with physics penalties
    ("penalised"), so that each pair differs only in the loss. Training seed 0 is the
    loop's own; the others repeat the comparison with other batches and noise draws (named
    ``retrained-s1``, …). Cached in ``workdir/ablation``."""
    from genmat.loop.closed_loop import LoopConfig
    from genmat.loop.steps import TrainParams, train_step

    loop = LoopConfig(workdir=workdir, max_iterations=iterations, seed=seed, physics_guidance=0.0)
    k = iterations - 1
    start = loop.iteration_dir(k - 1) / "model.ckpt" if k else None
    steps = loop.next_train_steps if k else loop.first_train_steps
    out = {}
    for train_seed in train_seeds:
        for name, weights in (("retrained", {}), ("penalised", penalties)):
            label = name if train_seed == 0 else f"{name}-s{train_seed}"
            tag = _weights_tag(weights) + ("" if train_seed == 0 else f"-s{train_seed}")
            ckpt = workdir / "ablation" / f"{name}-{tag}.ckpt"
            if not ckpt.exists():
                log.info("training the %s generator (%d steps, penalties %s, seed %d) into %s", name, steps, weights,
                         train_seed, ckpt)
                train_step(TrainParams(modality=loop.modality, dataset=loop.dataset, checkpoint=ckpt, warm_start=start,
                                       generator=loop.generator.replace(penalties=weights),
                                       train=loop.train.replace(steps=steps, seed=seed + k + 1000 * train_seed)),
                           progress=False)
            out[label] = ckpt
    return out


def _weights_tag(weights: dict[str, float]) -> str:
    return "_".join(f"{k}{v:g}" for k, v in sorted(weights.items())) or "none"


def task_modality(task):
    """The modality at the task's grid whose simulator check uses the task's tolerances."""
    from genmat.modalities import get_modality
    from genmat.validate import Tolerances

    tol = {name: t.value for name, t in task.tolerances.items()}
    tolerances = Tolerances(E_rel=tol.get("E_GPa", 0.05), density_rel=tol.get("density_g_cm3", 0.02),
                            k_rel=tol.get("k_W_mK", 0.05))
    return get_modality(task.modality, **dict(task.modality_options), tolerances=tolerances)


def run_arm(generator, modality, targets: pd.DataFrame, reference: pd.DataFrame, training, ids, *,
            scale: float, t_min: float, max_step: float | None, seed: int) -> dict:
    from genmat.loop.design import design

    sampler = generator.config.sampler.replace(physics_t_min=t_min, physics_max_step=max_step)
    t0 = time.perf_counter()
    res = design(generator, modality, targets, n_candidates=1, n_simulate=1, training_samples=training,
                 training_ids=ids, sampler=sampler, seed=seed, physics_guidance=scale)
    seconds = time.perf_counter() - t0
    s2 = modality.physics_checks(res.samples, reference)["s2_error"].to_numpy(float)
    m = res.metrics
    hits = int(m["hits"])
    return {
        "physics_scale": scale, "t_min": t_min, "max_step": max_step, "seed": seed, "targets": int(m["targets"]), "hits": hits,
        "hit_rate": m["hit_rate"], "oracle_calls": int(m["simulator_calls"]),
        "physics_pass_rate": m["physics_pass_rate"], "s2_error": float(np.nanmean(s2)),
        "novelty_mean": m.get("novelty_mean", float("nan")), "copy_rate": m.get("copy_rate", float("nan")),
        "physics_evaluations": int(m["physics_evaluations"]),
        "physics_evaluations_per_hit": m["physics_evaluations"] / hits if hits else float("inf"),
        "E_mape": m.get("E_mape", float("nan")), "seconds_per_design": seconds / max(1, int(m["targets"])),
    }


def trajectory_figure(generator, modality, target: pd.DataFrame, scale: float, path: Path) -> None:
    """x̂0 along one sampling run, without and with physics guidance, titled with the cheap
    model's E of each x̂0 against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genmat.diffusion import PhysicsGuidance, classifier_free, sample
    from genmat.loop.design import physics_misfit

    model = generator.model
    values, mask = generator.schema.encode(modality.schema.validate_frame(target))
    physics = modality.physics_model("cheap")
    noise = torch.randn((1, *modality.sample_shape), generator=torch.Generator().manual_seed(3))
    rows = []
    for s in (0.0, scale):
        shots = []
        base = classifier_free(model, values, mask, generator.config.sampler.guidance)
        loss = physics_misfit(modality, target, 1)
        cfg = generator.config.sampler
        pred = (PhysicsGuidance(base, model.path, lambda x0: loss(x0, slice(0, 1)), s, t_min=cfg.physics_t_min,
                                max_step=cfg.physics_max_step) if s else base)

        def record(x, t, pred=pred, shots=shots):
            x0, eps = pred(x, t)
            shots.append((float(t[0]), x0.detach().clone()))
            return x0, eps

        final = sample(record, model.path, noise, steps=generator.config.sampler.steps, method="euler")
        shots.append((0.0, final))
        rows.append(shots[:: max(1, len(shots) // 6)][:6] + [shots[-1]])
    fig, axes = plt.subplots(2, len(rows[0]), figsize=(1.9 * len(rows[0]), 4.4), squeeze=False)
    e_target = float(target["E_GPa"].iloc[0])
    for r, (shots, label) in enumerate(zip(rows, ("CFG alone", f"CFG + physics ×{scale:g}"))):
        for c, (t, x0) in enumerate(shots):
            with torch.no_grad():
                e = float(physics(x0.clamp(-1.5, 1.5))["E_GPa"][0])
            ax = axes[r, c]
            ax.imshow(x0[0, 0].numpy(), cmap="cividis", vmin=-1.1, vmax=1.1, interpolation="nearest")
            ax.set_title(f"t={t:.2f}  E {e:.0f}", fontsize=7)
            ax.axis("off")
        axes[r, 0].text(-0.15, 0.5, label, transform=axes[r, 0].transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    fig.suptitle(f"denoised estimate x̂0 along sampling (Euler); target E {e_target:.0f} GPa, "
                 f"ρ {float(target['density_g_cm3'].iloc[0]):.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    """One line per (model, task, scale): hits summed over the sampling seeds, the rest averaged."""
    cols = ["model", "task", "physics_scale", "seeds", "hits", "targets", "hit_rate", "oracle_calls",
            "physics_pass_rate", "s2_error", "novelty_mean", "physics_evaluations_per_hit", "E_mape",
            "seconds_per_design"]
    frame = pd.DataFrame(rows)
    table = frame.groupby(["model", "task", "physics_scale"], sort=False).agg(
        seeds=("seed", "size"), hits=("hits", "sum"), targets=("targets", "sum"), oracle_calls=("oracle_calls", "sum"),
        physics_pass_rate=("physics_pass_rate", "mean"), s2_error=("s2_error", "mean"),
        novelty_mean=("novelty_mean", "mean"), physics_evaluations=("physics_evaluations", "sum"),
        E_mape=("E_mape", "mean"), seconds_per_design=("seconds_per_design", "mean")).reset_index()
    table["hit_rate"] = table["hits"] / table["targets"]
    table["physics_evaluations_per_hit"] = table["physics_evaluations"] / table["hits"].where(table["hits"] > 0)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    ablation = frame[frame["model"].str.startswith(("retrained", "penalised"))]
    if ablation["model"].nunique() > 2:  # several training seeds: the pairs summed, and the spread
        per = ablation.assign(arm=ablation["model"].str.split("-").str[0]).groupby(
            ["arm", "model", "task", "physics_scale"], sort=False)["hits"].sum().reset_index()
        summary = per.groupby(["arm", "task", "physics_scale"], sort=False)["hits"].agg(
            ["sum", "min", "max", "size"]).reset_index()
        lines += ["", "| arm | task | physics_scale | training seeds | hits (all seeds) | fewest | most |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in summary.iterrows():
            lines.append(f"| {r['arm']} | {r['task']} | {r['physics_scale']:g} | {r['size']} | {r['sum']} | "
                         f"{r['min']} | {r['max']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for guidance.json/.md/.png")
    ap.add_argument("--workdir", type=Path, default=Path("runs/bench-guidance"), help="the demo generator's loop run")
    ap.add_argument("--iterations", type=int, default=2, help="loop iterations that train the generator")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.0, 3.0, 10.0, 30.0], help="physics guidance scales")
    ap.add_argument("--t-min", type=float, default=0.1, help="guide while t >= this")
    ap.add_argument("--max-step", type=float, default=0.2, help="cap on the RMS of one correction (0: none)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="sampling seeds")
    ap.add_argument("--targets", type=int, default=None, help="targets per task (default: the task's)")
    ap.add_argument("--penalties", nargs="*", default=["fraction=3000", "s2=3000", "double_well=10000"],
                    metavar="TERM=WEIGHT", help="physics-penalised training ablation: retrain the last iteration "
                    "with and without these penalties (none given: no ablation)")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0],
                    help="training seeds of the penalty ablation (0: the loop's own; each adds a retrained and a "
                    "penalised model)")
    ap.add_argument("--no-loop-model", action="store_true", help="compare the ablation's models only")
    ap.add_argument("--quick", action="store_true", help="8 targets, scales 0 and 1, one loop iteration")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.quick:
        args.targets, args.scales, args.iterations = args.targets or 8, [0.0, 1.0], 1
    from genmat.data import DatasetStore
    from genmat.generate import Generator
    from genmat.modalities import get_task

    ckpt, dataset = ensure_model(args.workdir, args.iterations, seed=0)
    models = {} if args.no_loop_model else {"loop": ckpt}
    penalties = {k: float(v) for k, _, v in (p.partition("=") for p in args.penalties)}
    if penalties:
        models.update(ensure_ablation(args.workdir, args.iterations, penalties, seed=0,
                                      train_seeds=tuple(args.train_seeds)))
    store = DatasetStore.open(dataset)
    training, ids = torch.as_tensor(store.load()), store.table()["sample_id"].to_numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    generators = {name: Generator.from_checkpoint(path) for name, path in models.items()}
    for model_name, generator in generators.items():
        for name in TASKS:
            task = get_task(name)
            mod = task_modality(task)
            tset = task.targets(mod, args.targets)
            targets = pd.DataFrame(tset.point, columns=list(tset.fields))
            # the ablation models are compared unguided and at the largest scale
            scales = args.scales if model_name == "loop" else sorted({args.scales[0], max(args.scales)})
            for scale in scales:
                for seed in args.seeds:
                    row = {"model": model_name, "task": name,
                           **run_arm(generator, mod, targets, tset.reference, training, ids, scale=scale,
                                     t_min=args.t_min, max_step=args.max_step or None, seed=seed)}
                    log.info("%s %s scale %g seed %d: %d/%d hits, physics pass %.2f", model_name, name, scale,
                             seed, row["hits"], row["targets"], row["physics_pass_rate"])
                    rows.append(row)
    generator = next(iter(generators.values()))  # the trajectory picture shows the loop's model
    (args.out / "guidance.json").write_text(json.dumps(
        {"checkpoint": str(ckpt), "models": {k: str(v) for k, v in models.items()}, "penalties": penalties,
         "rows": rows}, indent=1))
    (args.out / "guidance.md").write_text(markdown(rows))
    demo = get_task(TASKS[0])
    mod = task_modality(demo)
    tset = demo.targets(mod, 1)
    trajectory_figure(generator, mod, pd.DataFrame(tset.point, columns=list(tset.fields)), max(args.scales),
                      args.out / "guidance_trajectory.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
