"""The ``genmat`` command.

Every subcommand has ``--help``. Bad input (a field out of range, a missing file, a
corrupt dataset) ends with one clear line on stderr and exit code 2, and nothing
half-written. ``genmat loop`` and ``genmat serve`` run the Prefect flows in
``pipelines/`` — this module is the application edge, the one place in genmat that
may import ``pipelines``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from genmat.errors import GenmatError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="genmat: materials inverse design — simulate, train, reflow, distill, design, recipes, tasks, validate, loop, serve.")

log = logging.getLogger("genmat")


class UsageError(InputError):
    """Bad command-line input."""


def _setup(verbose: bool) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    # No telemetry from offline machines (it also races the temporary server's SQLite store).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow", "httpx", "httpcore", "urllib3", "websockets", "asyncio", "aiosqlite", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parse_pairs(pairs: List[str], option: str, form: str, example: str, valid, invalid: str) -> dict[str, float]:
    """``["name=1.5", …]`` -> ``{"name": 1.5}``; a pair without ``=``, a value that is not a
    number or one that fails ``valid`` is a usage error naming the pair (``invalid`` says why)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} {pair!r}: expected {form}, e.g. {option} {example}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"{option} {pair!r}: value {value!r} is not a number") from None
        if not valid(out[name.strip()]):
            raise UsageError(f"{option} {pair!r}: {invalid.format(value=repr(value))}")
    return out


def _parse_fields(pairs: List[str]) -> dict[str, float]:
    return _parse_pairs(pairs, "--target", "FIELD=VALUE", "E_GPa=180", math.isfinite,
                        "value {value} is not a finite number")


# genmat.modalities.DEFAULT_MODALITY (a test keeps them equal); not imported here, so that
# the CLI starts without loading every simulator
DEFAULT_MODALITY = "spinodal"
MODALITY_HELP = ("modality: spinodal (two-phase micrographs), grains (grain maps from cooling rate), xrd or "
                 "raman (spectra), eels (core-loss EELS with its low loss), imported (a dataset from `genmat import`), or an installed plug-in (genmat "
                 "modalities lists them)")


def _unreachable(url: str, timeout: float = 3.0) -> str | None:
    """None when an HTTP server answers at ``url`` (any status), else why not."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=timeout).close()
        return None
    except urllib.error.HTTPError:
        return None  # it answered
    except Exception as exc:  # noqa: BLE001 — refused, timed out, no such host: all mean "not there"
        return str(getattr(exc, "reason", exc))


def _check_services(*, tracking: bool, prefect: bool) -> None:
    """One probe of each service a command will use, before any work: a server that is
    down is one line and exit 2 within seconds, not minutes of retries and a traceback."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if tracking and uri.startswith(("http://", "https://")):
        why = _unreachable(uri.rstrip("/") + "/health")
        if why:
            raise UsageError(f"MLflow tracking server {uri} is unreachable ({why}); start it, point "
                             "MLFLOW_TRACKING_URI elsewhere, or run with --no-tracking")
    api = os.environ.get("PREFECT_API_URL", "")
    if prefect and api:
        why = _unreachable(api.rstrip("/") + "/health")
        if why:
            raise UsageError(f"Prefect API {api} is unreachable ({why}); start it (prefect server start), unset "
                             "PREFECT_API_URL for a temporary local server, or run with --no-prefect")


def _dataset_path(dataset: Optional[Path], modality: str) -> Path:
    return dataset if dataset is not None else Path("runs") / modality / "dataset"


def _modality_for(modality: Optional[str], dataset: Optional[Path]) -> tuple[str, dict]:
    """The modality (name, options) of a command: ``--modality`` if given, else the one the
    ``--dataset`` was made with (its manifest), else the default. An imported dataset brings
    its own options (the dataset's path)."""
    from genmat.modalities import modality_of_dataset

    if dataset is not None and (Path(dataset) / "manifest.json").exists():
        name, options = modality_of_dataset(dataset)
        if modality is None or modality == name:
            return name, options
    return modality or DEFAULT_MODALITY, {}


def _existing_inputs(checkpoint: Path, dataset: Optional[Path], modality: str) -> Path:
    """The dataset path (default runs/MODALITY/dataset), after checking both inputs exist."""
    dataset = _dataset_path(dataset, modality)
    for path, what in ((checkpoint, "--checkpoint"), (dataset, "--dataset")):
        if not Path(path).exists():
            raise UsageError(f"{what} {path} does not exist")
    return dataset


def _load_config(path: Optional[Path], **overrides):
    from genmat.loop import LoopConfig

    data = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"--config {path} is not a JSON file of LoopConfig fields ({err})") from None
        if not isinstance(data, dict):
            raise UsageError(f"--config {path} holds a JSON {type(data).__name__}; expected an object of "
                             "LoopConfig fields, e.g. {\"initial_samples\": 256}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return LoopConfig.model_validate(data)


@app.command()
def simulate(
    dataset: Optional[Path] = typer.Option(None, help="dataset directory (created if missing; default runs/MODALITY/dataset)"),
    n: int = typer.Option(512, min=1, help="samples to simulate (drawn from the processing prior)"),
    seed: int = typer.Option(0, help="random seed"),
    processing: Optional[Path] = typer.Option(None, help="parquet/csv of processing conditions instead of prior draws"),
    modality: str = typer.Option(DEFAULT_MODALITY, help=MODALITY_HELP),
    chunk: int = typer.Option(256, min=1, help="samples per commit: an interrupted run keeps every finished chunk "
                              "and, run again, simulates only the rest"),
    workers: int = typer.Option(1, min=1, help="oracle worker processes: > 1 fans the chunks out on a local Dask "
                                "cluster (the same samples as one worker, committed in order)"),
    dask_address: Optional[str] = typer.Option(None, help="an existing Dask scheduler (tcp://HOST:PORT) to fan the "
                                               "chunks out to instead"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Run the physics oracle and append the samples to a dataset (committed in chunks; rerun to resume)."""
    _setup(verbose)
    from genmat.loop.steps import SimulateParams, simulate_step

    dataset = _dataset_path(dataset, modality)
    out = simulate_step(SimulateParams(modality=modality, dataset=dataset, n=n, seed=seed, processing_file=processing,
                                       source_run="cli", chunk=chunk, workers=workers, dask_address=dask_address))
    typer.echo(f"{out['added']} samples added; {dataset} now holds {out['total']}")


def _weights(items: list[str], option: str) -> dict[str, float]:
    """``["name=1.5", …]`` -> ``{"name": 1.5}`` with every weight in [0, ∞)."""
    return _parse_pairs(items, option, "NAME=WEIGHT", "fraction=10", lambda w: math.isfinite(w) and w >= 0,
                        "the weight is outside the allowed range [0, ∞)")


@app.command()
def train(
    ctx: typer.Context,
    dataset: Optional[Path] = typer.Option(None, help="dataset directory (default runs/MODALITY/dataset)"),
    checkpoint: Optional[Path] = typer.Option(None, help="checkpoint to write, resumed if present (default runs/MODALITY/model.ckpt)"),
    steps: int = typer.Option(1500, min=1, help="optimiser steps"),  # TrainConfig's defaults (tested)
    batch_size: int = typer.Option(64, min=1),
    lr: float = typer.Option(2e-3, min=0.0),
    warm_start: Optional[Path] = typer.Option(None, help="start from this checkpoint's weights"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    modality: Optional[str] = typer.Option(None, help=MODALITY_HELP + "; default: the --dataset's, else spinodal"),
    method: str = typer.Option("diffusion", help="generator family: diffusion (rectified flow / VP, U-Net), vae, "
                               "latent_diffusion, normalizing_flow or gan (docs/methods.md)"),
    path: str = typer.Option("rectified_flow", help="diffusion noise path: rectified_flow, vp_linear or vp_cosine"),
    prediction: str = typer.Option("velocity", help="what the denoiser predicts: velocity, eps, x0 or v"),
    sampler: str = typer.Option("heun", help="the checkpoint's default sampler: euler, heun, ddim, ddpm, dpmpp_2m"),
    sampler_steps: int = typer.Option(20, min=1, help="the checkpoint's default sampler steps"),
    regressor_out: Optional[Path] = typer.Option(None, help="also train a noise-aware property regressor "
                                                  "(classifier guidance, screening) and save it here"),
    penalty: list[str] = typer.Option([], "--penalty", help="physics-penalised training (diffusion): TERM=WEIGHT, "
                                      "repeatable; spinodal terms double_well, fraction, s2 (docs/physics_guidance.md)"),
    nproc_per_node: int = typer.Option(1, min=1, help="data-parallel training processes on this machine, started "
                                       "with torchrun (gloo on CPU, NCCL on GPUs: one per GPU); --batch-size is "
                                       "the global batch, split evenly (docs/operations.md)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Train the conditional generator (default: rectified flow on a U-Net) on a dataset."""
    _setup(verbose)
    from genmat import parallel

    if nproc_per_node > 1 and not parallel.launched():
        import torch

        on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if on_cuda and (":" in device or nproc_per_node > torch.cuda.device_count()):
            raise UsageError(f"--nproc-per-node = {nproc_per_node} on CUDA needs one GPU per process and a bare "
                             f"--device cuda (found {torch.cuda.device_count()} GPU(s), --device {device})")
        if batch_size % nproc_per_node:
            raise UsageError(f"--batch-size = {batch_size} is not divisible by --nproc-per-node = {nproc_per_node} "
                             f"(allowed: a multiple of {nproc_per_node})")
        raise typer.Exit(_torchrun(ctx, nproc_per_node))

    from genmat.generate import SamplerConfig
    from genmat.loop.closed_loop import modality_generator
    from genmat.loop.steps import TrainParams, train_step
    from genmat.modalities import get_modality
    from genmat.train import TrainConfig

    modality, options = _modality_for(modality, dataset)
    generator = modality_generator(get_modality(modality, **options)).replace(  # the modality's network
        method=method, path=path, prediction=prediction, sampler=SamplerConfig(steps=sampler_steps, method=sampler),
        penalties=_weights(penalty, "--penalty"))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device)
    dataset = _dataset_path(dataset, modality)
    checkpoint = checkpoint or Path("runs") / modality / "model.ckpt"
    if not dataset.exists():
        raise UsageError(f"--dataset {dataset} does not exist; run `genmat simulate --dataset {dataset}` first")
    out = train_step(TrainParams(modality=modality, modality_options=options, dataset=dataset, checkpoint=checkpoint,
                                 warm_start=warm_start, generator=generator, train=cfg), progress=parallel.is_main())
    if not parallel.is_main():  # under torchrun the other ranks have done their part of every step
        if regressor_out is not None:
            _train_regressor(modality, options, dataset, generator, cfg, regressor_out)
        return
    typer.echo(f"trained to step {out['step']} (loss {out['final_loss']:.4f}) on {out['n_train']} samples: {checkpoint}")
    if regressor_out is not None:
        res = _train_regressor(modality, options, dataset, generator, cfg, regressor_out)
        typer.echo(f"property regressor trained to step {res.step} (NLL {res.losses[-1][1]:.3f}): {regressor_out}")
    if method in ("vae", "latent_diffusion"):
        typer.echo(f"VAE posterior: {int(out['vae_active_units'])} active latent dimensions "
                   f"({out['vae_active_fraction']:.0%}), KL {out['vae_kl_total_nats']:.1f} nats"
                   + (" — COLLAPSED (lower beta, longer warm-up or free bits)" if out["vae_collapsed"] else ""))


def _train_regressor(modality: str, options: dict, dataset: Path, generator, cfg, out: Path):
    from genmat.data import DatasetStore, SampleDataset
    from genmat.modalities import get_modality
    from genmat.regressor import PropertyRegressor

    mod = get_modality(modality, **options)
    data = SampleDataset(DatasetStore.open(dataset), mod.schema).as_tensors()
    reg = PropertyRegressor(mod.schema, mod.sample_shape, generator.unet, generator.path)
    return reg.fit(data, cfg, checkpoint_path=out)


def _torchrun(ctx: typer.Context, nproc: int) -> int:
    """Run this same command under torchrun with ``nproc`` processes on this machine; its exit code."""
    import subprocess

    argv = [ctx.info_name or "train"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "nproc_per_node" or value is None or not param.opts:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if param.is_flag:
                argv += [param.opts[0]] if v else []
            else:
                argv += [param.opts[0], str(v)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "genmat", *argv]
    log.info("starting %d training processes: %s", nproc, " ".join(cmd))
    return subprocess.call(cmd)


@app.command("import")
def import_(
    folder: Path = typer.Argument(..., help="folder of micrographs (TIFF/PNG/JPEG/BMP) or spectra (two-column text)"),
    conditions: Path = typer.Option(..., help="CSV (or Parquet) with one row per file: a file column, then one "
                                    "numeric column per condition (empty cell = unknown)"),
    dataset: Path = typer.Option(..., help="the dataset folder to create (must not exist or be empty)"),
    kind: str = typer.Option("grey", help="grey (grey levels: 2 I/I_max − 1), phase (two-phase maps: Otsu "
                             "threshold → ±1) or spectrum (x = 2 √(y/y_max) − 1 on one common axis)"),
    file_column: str = typer.Option("file", help="the conditions column that names each row's file"),
    processing: list[str] = typer.Option([], "--processing", help="a column that is processing, not a property "
                                         "(repeatable); the others are properties a design may target"),
    tolerance: float = typer.Option(0.05, min=1e-6, max=1.0, help="a design hits when the surrogate puts each "
                                    "targeted property within this fraction of the field's imported range"),
    surrogate_steps: int = typer.Option(1000, min=1, help="training steps of the property surrogate (first design)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Import the lab's own micrographs or spectra with their conditions into a dataset, to
    train and design on (docs/lab_data.md). Everything is checked before anything is written."""
    _setup(verbose)
    from genmat.modalities import import_folder

    store = import_folder(folder, conditions, dataset, kind=kind, file_column=file_column, processing=processing,
                          tolerance=tolerance, surrogate_steps=surrogate_steps)
    fields = ", ".join(f"{f.name} [{f.low:g}, {f.high:g}] ({f.kind})" for f in store.schema.fields)
    typer.echo(f"imported {len(store)} samples of shape {tuple(store.sample_shape)} into {dataset}\n"
               f"    conditions: {fields}\n"
               f"next: genmat train --dataset {dataset} --checkpoint {dataset.parent / 'model.ckpt'}; then genmat "
               f"design --checkpoint {dataset.parent / 'model.ckpt'} --dataset {dataset} -t FIELD=VALUE")


@app.command()
def reflow(
    checkpoint: Path = typer.Option(..., help="a trained rectified-flow generator checkpoint"),
    out: Path = typer.Option(..., help="the reflowed checkpoint to write"),
    dataset: Optional[Path] = typer.Option(None, help="the training dataset (its conditions; default runs/MODALITY/dataset)"),
    pairs: int = typer.Option(2048, min=1, help="(noise, sample) pairs to generate"),
    ode_steps: int = typer.Option(50, min=1, help="Heun steps per generated pair"),
    steps: int = typer.Option(1000, min=1, help="optimiser steps on the pairs"),
    lr: float = typer.Option(1e-3, min=0.0),
    seed: int = typer.Option(0),
    modality: str = typer.Option(DEFAULT_MODALITY, help=MODALITY_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Reflow a rectified flow: regenerate (noise, sample) pairs with it and retrain on them,
    so that one to a few sampler steps suffice."""
    _setup(verbose)
    from genmat.loop.steps import ReflowParams, reflow_step
    from genmat.train import TrainConfig

    dataset = _existing_inputs(checkpoint, dataset, modality)
    res = reflow_step(ReflowParams(modality=modality, dataset=dataset, checkpoint=checkpoint, out=out, pairs=pairs,
                                   ode_steps=ode_steps, train=TrainConfig(steps=steps, lr=lr, seed=seed), seed=seed))
    typer.echo(f"reflowed on {pairs} pairs, {steps} steps (loss {res['final_loss']:.4f}): {out}")


@app.command()
def distill(
    checkpoint: Path = typer.Option(..., help="a trained diffusion generator (the teacher)"),
    out: Path = typer.Option(..., help="the distilled student checkpoint to write"),
    dataset: Optional[Path] = typer.Option(None, help="the training dataset (default runs/MODALITY/dataset)"),
    steps: int = typer.Option(1000, min=1, help="optimiser steps"),
    lr: float = typer.Option(1e-3, min=0.0),
    grid: int = typer.Option(18, min=2, help="teacher ODE grid points"),
    sampler_steps: int = typer.Option(2, min=1, max=8, help="the student's default consistency steps (1–4 typical)"),
    seed: int = typer.Option(0),
    modality: str = typer.Option(DEFAULT_MODALITY, help=MODALITY_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Consistency distillation: a student that samples in 1–4 steps from a diffusion teacher."""
    _setup(verbose)
    from genmat.loop.steps import DistillParams, distill_step
    from genmat.train import TrainConfig

    dataset = _existing_inputs(checkpoint, dataset, modality)
    res = distill_step(DistillParams(modality=modality, dataset=dataset, checkpoint=checkpoint, out=out, n_grid=grid,
                                     sampler_steps=sampler_steps, train=TrainConfig(steps=steps, lr=lr, seed=seed)))
    typer.echo(f"distilled in {steps} steps (loss {res['final_loss']:.4f}): {out}; samples with "
               f"{sampler_steps} consistency steps by default")


@app.command()
def design(
    checkpoint: Path = typer.Option(..., help="trained generator checkpoint"),
    target: List[str] = typer.Option([], "--target", "-t", help="FIELD=VALUE, repeatable (e.g. -t E_GPa=180 -t density_g_cm3=2.95)"),
    targets: Optional[Path] = typer.Option(None, help="parquet/csv with one target per row (instead of --target)"),
    dataset: Optional[Path] = typer.Option(None, help="training dataset (novelty check, screening surrogate and the "
                                           "recipe head: the processing that should make each design)"),
    n: int = typer.Option(16, min=1, help="candidates per target"),  # DesignParams' defaults (tested)
    n_simulate: int = typer.Option(2, min=1, help="candidates per target sent to the simulator"),
    out: Path = typer.Option(Path("runs/design"), help="output directory for report, samples and pictures"),
    seed: int = typer.Option(0),
    steps: Optional[int] = typer.Option(None, min=1, help="sampler steps (default: the model's)"),
    guidance: Optional[float] = typer.Option(None, min=0.0, help="classifier-free guidance scale"),
    sampler: Optional[str] = typer.Option(None, help="diffusion sampler: euler, heun, ddim, ddpm, dpmpp_2m, consistency "
                                          "(default: the model's)"),
    regressor: Optional[Path] = typer.Option(None, help="noise-aware property regressor checkpoint (classifier guidance)"),
    classifier_scale: float = typer.Option(1.0, min=0.0, help="classifier-guidance scale (with --regressor)"),
    classifier_tau: float = typer.Option(0.1, min=1e-4, help="classifier-guidance width τ, normalised units"),
    ood_flow: Optional[Path] = typer.Option(None, help="normalizing-flow checkpoint: its likelihood scores candidates "
                                            "against --dataset (flow_nll, flow_pvalue in the report)"),
    physics_guidance: float = typer.Option(0.0, min=0.0, help="physics-guidance scale: steer every sampling step "
                                           "through the differentiable homogeniser toward the targets (0 = off; "
                                           "30 measured best, docs/physics_guidance.md)"),
    modality: Optional[str] = typer.Option(None, help=MODALITY_HELP + "; default: the --dataset's, else spinodal"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Generate candidates for targets, validate them and pick a design per target."""
    _setup(verbose)
    import pandas as pd

    import genmat
    from genmat import plots
    from genmat.loop.steps import read_table, save_design

    if bool(target) == bool(targets):
        raise UsageError("give either --target FIELD=VALUE (repeatable) or --targets FILE")
    frame = read_table(targets) if targets else pd.DataFrame([_parse_fields(target)])
    if not checkpoint.exists():
        raise UsageError(f"--checkpoint {checkpoint} does not exist")
    for path, what in ((regressor, "--regressor"), (ood_flow, "--ood-flow")):
        if path is not None and not path.exists():
            raise UsageError(f"{what} {path} does not exist")
    modality, options = _modality_for(modality, dataset)
    result = genmat.design(frame, checkpoint=checkpoint, n=n, n_simulate=n_simulate, dataset=dataset, seed=seed,
                           steps=steps, guidance=guidance, sampler=sampler, modality=modality,
                           modality_options=options, regressor=regressor,
                           classifier_scale=classifier_scale, classifier_tau=classifier_tau, ood_flow=ood_flow,
                           physics_guidance=physics_guidance)
    out.mkdir(parents=True, exist_ok=True)
    save_design(result, out)
    from genmat.modalities import get_modality

    mod = get_modality(modality, **options)
    plots.save(plots.target_scatter(result.designs, mod.tolerance_bands), out / "target_vs_simulated.png")
    fields = [f for f in mod.checked_fields if f"target_{f}" in result.designs]
    recipe = [f"recipe_{f}" for f in mod.schema.subset("processing")]
    cols = ["target_id", "candidate", *(c for f in fields for c in (f"target_{f}", f"sim_{f}")), "hit", "reason",
            *recipe]
    typer.echo(result.designs[[c for c in cols if c in result.designs]].to_string(index=False))
    if recipe and all(c in result.designs for c in recipe):
        typer.echo("recipe_*: the processing that should make each design (the recipe head, from --dataset); not yet "
                   "simulated — `genmat simulate --processing` checks it")
    guided = (f"; {int(result.metrics['physics_evaluations'])} physics-model evaluations (guidance and screen)"
              if result.metrics.get("physics_evaluations") else "")
    checked_by = getattr(mod, "checked_by", "simulator")
    calls = "simulator calls" if checked_by == "simulator" else f"{checked_by} checks (no oracle)"
    typer.echo(f"hit rate {result.metrics['hit_rate']:.0%} of targets, {result.metrics['candidate_hit_rate']:.0%} of "
               f"candidates; {int(result.metrics['simulator_calls'])} {calls}{guided}; "
               f"report: {out / 'report.parquet'}")


@app.command()
def tasks(verbose: bool = typer.Option(False, "--verbose", "-v")):
    """List the registered design tasks (``genmat recipes --task NAME``, benchmarks/design.py)."""
    _setup(verbose)
    from genmat.modalities import design_tasks

    for task in design_tasks().values():
        tol = ", ".join(f"{f} ±{t.value:g}{'%' if t.kind == 'rel' else ''}".replace(f"{t.value:g}%", f"{100 * t.value:g} %")
                        for f, t in task.tolerances.items())
        typer.echo(f"{task.name}  ({task.modality}, {task.n_targets} targets; {tol})\n    {task.description}")


@app.command()
def modalities(verbose: bool = typer.Option(False, "--verbose", "-v")):
    """List the modalities (built-in and installed plug-ins) with their sample shape and condition fields."""
    _setup(verbose)
    from genmat.modalities import BUILTIN, get_modality, modality_names

    for name in modality_names():
        where = "built-in" if name in BUILTIN else "plug-in"
        try:
            mod = get_modality(name)
        except GenmatError as exc:
            typer.echo(f"{name}  ({where}; cannot be used: {exc})")
            continue
        fields = ", ".join(f"{f.name} [{f.unit}]" if f.unit else f.name for f in mod.schema.fields)
        typer.echo(f"{name}  ({where}, samples {tuple(mod.sample_shape)})\n    conditions: {fields}")


@app.command()
def recipes(
    target: List[str] = typer.Option([], "--target", "-t", help="one target, repeatable per field: FIELD=VALUE, "
                                     "FIELD>=VALUE, FIELD<=VALUE or 'FIELD in [LOW, HIGH]'"),
    targets: Optional[Path] = typer.Option(None, help="parquet/csv, a target per row: a column per field with a number "
                                           "or a text such as '>=180' or 'in [90, 110]'"),
    task: Optional[str] = typer.Option(None, help="a registered design task instead of targets (genmat tasks)"),
    n_targets: Optional[int] = typer.Option(None, min=1, help="with --task: how many of its targets"),
    dataset: Optional[Path] = typer.Option(None, help="learn from this dataset (default: simulate --initial prior draws)"),
    checkpoint: Optional[Path] = typer.Option(None, help="a trained recipe generator (default: train one)"),
    initial: int = typer.Option(256, min=1, help="prior draws simulated first when there is no --dataset"),
    rounds: int = typer.Option(6, min=1, help="design rounds (each simulates one recipe per open target)"),
    proposals: int = typer.Option(64, min=1, help="recipes proposed per open target and round"),
    train_steps: int = typer.Option(1500, min=1, help="training steps of the recipe generator"),
    out: Path = typer.Option(Path("runs/recipes"), help="output directory: recipes.csv, report.md, products.png"),
    seed: int = typer.Option(0),
    compare: bool = typer.Option(True, help="also run a random library of the same oracle budget (and, for a --task, "
                                 "show per-target BO from the stored design benchmark)"),
    tracking: bool = typer.Option(True, help="log to MLflow (experiment genmat-recipes)"),
    modality: str = typer.Option(DEFAULT_MODALITY, help=MODALITY_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Recipes (processing) for point, range and one-sided targets, each verified by the process simulator."""
    _setup(verbose)
    import genmat
    from genmat.baselines import compare_at_budget
    from genmat.loop.recipes import save_recipe_report
    from genmat.loop.steps import read_table

    if sum(map(bool, (target, targets, task))) != 1:
        raise UsageError("give one of --target (repeatable), --targets FILE or --task NAME")
    for path, what in ((dataset, "--dataset"), (checkpoint, "--checkpoint")):
        if path is not None and not Path(path).exists():
            raise UsageError(f"{what} {path} does not exist")
    _check_services(tracking=tracking, prefect=False)
    given = read_table(targets) if targets else (list(target) if target else None)
    result = genmat.design_recipes(given, task=task, n_targets=n_targets, dataset=dataset, checkpoint=checkpoint,
                                   modality=modality, initial=initial, rounds=rounds, proposals=proposals,
                                   train_steps=train_steps, seed=seed)
    mod = result.modality
    comparison = None
    if compare:
        # the library gets as many simulations as genmat had rows: its own calls plus any --dataset
        comparison = compare_at_budget(mod, result.targets, len(result.table), task=task, seed=seed)
    files = save_recipe_report(result, result.targets, mod, out, comparison)
    if tracking:
        from genmat.tracking import MlflowTracker

        with MlflowTracker.start("genmat-recipes", f"recipes: {task or out.name}",
                                 params={"task": task or "", "initial": initial, "rounds": rounds,
                                         "proposals": proposals, "train_steps": train_steps, "seed": seed}) as tracker:
            tracker.set_description(f"genmat recipes; files in `{out}`")
            for step, (calls, hits) in enumerate(result.history):
                tracker.log_metrics({"targets_hit": hits, "oracle_calls": calls}, step=step)
            tracker.log_metrics({"hit_rate": float(result.recipes["hit"].mean()),
                                 **{f"oracle_calls_{k}": v for k, v in result.oracle_calls.items()}})
            for path in files.values():
                tracker.log_artifact(path, "recipes")
    hits = int(result.recipes["hit"].sum())
    calls = sum(result.oracle_calls.values())
    cols = ["target_id", "target", "hit", *mod.schema.subset("processing")]
    typer.echo(result.recipes.reindex(columns=cols).to_string(index=False, max_rows=40))
    typer.echo(f"{hits}/{len(result.recipes)} targets have a verified recipe; {calls} oracle calls "
               f"({', '.join(f'{k} {v}' for k, v in result.oracle_calls.items())})")
    for r in comparison or []:
        typer.echo(f"  instead — {r['approach']}: {r['targets_hit']}/{r['targets']} targets with "
                   f"{r['oracle_calls']} oracle calls [{r['source']}]")
    typer.echo(f"report: {files['report']}")


@app.command()
def validate(
    samples: Path = typer.Argument(..., help=".npy array of samples: (n, 1, N, N) micrographs or (n, 1, N) spectra"),
    targets: Optional[Path] = typer.Option(None, help="parquet/csv with one condition row per sample"),
    out: Optional[Path] = typer.Option(None, help="write the report here (.csv or .parquet)"),
    modality: str = typer.Option(DEFAULT_MODALITY, help=MODALITY_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Check samples (e.g. your own micrographs or spectra) with the physics and simulator validators."""
    _setup(verbose)
    import numpy as np
    import pandas as pd
    import torch

    from genmat.loop.steps import read_table
    from genmat.modalities import get_modality
    from genmat.validate import build_report

    mod = get_modality(modality)
    if not samples.exists():
        raise UsageError(f"{samples} does not exist")
    x = torch.as_tensor(np.load(samples, allow_pickle=False)).float()
    spatial = ("N",) * (len(mod.sample_shape) - 1) if mod.any_size else mod.sample_shape[1:]
    expected = (mod.sample_shape[0], *spatial)
    if x.dim() != len(mod.sample_shape) + 1 or x.shape[1] != mod.sample_shape[0] \
            or (not mod.any_size and tuple(x.shape[1:]) != mod.sample_shape):
        raise UsageError(f"{samples}: shape {tuple(x.shape)}; expected (n, {', '.join(map(str, expected))}) for {modality}")
    cond = read_table(targets) if targets else pd.DataFrame(index=range(len(x)))
    if len(cond) != len(x):
        raise UsageError(f"--targets has {len(cond)} rows but {samples} holds {len(x)} samples")
    cond = mod.schema.validate_frame(cond) if len(cond.columns) else cond
    frames = [mod.physics_checks(x, cond)]
    props = [c for c in mod.checked_fields if c in cond]
    if props:
        frames.append(mod.simulator_checks(x, cond))
    else:
        frames.append(mod.measure(x).add_prefix("sim_"))
    report = build_report(pd.DataFrame({"sample": range(len(x))}), *frames)
    if out:
        report.to_csv(out, index=False) if out.suffix == ".csv" else report.to_parquet(out)
    cols = [c for c in ("sample", "verdict", "reason") if c in report]
    typer.echo(report[cols].to_string(index=False))


@app.command()
def loop(
    config: Optional[Path] = typer.Option(None, help="JSON file with LoopConfig fields (see docs/loop.md)"),
    workdir: Optional[Path] = typer.Option(None, help="run directory (state, dataset, checkpoints, report)"),
    iterations: Optional[int] = typer.Option(None, min=1, help="maximum loop iterations"),
    seed: Optional[int] = typer.Option(None),
    modality: Optional[str] = typer.Option(None, help=MODALITY_HELP + " (default: the config's, else spinodal)"),
    task: Optional[str] = typer.Option(None, help="a registered design task of point targets (genmat tasks), e.g. "
                                       "spinodal-tight32: its targets, tolerances and modality options"),
    prefect: bool = typer.Option(True, help="run as the Prefect flow `closed_loop` (--no-prefect: plain library call)"),
    tracking: bool = typer.Option(True, help="record in MLflow (MLFLOW_TRACKING_URI, default sqlite:///mlflow.db)"),
    remote: list[str] = typer.Option([], "--remote", help="a step (simulate, train, design) to hand to its "
                                     "deployment's work pool (genmat deploy; repeatable): a worker there runs it, "
                                     "the loop waits; needs PREFECT_API_URL and a working folder both hosts see"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Run the closed loop: train → design → validate → feed back, until targets are hit.

    A killed loop resumes where it stopped when run again with the same --workdir.
    """
    _setup(verbose)
    cfg = _load_config(config, workdir=workdir, max_iterations=iterations, seed=seed, modality=modality, task=task)
    if remote:
        bad = sorted(set(remote) - {"simulate", "train", "design"})
        if bad or not prefect:
            raise UsageError(f"--remote {', '.join(bad or remote)}: " + (
                "allowed: simulate, train, design" if bad else "remote steps run through Prefect (drop --no-prefect)"))
        if not os.environ.get("PREFECT_API_URL"):
            raise UsageError("--remote needs the Prefect server the deployments are on: set PREFECT_API_URL "
                             "(genmat up; genmat deploy)")
    _check_services(tracking=tracking, prefect=prefect)
    if prefect:
        from pipelines.flows import closed_loop

        result = closed_loop(config=cfg, tracking=tracking, remote_steps=list(remote) or None)
        history = result["history"]
    else:
        from genmat.loop import ClosedLoop
        from genmat.loop.closed_loop import open_tracker

        tracker = open_tracker(cfg, enabled=tracking)
        try:
            state = ClosedLoop(cfg, tracker).run()
        except BaseException as exc:
            tracker.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        tracker.end()
        history = state.history
    for row in history:
        typer.echo(f"iteration {row['iteration']}: hit rate {row['hit_rate']:.0%} of targets "
                   f"({int(row['hits'])}/{int(row['targets'])}), {row['candidate_hit_rate']:.0%} of candidates, "
                   f"simulator calls {int(row['simulator_calls_total'])}")
    _where_to_look(cfg.workdir, tracking, cfg.modality)


def _where_to_look(workdir: Path, tracking: bool, modality: str) -> None:
    typer.echo(f"\nreport:   {workdir / 'report.md'}")
    typer.echo(f"pictures: {workdir}/hit_rate.png, {workdir}/loss_curves.png, {workdir}/iter_*/pictures/")
    if tracking:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
        typer.echo(f"MLflow:   mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
        typer.echo("          then open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning "
                   f"(experiment genmat-{modality}, model genmat-{modality}@champion)")


@app.command()
def deploy(
    pool: str = typer.Option("genmat-cpu", help="the process work pool the flows go to (created when missing)"),
    gpu_pool: Optional[str] = typer.Option(None, help="a work pool for train and design (one run at a time per "
                                           "--gpu-concurrency), e.g. genmat-gpu on the GPU host"),
    gpu_concurrency: int = typer.Option(1, min=1, help="flow runs the GPU pool runs at once"),
    cron: Optional[str] = typer.Option(None, help="a cron schedule for the closed loop (each run in a new folder)"),
    config: Optional[Path] = typer.Option(None, help="JSON file with LoopConfig fields for the closed loop"),
    workdir: Optional[Path] = typer.Option(None, help="the folder flow runs start in (default: here)"),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE set for every flow run (repeatable), e.g. "
                                  "CUDA_VISIBLE_DEVICES=0 or MLFLOW_TRACKING_URI=http://host:5000"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Register the flows (closed_loop, simulate, train, design) as Prefect deployments on work
    pools; a host runs `prefect worker start --pool POOL` to run them (docs/running.md)."""
    _setup(verbose)
    from pipelines.deploy import deploy as register

    variables = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--env {item!r} is not KEY=VALUE (e.g. CUDA_VISIBLE_DEVICES=0)")
        variables[key] = value
    loop_config = _load_config(config).model_dump(mode="json") if config else None
    _check_services(tracking=False, prefect=True)
    names = register(pool, gpu_pool=gpu_pool, gpu_concurrency=gpu_concurrency, cron=cron, loop_config=loop_config,
                     working_dir=workdir, env=variables)
    for flow_name, deployment in names.items():
        typer.echo(f"{deployment}  (pool {gpu_pool if gpu_pool and flow_name in ('train', 'design') else pool})")
    typer.echo(f"run them with: prefect worker start --pool {pool}" + (f"  (and --pool {gpu_pool} on the GPU host)"
                                                                        if gpu_pool else ""))


@app.command()
def up(
    folder: Path = typer.Option(Path("runs/services"), help="where the servers keep their databases, artifacts, logs "
                                "and services.json"),
    prefect_port: int = typer.Option(4200, min=1, max=65535, help="the Prefect server's port (loopback)"),
    mlflow_port: int = typer.Option(5000, min=1, max=65535, help="the MLflow tracking server's port (loopback)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Start a local Prefect server and an MLflow tracking server (artifacts served over HTTP),
    detached, with their stores under one folder; `genmat down` stops them (docs/running.md)."""
    _setup(verbose)
    from pipelines.services import up as start

    state = start(folder, prefect_port=prefect_port, mlflow_port=mlflow_port)
    word = "already running" if state.get("already_running") else "started"
    typer.echo(f"{word}: Prefect {state['prefect']['url']} (API {state['prefect']['api_url']}), MLflow "
               f"{state['mlflow']['url']}; logs and stores in {state['folder']}\n"
               f"export PREFECT_API_URL={state['prefect']['api_url']}\n"
               f"export MLFLOW_TRACKING_URI={state['mlflow']['tracking_uri']}\n"
               f"stop them with: genmat down --folder {folder}")


@app.command()
def down(
    folder: Path = typer.Option(Path("runs/services"), help="the folder `genmat up` used"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Stop the servers `genmat up` started."""
    _setup(verbose)
    from pipelines.services import down as stop

    stopped = stop(folder)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else f"nothing was running for {folder}")


@app.command()
def serve(
    cron: str = typer.Option("0 2 * * *", help="cron schedule for the closed loop (default: daily at 02:00)"),
    config: Optional[Path] = typer.Option(None, help="JSON file with LoopConfig fields"),
    name: str = typer.Option("genmat-closed-loop", help="deployment name"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Serve the closed loop on a cron schedule.

    Uses the Prefect server at PREFECT_API_URL, or starts (and stops) a local one on
    127.0.0.1 when none is set — schedules never fire on Prefect's temporary server.
    Each scheduled run works in a new time-stamped folder under the config's workdir.
    """
    _setup(verbose)
    from pipelines.flows import closed_loop
    from pipelines.server import serve_flow

    cfg = _load_config(config)
    _check_services(tracking=True, prefect=True)
    serve_flow(closed_loop, name=name, cron=cron, parameters={"config": cfg.model_dump(mode="json"), "new_workdir": True})


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every clean-up that handles Ctrl-C runs
    (MLflow runs end KILLED, a Prefect server genmat started is stopped)."""


_SIGNALLED: list[int] = []


def _on_sigterm(signum, frame) -> None:
    _SIGNALLED.append(signum)
    raise Terminated()


def _interrupted() -> None:
    """Exit 130 (SIGINT) or 143 (SIGTERM) with one line on what is kept."""
    name, code = ("SIGTERM", 143) if _SIGNALLED else ("interrupt", 130)
    typer.echo(f"genmat: stopped by {name}; everything committed before it is kept (datasets, checkpoints, "
               "finished steps) — run the same command again to resume", err=True)
    sys.exit(code)


def main() -> None:
    """Console entry point: user errors (genmat.errors.GenmatError, pydantic validation,
    OS errors such as a missing folder or a full disk) become one line on stderr and exit
    code 2; anything else is a bug: its traceback, a line asking for a report, exit 1."""
    from pydantic import ValidationError

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(standalone_mode=False)
        if code == 130:  # typer turns KeyboardInterrupt (and our SIGTERM) into a returned 130
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        text = f"{where} = {first.get('input')!r}: {msg}" if where else msg  # a whole-model check names its fields
        typer.echo(f"genmat: error: {text}{more}", err=True)
        sys.exit(2)
    except (GenmatError, OSError) as exc:  # what the user can fix: bad input, bad data, disk, a service
        msg = str(exc).strip().splitlines()
        typer.echo(f"genmat: error: {msg[0] if msg else type(exc).__name__}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors (exit code 2)
            exc.show()
            sys.exit(exc.exit_code)
        traceback.print_exc()  # anything else is a bug in genmat: keep the traceback, ask for a report
        typer.echo(f"genmat: internal error ({type(exc).__name__}); this is a bug — please report it with the "
                   "traceback above and the command you ran", err=True)
        sys.exit(1)

if __name__ == "__main__":
    main()
