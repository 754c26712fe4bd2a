"""Every generative family and sampler on the micrograph demo, measured against each other.

``python -m benchmarks.methods`` (part of ``make bench``) trains each family on the same
simulated spinodal data — flow matching (the demo's default), DDPM (VP linear, ε), the
conditional VAE, latent diffusion, the normalizing flow and the conditional GAN — plus the
two few-step students of the flow-matching model (reflow, consistency distillation), then
samples every (model, sampler, steps) and measures, per row:

- **network evaluations** per sample and **seconds per sample** (one batch, wall clock);
- **S2 error** and **volume-fraction error** against the simulator (quality pass: conditioned
  on held-out *processing* conditions; S2 is compared with the mean radial two-point
  correlation of fresh simulations of the same condition);
- **hit rate** on held-out *property* targets (design pass: conditioned on E and density;
  a candidate hits when it passes the physics checks, its simulated E and density are within
  tolerance, and it is no copy of a training sample) and **novelty**.

Then the textbook trade-off table per family (speed, quality, training stability over seeds,
exact likelihood, mode coverage as precision/recall of physical features of samples for
random processing conditions) and the two acceptance checks of issue 4. Models are cached in ``--workdir``
(default ``runs/methods``): a rerun only evaluates, an interrupted run resumes.
Writes ``methods.json``, ``methods.md``, ``methods_vs_nfe.png`` and ``methods_samples.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from benchmarks import report
from benchmarks.run import _jsonable, machine_info, setup_logging, write_json
from genmat.diffusion.samplers import network_evaluations

log = logging.getLogger("benchmarks.methods")

#: (model, sampler) → step counts swept (those in Settings.steps are kept).
SWEEP: dict[str, dict[str, tuple[int, ...]]] = {
    "flow_matching": {"euler": (1, 2, 4, 10, 20, 50), "heun": (1, 2, 4, 10, 20, 50), "dpmpp_2m": (2, 4, 10, 20)},
    "ddpm": {"ddpm": (10, 20, 50, 250), "ddim": (1, 2, 4, 10, 20, 50, 250), "dpmpp_2m": (1, 2, 4, 10, 20, 50)},
    "reflow": {"euler": (1, 2, 4, 10)},
    "consistency": {"consistency": (1, 2, 4)},
    "latent_diffusion": {"heun": (1, 2, 4, 10, 20)},
    "vae": {"decode": (1,)},
    "normalizing_flow": {"inverse": (1,)},
    "gan": {"generate": (1,)},
}
#: The textbook families of the trade-off table: (model, its default sampler, steps).
FAMILIES = {
    "VAE": ("vae", "decode", 1),
    "GAN": ("gan", "generate", 1),
    "diffusion (DDPM)": ("ddpm", "ddpm", 250),
    "flow matching": ("flow_matching", "heun", 10),
    "normalizing flow": ("normalizing_flow", "inverse", 1),
}
TEACHER = ("flow_matching", "heun", 50)
PROCESSING = ("x_B", "temperature_K", "time_s")
FRAMES = ("targets", "processing", "coverage_real")  # the cached data's tables (numeric columns)
REFERENCE = ("ddpm", "ddpm", 250)


@dataclass(frozen=True)
class Settings:
    n_train: int = 640  # simulated training micrographs (the demo's final loop trains on ≈ 630)
    n_targets: int = 32  # held-out targets (property vectors and processing of held-out simulations)
    n_candidates: int = 4  # samples per target in each pass
    n_coverage: int = 128  # fresh simulations at random processing, one generated sample each (precision/recall)
    train_steps: int = 1200
    batch_size: int = 64
    student_steps: int = 600  # reflow / consistency distillation steps on top of the teacher
    reflow_pairs: int = 1024
    seeds: tuple[int, ...] = (0, 1)  # training seeds of the families (stability = spread over seeds)
    steps: tuple[int, ...] = (1, 2, 4, 10, 20, 50, 250)
    batch: int = 256  # sampling batch
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> "Settings":
        return cls(n_train=48, n_targets=4, n_candidates=2, n_coverage=16, train_steps=4, batch_size=8,
                   student_steps=2, reflow_pairs=16, seeds=(0, 1), steps=(1, 2, 4), batch=16, quick=True)


@dataclass
class Model:
    name: str
    generator: object
    seed: int
    train_seconds: float
    final_loss: float | None
    extra: dict = field(default_factory=dict)


@functools.cache
def spinodal():
    """The micrograph modality every section measures on."""
    from genmat.modalities import get_modality

    return get_modality("spinodal")


def find_row(rows: list[dict], model: str, sampler: str, steps: int, seed: int) -> dict | None:
    return next((r for r in rows if (r["model"], r["sampler"], r["steps"], r["seed"]) == (model, sampler, steps, seed)),
                None)


# ------------------------------------------------------------------------- data
def build_data(s: Settings, workdir: Path) -> dict:
    """Training set, held-out targets (design pass), their processing (quality pass) with
    simulator reference S2, and fresh simulations for mode coverage; cached in ``data.pt``."""
    from genmat.loop.targets import held_out_targets
    from genmat.validate.micrograph import reference_s2

    mod = spinodal()
    path = workdir / "data.pt"
    if path.exists():  # tensors and plain values only: loaded without unpickling code
        data = torch.load(path, weights_only=True)
        return {**data, **{k: pd.DataFrame({c: v.numpy() for c, v in data[k].items()}) for k in FRAMES}}
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    x, rows = mod.simulate(mod.draw_processing(s.n_train, rng), seed=0)
    frame = mod.schema.validate_frame(rows[[f.name for f in mod.schema.fields]])
    values, mask = mod.schema.encode(frame)
    targets, _ = held_out_targets(mod, s.n_targets, seed=20240)
    processing = targets[[c for c in targets if c.startswith("ref_")]].rename(columns=lambda c: c[4:])
    cover_x, cover_rows = mod.simulate(mod.draw_processing(s.n_coverage, np.random.default_rng(777)), seed=777)
    data = {
        "train": [x, values, mask],
        "targets": targets[list(mod.target_fields)].reset_index(drop=True),
        "processing": processing.reset_index(drop=True),
        "reference_s2": reference_s2(processing, mod.config.ch, n_ref=mod.config.n_reference, seed=1),
        "coverage_real": cover_rows,
        "seconds": time.perf_counter() - t0,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**data, **{k: {c: torch.tensor(data[k][c].to_numpy(dtype=float)) for c in data[k]} for k in FRAMES}},
               tmp)
    tmp.replace(path)
    return data


# ---------------------------------------------------------------------- training
def _configs():
    from genmat.loop.closed_loop import default_generator

    base = default_generator()
    return {
        "flow_matching": base,
        "ddpm": base.replace(path="vp_linear", prediction="eps", sampler=base.sampler.replace(method="ddpm", steps=250)),
        "vae": base.replace(method="vae"),
        "latent_diffusion": base.replace(method="latent_diffusion"),
        "normalizing_flow": base.replace(method="normalizing_flow"),
        "gan": base.replace(method="gan"),
    }


#: per-family learning rate and EMA where the default (2e-3, 0.995) does not suit it
TRAIN_OVERRIDES = {"gan": {"lr": 1e-3, "ema_decay": 0.99}, "normalizing_flow": {"lr": 1e-3},
                   "reflow": {"lr": 1e-3}, "consistency": {"lr": 1e-3}}


def _train_config(s: Settings, name: str, seed: int, steps: int | None = None):
    from genmat.train import TrainConfig

    n = steps or s.train_steps
    return TrainConfig(steps=n, batch_size=s.batch_size, warmup_steps=max(1, min(100, n // 10)), seed=seed,
                       log_every=max(1, min(25, n)), checkpoint_every=max(1, min(250, n)), device="cpu",
                       **TRAIN_OVERRIDES.get(name, {}))


def _cached(workdir: Path, key: str, make) -> Model:
    """Load ``key`` from the workdir when a finished run left its ``.json`` marker, else make it."""
    from genmat.generate import Generator

    ckpt, meta = workdir / f"{key}.ckpt", workdir / f"{key}.json"
    if meta.exists() and ckpt.exists():
        info = json.loads(meta.read_text())
        extra = info.get("extra") if isinstance(info.get("extra"), dict) else {}
        return Model(info["name"], Generator.from_checkpoint(ckpt, device="cpu"), info["seed"], info["train_seconds"],
                     info["final_loss"], extra)
    t0 = time.perf_counter()
    model = make(ckpt)
    model.train_seconds = time.perf_counter() - t0
    meta.write_text(json.dumps({"name": model.name, "seed": model.seed, "train_seconds": model.train_seconds,
                                "final_loss": model.final_loss, "extra": model.extra}, default=_jsonable))
    return model


def train_models(s: Settings, data: dict, workdir: Path) -> dict[tuple[str, int], Model]:
    from genmat.generate import Generator

    mod, configs = spinodal(), _configs()
    models: dict[tuple[str, int], Model] = {}
    replicated = {name for name, _, _ in FAMILIES.values()}  # only the families get stability seeds
    jobs = [(name, seed) for seed in s.seeds for name in configs if seed == s.seeds[0] or name in replicated]
    for name, seed in tqdm(jobs, desc="training families", unit="model"):
        def make(ckpt, name=name, seed=seed):
            torch.manual_seed(seed)  # the networks' initialisation
            g = Generator(configs[name], mod.schema, mod.sample_shape, device="cpu")
            res = g.fit(data["train"], _train_config(s, name, seed), checkpoint_path=ckpt, progress=False)
            return Model(name, g, seed, 0.0, res.losses[-1][1] if res.losses else None,
                         {"losses": res.losses, **g.diagnostics})
        models[(name, seed)] = _cached(workdir, f"{name}_s{seed}", make)

    teacher = models[("flow_matching", s.seeds[0])].generator

    def reflow(ckpt):
        from genmat.generate import Generator as G

        student = G.from_checkpoint(workdir / f"flow_matching_s{s.seeds[0]}.ckpt", device="cpu")
        res = student.reflow(data["train"], _train_config(s, "reflow", 0, s.student_steps), n_pairs=s.reflow_pairs,
                             steps=50, checkpoint_path=ckpt, progress=False)
        return Model("reflow", student, 0, 0.0, res.losses[-1][1] if res.losses else None, {"losses": res.losses})

    def distill(ckpt):
        student, res = teacher.distill(data["train"], _train_config(s, "consistency", 0, s.student_steps),
                                       checkpoint_path=ckpt, progress=False)
        return Model("consistency", student, 0, 0.0, res.losses[-1][1] if res.losses else None, {"losses": res.losses})

    log.info("students of the flow-matching teacher: reflow and consistency distillation")
    models[("reflow", s.seeds[0])] = _cached(workdir, "reflow", reflow)
    models[("consistency", s.seeds[0])] = _cached(workdir, "consistency", distill)
    return models


# -------------------------------------------------------------------- evaluation
def nearest_steps(model: str, sampler: str, steps: int, s: Settings) -> int:
    """The swept step count closest (in log) to ``steps`` — the quick run sweeps fewer (a
    sampler with none of its counts in ``s.steps`` falls back to its fewest)."""
    swept = [st for st in SWEEP[model][sampler] if st in s.steps] or [min(SWEEP[model][sampler])]
    return min(swept, key=lambda st: abs(np.log(st) - np.log(steps)))


def _named(spec: tuple[str, str, int], s: Settings) -> tuple[str, str, int]:
    model, sampler, steps = spec
    return model, sampler, nearest_steps(model, sampler, steps, s)


def network_evals(model: str, sampler: str, steps: int) -> int:
    """Network passes per sample (classifier-free guidance w = 1: one branch)."""
    if model in ("vae", "normalizing_flow", "gan"):
        return 1
    return network_evaluations(sampler, steps) + (1 if model == "latent_diffusion" else 0)  # + the VAE decoder


def _sampler(g, sampler: str, steps: int):
    from genmat.generate import SamplerConfig

    if sampler in ("decode", "inverse", "generate"):
        return g.config.sampler
    return SamplerConfig(steps=steps, method=sampler, guidance=1.0)


def evaluate(m: Model, sampler: str, steps: int, data: dict, s: Settings) -> dict:
    from genmat.validate import novelty_check
    from genmat.validate.micrograph import implied_volume_fraction, physics_checks

    mod = spinodal()
    g, cfg = m.generator, _sampler(m.generator, sampler, steps)
    k = s.n_candidates
    targets = data["targets"].loc[data["targets"].index.repeat(k)].reset_index(drop=True)
    processing = data["processing"].loc[data["processing"].index.repeat(k)].reset_index(drop=True)
    t0 = time.perf_counter()
    x = g.sample_conditions(data["targets"], n_per_condition=k, sampler=cfg, seed=0, batch_size=s.batch)
    seconds = time.perf_counter() - t0
    phys = mod.physics_checks(x, targets)
    sim = mod.simulator_checks(x, targets)
    nov = novelty_check(x, data["train"][0], mod.novelty)
    hit = phys["physics_pass"].to_numpy() & sim["sim_pass"].to_numpy() & nov["novel_pass"].to_numpy()

    xq = g.sample_conditions(data["processing"], n_per_condition=k, sampler=cfg, seed=1, batch_size=s.batch)
    q = physics_checks(xq, expected_volume_fraction=implied_volume_fraction(processing, mod.config.material),
                       reference_s2=data["reference_s2"].repeat_interleave(k, dim=0), checks=mod.config.checks)
    return {
        "model": m.name, "sampler": sampler, "steps": steps, "network_evals": network_evals(m.name, sampler, steps),
        "seconds_per_sample": seconds / len(x),
        "s2_error": float(np.nanmean(q["s2_error"])), "vf_abs_error": float(np.nanmean(np.abs(q["vf_error"]))),
        "physics_pass_rate": float(q["physics_pass"].mean()),
        "hit_rate": float(hit.mean()), "design_physics_pass_rate": float(phys["physics_pass"].mean()),
        "E_mape": float(np.nanmean(np.abs(sim["E_rel_err"]))),
        "density_mape": float(np.nanmean(np.abs(sim["density_rel_err"]))),
        "novelty_mean": float(nov["novelty"].mean()), "copy_rate": float(1 - nov["novel_pass"].mean()),
    }


def _features(frame: pd.DataFrame) -> np.ndarray:
    return frame[["volume_fraction", "length_px", "E_GPa"]].to_numpy(dtype=float)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) on standardised features: precision
    = share of generated points inside some real point's k-NN ball, recall = share of real
    points inside some generated point's ball (recall low = modes missed)."""
    mu, sd = real.mean(0), real.std(0) + 1e-12
    real, fake = (real - mu) / sd, (fake - mu) / sd

    def radii(a: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(d, axis=1)[:, min(k, len(a) - 1)]

    d = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (F, R)
    precision = float((d <= radii(real)[None]).any(axis=1).mean())
    recall = float((d.T <= radii(fake)[None]).any(axis=1).mean())
    return precision, recall


def family_row(label: str, runs: dict[int, Model], rows: list[dict], data: dict, s: Settings) -> dict:
    """One trade-off row: the default sampler's numbers for the first seed, the spread over
    seeds (stability), likelihood and mode coverage over the processing box."""
    mod = spinodal()
    name, sampler, steps = _named(FAMILIES[label], s)
    by_seed = {seed: find_row(rows, name, sampler, steps, seed) for seed in runs}
    first = by_seed[s.seeds[0]]
    hits = [r["hit_rate"] for r in by_seed.values()]
    s2s = [r["s2_error"] for r in by_seed.values()]
    g = runs[s.seeds[0]].generator
    real = data["coverage_real"]
    fake = g.sample_conditions(real[list(PROCESSING)], sampler=_sampler(g, sampler, steps), seed=5, batch_size=s.batch)
    precision, recall = precision_recall(_features(real), _features(mod.measure(fake)))
    nll = None
    if name in ("normalizing_flow", "vae"):
        nll = heldout_nll(g, data)
    return {
        "family": label, "model": name, "sampler": sampler, "steps": steps,
        "network_evals": first["network_evals"], "seconds_per_sample": first["seconds_per_sample"],
        "s2_error": first["s2_error"], "vf_abs_error": first["vf_abs_error"], "hit_rate": first["hit_rate"],
        "hit_rate_seeds": hits, "hit_rate_spread": max(hits) - min(hits),
        "s2_error_spread": max(s2s) - min(s2s), "train_seconds": runs[s.seeds[0]].train_seconds,
        "exact_likelihood": name == "normalizing_flow", "heldout_nll_nats_per_value": nll,
        "likelihood_kind": {"normalizing_flow": "exact", "vae": "ELBO bound"}.get(name, "none"),
        "precision": precision, "recall": recall,
    }


@torch.no_grad()
def heldout_nll(g, data: dict) -> float:
    """Held-out −log p(x | c) per value: exact for the flow, −ELBO (an upper bound) for the VAE."""
    from genmat.methods.flow import nll_per_value
    from genmat.vae import ELBOLoss

    mod = spinodal()
    x, rows = mod.simulate(data["processing"], seed=4242)
    values, mask = g.schema.encode(g.schema.validate_frame(rows[[f.name for f in g.schema.fields]]))
    if g.config.method == "normalizing_flow":
        return float(nll_per_value(g.model, x, values, mask).mean())
    settings = g.config.vae.replace(beta=1.0, kl_warmup_steps=0, free_bits=0.0)
    loss = ELBOLoss(settings, cond_dropout=0.0)  # per value, without the Gaussian's normaliser:
    normaliser = 0.5 * float(np.log(2 * np.pi * settings.recon_sigma ** 2))
    return float(loss(g.model, [x, values, mask], torch.Generator().manual_seed(0))) + normaliser


def run_sweep(models: dict[tuple[str, int], Model], data: dict, s: Settings) -> list[dict]:
    defaults = {_named(spec, s) for spec in FAMILIES.values()}
    jobs = []
    for (name, seed), m in models.items():
        for sampler, steps in SWEEP[name].items():
            for st in steps:
                if (st in s.steps or (name, sampler, st) in defaults) and (
                        seed == s.seeds[0] or (name, sampler, st) in defaults):
                    jobs.append((m, sampler, st))
    rows = []
    for m, sampler, st in tqdm(jobs, desc="sampler sweep", unit="row"):
        row = evaluate(m, sampler, st, data, s)
        rows.append({**row, "seed": m.seed})
        log.info("%-16s %-11s %3d steps  s2 %.3f  hit %.2f  %.4f s/sample", m.name, sampler, st, row["s2_error"],
                 row["hit_rate"], row["seconds_per_sample"])
    return rows


def acceptance(rows: list[dict], s: Settings) -> dict:
    main = [r for r in rows if r["seed"] == s.seeds[0]]
    ref, teacher = (find_row(main, *_named(spec, s), s.seeds[0]) for spec in (REFERENCE, TEACHER))
    out: dict = {"reference": ref, "teacher": teacher}
    if ref is not None:
        fast = sorted((r for r in main if r["network_evals"] <= 20), key=lambda r: r["s2_error"])
        best = fast[0] if fast else None
        out["few_nfe"] = best
        out["few_nfe_within_10pct"] = bool(best and best["s2_error"] <= 1.1 * ref["s2_error"])
        own = [r for r in fast if r["model"] == ref["model"]]  # the same DDPM network, a faster sampler
        out["few_nfe_same_model"] = own[0] if own else None
    if teacher is not None:
        students = sorted((r for r in main if r["model"] in ("reflow", "consistency") and r["steps"] <= 4),
                          key=lambda r: -r["hit_rate"])
        best = students[0] if students else None
        out["student"] = best
        out["student_ratio"] = best["hit_rate"] / teacher["hit_rate"] if best and teacher["hit_rate"] > 0 else None
        out["student_at_least_80pct"] = bool(out["student_ratio"] is not None and out["student_ratio"] >= 0.8)
    return out


# ------------------------------------------------------------------------ report
def samples_picture(models: dict[tuple[str, int], Model], data: dict, s: Settings, path: Path) -> Path:
    """One row per model (its default sampler) for the same six held-out targets."""
    import matplotlib.pyplot as plt

    defaults = {**{v[0]: v for v in FAMILIES.values()}, "reflow": ("reflow", "euler", 2),
                "consistency": ("consistency", "consistency", 2), "latent_diffusion": ("latent_diffusion", "heun", 10)}
    defaults = {k: _named(v, s) for k, v in defaults.items()}
    targets = data["targets"].iloc[np.linspace(0, len(data["targets"]) - 1, 6).round().astype(int)]
    names = [n for n in ("flow_matching", "ddpm", "reflow", "consistency", "latent_diffusion", "vae",
                         "normalizing_flow", "gan") if (n, s.seeds[0]) in models]
    fig, axes = plt.subplots(len(names), len(targets), figsize=(1.5 * len(targets), 1.55 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        g = models[(name, s.seeds[0])].generator
        _, sampler, steps = defaults[name]
        x = g.sample_conditions(targets, sampler=_sampler(g, sampler, steps), seed=3)
        for j, ax in enumerate(axes[i]):
            ax.imshow(x[j, 0].numpy(), cmap="gray", vmin=-1.2, vmax=1.2)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                t = targets.iloc[j]
                ax.set_title(f"E {t['E_GPa']:.0f} GPa\nρ {t['density_g_cm3']:.2f}", fontsize=7)
        axes[i, 0].set_ylabel(f"{name}\n{sampler} {steps}", fontsize=7)
    fig.suptitle("the same held-out targets, one row per method (default sampler)", fontsize=9)
    fig.tight_layout()
    return report.save(fig, path)


def write_markdown(res: dict, out: Path) -> Path:
    main = [r for r in res["rows"] if r["seed"] == res["settings"]["seeds"][0]]
    acc = res["acceptance"]
    s = res["settings"]
    lines = [
        "# genmat — generative methods measured against each other",
        "",
        f"{res['machine']['timestamp_utc']} · {res['machine']['platform']} · {res['machine']['cpu_count']} cores · "
        f"torch {res['machine']['torch']} · commit {res['machine'].get('git_commit')} · device cpu"
        + (" · **quick run (tiny sizes: numbers mean nothing)**" if s["quick"] else ""),
        "",
        f"Spinodal micrographs 32 × 32. Every family trained on the same {s['n_train']} simulations for "
        f"{s['train_steps']} steps of batch {s['batch_size']} (students: {s['student_steps']} more steps on the "
        f"flow-matching teacher). {s['n_targets']} held-out simulations give the targets; {s['n_candidates']} "
        "samples per target in each pass. **Quality pass**: conditioned on the held-out processing (x_B, T, t); S2 "
        "error = ‖S2 − S2_ref‖/‖S2_ref‖ against fresh simulations of that condition, vf error = |φ − φ_expected|. "
        "**Design pass**: conditioned on the held-out (E, density); hit = physics checks pass, simulated E within "
        "5 % and density within 2 %, and not a copy of a training sample. Classifier-free guidance w = 1. "
        "Network evaluations per sample: Heun 2·steps − 1, other solvers = steps, latent diffusion + 1 decoder pass.",
        "",
        "## Methods × samplers × steps",
        "",
        report.table(main, ["model", "sampler", "steps", "network_evals", "seconds_per_sample", "s2_error",
                            "vf_abs_error", "physics_pass_rate", "hit_rate", "E_mape", "density_mape", "novelty_mean",
                            "copy_rate"],
                     ["model", "sampler", "steps", "NFE", "s / sample", "S2 error", "vf error", "physics pass",
                      "hit rate", "E MAPE", "ρ MAPE", "novelty", "copies"]),
        "",
        "![methods vs NFE](methods_vs_nfe.png)",
        "",
        "![samples](methods_samples.png)",
        "",
        "## Trade-offs, measured",
        "",
        "Speed: network evaluations and seconds per sample at the family's default sampler. Quality: S2 and vf "
        "error, hit rate. Stability: the spread (max − min) of the hit rate and S2 error over training seeds "
        f"{tuple(s['seeds'])}. Likelihood: held-out −log p per value in nats (exact for the flow, the −ELBO bound for "
        "the VAE; the diffusion models' ODE likelihood is not computed). Mode coverage: precision and recall "
        f"(k = 3 nearest neighbours, Kynkäänniemi et al. 2019) of (volume fraction, domain length, E): "
        f"{s['n_coverage']} fresh simulations at random processing conditions over the whole box against one sample "
        "per condition from the model — precision: generated samples look like some real ones; recall: the real ones "
        "are covered (low recall = modes missed).",
        "",
        report.table(res["families"], ["family", "sampler", "network_evals", "seconds_per_sample", "s2_error",
                                       "vf_abs_error", "hit_rate", "hit_rate_spread", "s2_error_spread",
                                       "train_seconds", "likelihood_kind", "heldout_nll_nats_per_value",
                                       "precision", "recall"],
                     ["family", "sampler", "NFE", "s / sample", "S2 error", "vf error", "hit rate", "hit-rate spread",
                      "S2 spread", "train s", "likelihood", "NLL / value", "precision", "recall"]),
        "",
        "## Acceptance (issue 4)",
        "",
    ]
    if acc.get("reference") and acc.get("few_nfe"):
        ref, few = acc["reference"], acc.get("few_nfe")
        lines.append(f"- ≤ 20 network evaluations within 10 % of the 250-step DDPM's S2 error "
                     f"({ref['s2_error']:.4f}): best is {few['model']} {few['sampler']} {few['steps']} steps "
                     f"({few['network_evals']} NFE) at {few['s2_error']:.4f} "
                     f"({few['s2_error'] / ref['s2_error'] - 1:+.1%}) → **{'met' if acc['few_nfe_within_10pct'] else 'not met'}**")
        own = acc.get("few_nfe_same_model")
        if own:
            lines.append(f"  - the same DDPM network with its best ≤ 20-NFE sampler: {own['sampler']} {own['steps']} steps "
                         f"at {own['s2_error']:.4f} ({own['s2_error'] / ref['s2_error'] - 1:+.1%})")
    if acc.get("teacher") and acc.get("student"):
        st, te = acc.get("student"), acc["teacher"]
        lines.append(f"- a 1–4-step student with ≥ 80 % of its teacher's hit rate (flow matching, Heun 50 steps: "
                     f"{te['hit_rate']:.1%}): best is {st['model']} {st['sampler']} {st['steps']} steps at "
                     f"{st['hit_rate']:.1%} ({report.fmt(acc['student_ratio'])} × the teacher's) → "
                     f"**{'met' if acc['student_at_least_80pct'] else 'not met'}**")
    lines += ["", f"Total {res['total_seconds'] / 60:.1f} min (data {res['data_seconds']:.0f} s).", ""]
    path = out / "methods.md"
    path.write_text("\n".join(lines))
    return path


# -------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.methods", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder (default: bench_results)")
    p.add_argument("--workdir", type=Path, default=Path("runs/methods"),
                   help="data and trained models, reused by later runs (default: runs/methods)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke version with tiny sizes")
    p.add_argument("--train-steps", type=int, default=None, help="optimiser steps per family (default 1200)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    if args.train_steps is not None and args.train_steps < 1:
        p.error(f"--train-steps={args.train_steps}: allowed range is >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging(args.verbose)
    s = Settings.quick_settings() if args.quick else Settings()
    if args.train_steps:
        s = replace(s, train_steps=args.train_steps)
    out, workdir = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log.info("methods benchmark%s: data and models in %s", " [quick]" if s.quick else "", workdir)
    data = build_data(s, workdir)
    models = train_models(s, data, workdir)
    rows = run_sweep(models, data, s)
    families = [family_row(label, {seed: models[(name, seed)] for seed in s.seeds}, rows, data, s)
                for label, (name, _, _) in FAMILIES.items()]
    res = {"machine": machine_info(torch.device("cpu")), "settings": asdict(s), "data_seconds": data["seconds"],
           "rows": rows, "families": families, "acceptance": acceptance(rows, s),
           "train": {f"{n}_s{sd}": {"seconds": m.train_seconds, "final_loss": m.final_loss}
                     for (n, sd), m in models.items()}}
    plots = [report.methods_plot([r for r in rows if r["seed"] == s.seeds[0]], out / "methods_vs_nfe.png",
                                 reference=res["acceptance"].get("reference"), teacher=res["acceptance"].get("teacher")),
             samples_picture(models, data, s, out / "methods_samples.png")]
    res["plots"] = [p.name for p in plots]
    res["total_seconds"] = time.perf_counter() - t0
    write_json(res, out, "methods.json")
    md = write_markdown(res, out)
    log.info("wrote %s, %s and %d plots in %.0f s", out / "methods.json", md, len(plots), res["total_seconds"])
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
