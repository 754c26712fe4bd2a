"""The lab's own data, measured (`make bench-lab`): how far can a scientist trust designs made
from imported images, checked by a learned surrogate instead of an oracle?

    python -m benchmarks.lab_data --out bench_results [--n 256] [--steps 600] [--quick]

The "lab data" are simulated so that the truth is known: ``--n`` spinodal micrographs
(32², the demo's material) from the oracle, written as 8-bit PNG files with a CSV of their
measured E and density — what a lab would have from its microscope and its tests. Then, as a
user would, through genmat's public functions only:

1. ``genmat import`` them (``--kind phase``: the Otsu threshold gives the ±1 phase map);
2. train the generator on the imported dataset (``--steps``);
3. design ``--targets`` (E, ρ) held-out targets (conditions of fresh simulations, a seed the
   import never saw): 8 candidates each, the 2 that pass the data's physics checks first
   checked by the surrogate (a noise-aware regressor trained on 80 % of the import; its error
   measured on the other 20 %);
4. measure every checked candidate with the **real oracle** (the FFT homogeniser and the rule
   of mixtures on the candidate's phase map) — the measurement a lab would have to make.

Reported: the surrogate's held-out RMSE; targets hit according to the surrogate, and
according to the oracle (same tolerance: 5 % of each field's imported range); how often
the two agree on a checked candidate (precision of a surrogate hit). Writes lab_data.json,
lab_data.md and lab_data.png (designs with surrogate and oracle values).
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

log = logging.getLogger("benchmarks.lab_data")

TARGET_SEED = 7_000_003  # the held-out targets' simulations (never the import's seed)


def write_lab_folder(folder: Path, n: int, grid: int, seed: int) -> pd.DataFrame:
    """``n`` simulated micrographs as 8-bit PNGs and their conditions.csv (E, density)."""
    from skimage import io

    from genmat.modalities import get_modality

    mod = get_modality("spinodal", grid=grid)
    x, rows = mod.simulate(mod.draw_processing(n, np.random.default_rng(seed)), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, img in enumerate(x[:, 0].numpy()):
        names.append(f"micrograph_{i:04d}.png")
        io.imsave(folder / names[-1], np.clip((img + 1) * 127.5, 0, 255).astype(np.uint8), check_contrast=False)
    table = pd.DataFrame({"file": names, "E_GPa": rows["E_GPa"].round(3),
                          "density_g_cm3": rows["density_g_cm3"].round(5)})
    table.to_csv(folder / "conditions.csv", index=False)
    return table


def held_out_targets(n: int, grid: int, schema) -> pd.DataFrame:
    """(E, ρ) of fresh simulations inside the imported ranges."""
    from genmat.modalities import get_modality

    mod = get_modality("spinodal", grid=grid)
    _, rows = mod.simulate(mod.draw_processing(4 * n, np.random.default_rng(TARGET_SEED)), seed=TARGET_SEED)
    inside = np.ones(len(rows), bool)
    for f in ("E_GPa", "density_g_cm3"):
        fld = schema.field(f)
        inside &= rows[f].between(fld.low, fld.high).to_numpy()
    return rows.loc[inside, ["E_GPa", "density_g_cm3"]].head(n).reset_index(drop=True)


def run(args) -> dict:
    from genmat.api import design
    from genmat.loop.steps import TrainParams, train_step
    from genmat.modalities import get_modality, import_folder
    from genmat.train import TrainConfig

    work = args.workdir
    t0 = time.perf_counter()
    folder = work / "lab"
    if not (folder / "conditions.csv").exists():
        write_lab_folder(folder, args.n, args.grid, seed=args.seed)
    dataset = work / "dataset"
    store = None
    if not (dataset / "manifest.json").exists():
        store = import_folder(folder, folder / "conditions.csv", dataset, kind="phase")
    options = {"dataset": str(dataset), "surrogate_steps": args.surrogate_steps}
    mod = get_modality("imported", **options)
    store = store or mod.store
    checkpoint = work / "model.ckpt"
    from genmat.loop.closed_loop import modality_generator

    generator = modality_generator(mod)
    train_step(TrainParams(modality="imported", modality_options=options, dataset=dataset, checkpoint=checkpoint,
                           generator=generator, train=TrainConfig(steps=args.steps, batch_size=32, seed=args.seed)),
               progress=False)
    t_train = time.perf_counter() - t0
    targets = held_out_targets(args.targets, args.grid, mod.schema)
    result = design(targets, checkpoint=checkpoint, n=8, n_simulate=2, dataset=dataset, modality="imported",
                    modality_options=options, seed=args.seed)
    report = result.report
    checked = report[report["simulated"]].copy()
    checked["hit"] = checked["verdict"].eq("hit")
    oracle = get_modality("spinodal", grid=args.grid)
    fields = ["E_GPa", "density_g_cm3"]
    if len(checked):
        idx = torch.as_tensor(checked.index.to_numpy())
        measured = oracle.measure(torch.where(result.samples[idx] > 0, 1.0, -1.0))  # the candidate's phase map
    else:  # nothing passed the physics checks: nothing to measure
        measured = pd.DataFrame({f: np.zeros(0) for f in fields})
    tol = {f: t.value for f, t in mod.design_tolerances.items()}
    oracle_ok = np.ones(len(checked), bool)
    for f in fields:
        checked[f"sim_{f}"] = checked.get(f"sim_{f}", np.nan)
        checked[f"oracle_{f}"] = measured[f].to_numpy()
        oracle_ok &= np.abs(checked[f"oracle_{f}"] - checked[f"target_{f}"]).to_numpy() <= tol[f]
    checked["oracle_pass"] = oracle_ok
    surrogate_hit = checked["hit"].to_numpy(bool)
    by_target = checked.groupby("target_id")
    _, error = mod.surrogate()
    table = store.table()  # the baseline a lab already has: a sample it measured that meets the target
    lookup = np.zeros(len(targets), bool)
    for i, row in targets.iterrows():
        lookup[i] = (np.abs(table[fields] - row[fields]) <= pd.Series(tol)[fields]).all(axis=1).any()
    out = {
        "targets_met_by_an_imported_sample": int(lookup.sum()),
        "n_imported": len(store), "grid": args.grid, "train_steps": args.steps, "targets": len(targets),
        "surrogate_steps": args.surrogate_steps,
        "surrogate_error": error, "tolerance": tol,
        "candidates": int(len(report)), "physics_pass": float(report["physics_pass"].mean()),
        "checked": int(len(checked)),
        "surrogate_hits": int(surrogate_hit.sum()), "oracle_hits": int(oracle_ok.sum()),
        "both": int((surrogate_hit & oracle_ok).sum()),
        "precision": float((surrogate_hit & oracle_ok).sum() / max(1, surrogate_hit.sum())),
        "targets_hit_surrogate": int(by_target["hit"].any().sum()),
        "targets_hit_oracle": int(by_target["oracle_pass"].any().sum()),
        "targets_hit_surrogate_and_oracle": int(checked.assign(both=surrogate_hit & oracle_ok)
                                                .groupby("target_id")["both"].any().sum()),
        "oracle_abs_err_of_surrogate": {f: float(np.mean(np.abs(checked[f"sim_{f}"] - checked[f"oracle_{f}"])))
                                        for f in fields},
        "seconds": time.perf_counter() - t0, "seconds_import_and_train": t_train,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lab_data.json").write_text(json.dumps(out, indent=2))
    (args.out / "lab_data.md").write_text(markdown(out))
    picture(checked, result.samples, args.out / "lab_data.png")
    return out


def markdown(r: dict) -> str:
    e = r["surrogate_error"]
    lines = [
        f"# Lab data: {r['n_imported']} imported {r['grid']}² micrographs (PNG + CSV), "
        f"generator {r['train_steps']} steps, {r['targets']} held-out (E, ρ) targets",
        "",
        "| | E_GPa | density_g_cm3 |",
        "|---|---|---|",
        f"| tolerance (5 % of the imported range) | ±{r['tolerance']['E_GPa']:.3g} | "
        f"±{r['tolerance']['density_g_cm3']:.3g} |",
        f"| surrogate held-out RMSE (R²) | {e['E_GPa']['rmse']:.3g} ({e['E_GPa']['r2']:.2f}) | "
        f"{e['density_g_cm3']['rmse']:.3g} ({e['density_g_cm3']['r2']:.2f}) |",
        f"| surrogate vs oracle on checked candidates (mean abs) | "
        f"{r['oracle_abs_err_of_surrogate']['E_GPa']:.3g} | {r['oracle_abs_err_of_surrogate']['density_g_cm3']:.3g} |",
        "",
        f"- candidates passing the data's physics checks: {r['physics_pass']:.0%} of {r['candidates']}",
        f"- checked candidates: {r['checked']}; surrogate hits {r['surrogate_hits']}, oracle hits "
        f"{r['oracle_hits']}, both {r['both']} (precision of a surrogate hit {r['precision']:.0%})",
        f"- targets hit: {r['targets_hit_surrogate']} by the surrogate, {r['targets_hit_oracle']} by the oracle, "
        f"{r['targets_hit_surrogate_and_oracle']} by a design both call a hit (of {r['targets']})",
        f"- baseline, a lookup in the imported table: {r['targets_met_by_an_imported_sample']} of {r['targets']} "
        "targets already met by a measured sample (within the same tolerance)",
        f"- {r['seconds']:.0f} s in all ({r['seconds_import_and_train']:.0f} s to write, import and train)",
        "",
    ]
    return "\n".join(lines)


def picture(checked: pd.DataFrame, samples: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genmat import plots

    rows = checked.head(16)
    fig, axes = plt.subplots(2, 8, figsize=(13, 4.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, row) in zip(axes.flat, rows.iterrows()):
        ax.imshow(samples[i, 0].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ok = ("✓" if row["hit"] else "✗") + ("✓" if row["oracle_pass"] else "✗")
        ax.set_title(f"target E {row['target_E_GPa']:.0f}, ρ {row['target_density_g_cm3']:.3f}\n"
                     f"surr. {row['sim_E_GPa']:.0f}, {row['sim_density_g_cm3']:.3f}\n"
                     f"oracle {row['oracle_E_GPa']:.0f}, {row['oracle_density_g_cm3']:.3f}  {ok}", fontsize=6)
    fig.suptitle("designs from imported micrographs: surrogate (the check genmat ran) vs oracle (the truth); "
                 "✓✗ = surrogate, oracle verdicts", fontsize=8)
    fig.tight_layout()
    plots.save(fig, path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="where lab_data.{json,md,png} go")
    p.add_argument("--workdir", type=Path, default=Path("runs") / "bench-lab", help="images, dataset, model")
    p.add_argument("--n", type=int, default=256, help="micrographs to 'measure' and import")
    p.add_argument("--grid", type=int, default=32, help="micrograph size (pixels)")
    p.add_argument("--steps", type=int, default=600, help="generator training steps")
    p.add_argument("--surrogate-steps", type=int, default=1000, help="surrogate training steps")
    p.add_argument("--targets", type=int, default=16, help="held-out (E, ρ) targets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: 48 images of 16², 40 steps, 2 targets")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.grid, args.steps, args.surrogate_steps, args.targets = 48, 16, 40, 40, 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = run(args)
    print(markdown(out))
    return out


if __name__ == "__main__":
    main()
