"""The closed loop: train → design → validate → feed back → repeat.

Iteration k:
 1. **train** the generator on the whole dataset (k = 0 from scratch, k > 0 warm-started
    from iteration k − 1's EMA weights);
 2. **design**: sample candidates for every target, physics-check, screen with the
    surrogate, simulate the best, pick one design per target (see ``design.py``);
 3. **record** metrics, pictures and the model (MLflow through a Tracker);
 4. stop when the hit rate reaches the goal or the iteration/simulation budget is
    spent; otherwise **feed back**: relabel the physically valid failures with their
    simulated properties and simulate new samples near the failing targets
    (``acquisition.py``), then go to 1.

Every step goes through a ``runner(name, params) -> dict`` so that Prefect can run
it as a flow or task; the default runner calls the step function directly.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, Field, model_validator

from genmat import plots
from genmat.atomic import atomic_write
from genmat.config import Config
from genmat.errors import InputError
from genmat.generate import GeneratorConfig, SamplerConfig
from genmat.loop.state import LoopState
from genmat.loop.steps import (
    DesignParams,
    FeedbackParams,
    RecipeCheckParams,
    SimulateParams,
    TrainParams,
    design_step,
    feedback_step,
    load_design,
    read_table,
    recipe_check_step,
    simulate_step,
    train_step,
)
from genmat.loop.targets import held_out_targets
from genmat.modalities import DEFAULT_MODALITY, get_modality
from genmat.nn import UNetConfig
from genmat.tracking import MlflowTracker, NullTracker
from genmat.train import TrainConfig

log = logging.getLogger(__name__)

STEP_FUNCTIONS: dict[str, Callable] = {
    "simulate": simulate_step,
    "train": train_step,
    "design": design_step,
    "feedback": feedback_step,
    "recipes": recipe_check_step,
}


def default_generator() -> GeneratorConfig:
    return GeneratorConfig(unet=UNetConfig(base_channels=16, channel_mults=(1, 2, 4)))


def modality_generator(modality) -> GeneratorConfig:
    """The generator a modality trains by default: its ``loop_defaults``' generator (what a
    LoopConfig of that modality gets), else the demo's."""
    settings = dict(modality.loop_defaults).get("generator")
    return default_generator() if settings is None else GeneratorConfig.model_validate(settings)


class LoopConfig(Config):
    """Everything a closed-loop run needs; the defaults are the CPU demo."""

    modality: str = DEFAULT_MODALITY
    modality_options: dict[str, Any] = Field(default_factory=dict)
    workdir: Path = Path("runs") / DEFAULT_MODALITY
    seed: int = 0
    initial_samples: int = Field(192, ge=16, description="oracle samples before the first iteration")
    n_targets: int = Field(32, ge=1, description="held-out targets (ignored when targets_file is given)")
    targets_file: Optional[Path] = None
    task: Optional[str] = Field(None, description="a registered design task (genmat tasks) of point targets: its "
                                "targets (n_targets of them), tolerances and modality options")
    max_iterations: int = Field(4, ge=1)
    hit_rate_goal: float = Field(1.0, gt=0, le=1)
    simulation_budget: int = Field(5000, ge=1, description="total oracle calls, initial data included")
    first_train_steps: int = Field(150, ge=1, description="optimiser steps of iteration 0 (from scratch)")
    next_train_steps: int = Field(300, ge=1, description="optimiser steps of each later iteration (warm start)")
    n_candidates: int = Field(4, ge=1, description="generated candidates per target and iteration")
    n_simulate: int = Field(1, ge=1, description="candidates per target sent to the simulator")
    acquire_per_target: int = Field(12, ge=0, description="new simulations near each failing target")
    generator: GeneratorConfig = Field(default_factory=default_generator)
    # batch 32 (TrainConfig's 64 elsewhere): the demo's training cost halves per step; measured
    # (docs/running.md) the final hit rate is unchanged and `make demo` ≈ 40 % faster
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(batch_size=32))
    sampler: Optional[SamplerConfig] = None
    physics_guidance: float = Field(0.0, ge=0, description="physics-guidance scale of every design step (0 = off; "
                                    "a modality may default otherwise, in its loop_defaults)")
    oracle_workers: int = Field(1, ge=1, description="Dask worker processes the initial simulation and the "
                                "acquisitions fan out to (chunks of 256; 1 = in this process)")
    dask_address: Optional[str] = Field(None, description="an existing Dask scheduler for the initial simulation "
                                        "and the acquisitions (tcp://host:port) instead of a local cluster")
    recipe_checks: int = Field(0, ge=0, description="fresh process seeds on which each hit design's recipe (the "
                               "recipe head's) is re-simulated after every design step (0 = off; oracle calls, counted)")

    @model_validator(mode="before")
    @classmethod
    def _modality_defaults(cls, data: Any) -> Any:
        """Fields left out take the modality's demo defaults (``Modality.loop_defaults``)
        and the workdir ``runs/<modality>``."""
        if not isinstance(data, dict):
            return data
        if data.get("task") is not None:
            data = {**data, **_task_settings(data)}
        name = data.get("modality", DEFAULT_MODALITY)
        try:
            defaults = dict(get_modality(name, **data.get("modality_options", {})).loop_defaults)
        except (ValueError, TypeError) as exc:
            raise InputError(f"modality {name!r} with options {data.get('modality_options', {})}: {exc}") from exc
        defaults["workdir"] = Path("runs") / (data.get("task") or name)
        return {**defaults, **data}

    @model_validator(mode="after")
    def _guidance_needs_physics(self) -> "LoopConfig":
        modality = get_modality(self.modality, **self.modality_options)
        if getattr(modality, "checked_by", "simulator") != "simulator":
            raise InputError(f"modality {self.modality!r} has no oracle (its candidates are checked by a "
                             f"{modality.checked_by}): the closed loop simulates new data; train and design on "
                             "its dataset instead (genmat train / genmat design --dataset)", field="modality",
                             value=self.modality, allowed="a modality with a simulator")
        if self.physics_guidance > 0 and modality.physics_model() is None:
            raise InputError(f"physics_guidance = {self.physics_guidance:g}: modality {self.modality!r} has no "
                             "differentiable physics model; allowed: 0", field="physics_guidance",
                             value=self.physics_guidance, allowed="0")
        return self

    @property
    def dataset(self) -> Path:
        return self.workdir / "dataset"

    def iteration_dir(self, k: int) -> Path:
        return self.workdir / f"iter_{k:02d}"


def _task_settings(data: dict) -> dict:
    """What a design task sets in a loop config: its modality, and modality options that
    carry its tolerances into the simulator check (``Modality.task_options``)."""
    from genmat.modalities import get_task

    task = get_task(data["task"])
    if data.get("targets_file") is not None:
        raise InputError(f"task = {task.name!r} and targets_file: give one of them", field="task", value=task.name)
    if data.get("modality", task.modality) != task.modality:
        raise InputError(f"task {task.name!r} is a {task.modality} task; modality = {data['modality']!r}",
                         field="modality", value=data["modality"], allowed=task.modality)
    if tuple(task.kinds) != ("point",):
        raise InputError(f"task {task.name!r} has {', '.join(k for k in task.kinds if k != 'point')} targets; the loop "
                         "designs for point targets (genmat recipes --task designs for ranges and bounds)",
                         field="task", value=task.name)
    modality = get_modality(task.modality, **dict(task.modality_options))
    options = {**dict(task.modality_options), **modality.task_options(task.tolerances),
               **data.get("modality_options", {})}
    return {"modality": task.modality, "modality_options": options}


Runner = Callable[[str, BaseModel], dict]


def direct_runner(name: str, params: BaseModel) -> dict:
    return STEP_FUNCTIONS[name](params)


class ClosedLoop:
    def __init__(self, config: LoopConfig, tracker=None, runner: Runner = direct_runner) -> None:
        self.config, self.runner = config, runner
        self.tracker = tracker or NullTracker()
        self.modality = get_modality(config.modality, **config.modality_options)
        self.state = LoopState.load(config.workdir / "state.json")
        saved = self.state.config
        current = config.model_dump(mode="json")
        if saved and {k: v for k, v in saved.items() if k != "max_iterations"} != {
            k: v for k, v in current.items() if k != "max_iterations"
        }:
            diff = sorted(k for k in current if saved.get(k) != current[k])
            raise InputError(
                f"{config.workdir} holds a loop run with a different configuration (differs in: "
                f"{', '.join(diff)}); use another --workdir or the same settings to resume"
            )
        self.state.config = current

    # ------------------------------------------------------------------ helpers
    def _common(self) -> dict:
        c = self.config
        return {"modality": c.modality, "modality_options": c.modality_options, "dataset": c.dataset}

    def _step(self, key: str, name: str, params: BaseModel) -> dict:
        if self.state.done(key):
            return self.state.steps[key]
        log.info("loop step %s", key)
        return self.state.record(key, self.runner(name, params))

    @property
    def targets_path(self) -> Path:
        return self.config.workdir / "targets.parquet"

    def prepare(self) -> pd.DataFrame:
        """Initial dataset and targets (both idempotent)."""
        c = self.config
        c.workdir.mkdir(parents=True, exist_ok=True)
        self._step("initial/simulate", "simulate", SimulateParams(
            **self._common(), n=c.initial_samples, seed=c.seed, iteration=0, batch_key="initial",
            source_run="loop/initial", workers=c.oracle_workers, dask_address=c.dask_address))
        if not self.targets_path.exists():
            if c.targets_file is not None:
                targets = read_table(c.targets_file)
                self.modality.schema.validate_frame(targets[[k for k in targets if k in self.modality.schema.names]])
            elif c.task is not None:
                from genmat.modalities import get_task

                target_set = get_task(c.task).targets(self.modality, c.n_targets)
                self.state.record("targets/simulate", {"simulator_calls": int(c.n_targets)})  # its held-out simulations
                targets = pd.DataFrame(target_set.point, columns=list(target_set.fields))
            else:
                targets, samples = held_out_targets(self.modality, c.n_targets, seed=c.seed + 1_000_003)
                # the held-out simulations are oracle calls too (counted before the targets file exists,
                # so a crash in between simulates and counts them once more, never zero times)
                self.state.record("targets/simulate", {"simulator_calls": int(c.n_targets)})
                fig = self.modality.plot_samples(samples, [self.modality.title(r) for _, r in targets.iterrows()])
                plots.save(fig, c.workdir / "targets.png")
            atomic_write(self.targets_path, targets.to_parquet)
        return pd.read_parquet(self.targets_path)

    def simulator_calls(self) -> int:
        return int(sum(v.get("simulator_calls", 0) for k, v in self.state.steps.items()
                       if isinstance(v, dict) and not k.endswith("/record")))  # records repeat design counts

    # --------------------------------------------------------------------- run
    def run(self) -> LoopState:
        c, tracker = self.config, self.tracker
        targets = self.prepare()
        tracker.log_params({"loop": c.model_dump(mode="json"), "n_targets_actual": len(targets)})
        with tracker.system_metrics():  # the loop's host: CPU, memory (GPU) while it trains, designs, simulates
            self._iterate()
        self._summarise()
        return self.state

    def _iterate(self) -> None:
        c = self.config
        for k in range(c.max_iterations):
            if self.state.finished:
                break
            it_dir = c.iteration_dir(k)
            ckpt = it_dir / "model.ckpt"
            steps = c.first_train_steps if k == 0 else c.next_train_steps
            train = self._step(f"iter{k}/train", "train", TrainParams(
                **self._common(), checkpoint=ckpt,
                warm_start=c.iteration_dir(k - 1) / "model.ckpt" if k else None,
                generator=c.generator, train=c.train.replace(steps=steps, seed=c.seed + k)))
            design = self._step(f"iter{k}/design", "design", DesignParams(
                **self._common(), checkpoint=ckpt, targets_file=self.targets_path, out_dir=it_dir / "design",
                n_candidates=c.n_candidates, n_simulate=c.n_simulate, sampler=c.sampler, seed=c.seed + 7919 * k,
                physics_guidance=c.physics_guidance))
            if c.recipe_checks:  # its simulations are counted by simulator_calls(), apart from the design's
                checked = self._step(f"iter{k}/recipes", "recipes", RecipeCheckParams(
                    **self._common(), design_dir=it_dir / "design", seeds=c.recipe_checks,
                    seed=c.seed + 15485863 * (k + 1)))
                design = {**design, **{m: v for m, v in checked.items() if m != "simulator_calls"},
                          "recipe_check_calls": checked["simulator_calls"]}
            row = self._record_iteration(k, train, design)
            if row[self.modality.hit_metric] >= c.hit_rate_goal:
                self._finish(f"hit-rate goal {c.hit_rate_goal:.0%} reached at iteration {k}")
            elif self.simulator_calls() >= c.simulation_budget:
                self._finish(f"simulation budget {c.simulation_budget} spent at iteration {k}")
            elif k == c.max_iterations - 1:
                self._finish(f"iteration budget {c.max_iterations} spent")
            else:
                self._step(f"iter{k}/feedback", "feedback", FeedbackParams(
                    **self._common(), design_dir=it_dir / "design", iteration=k + 1,
                    acquire_per_target=c.acquire_per_target, seed=c.seed + 104729 * (k + 1),
                    source_run=f"loop/iter{k}", workers=c.oracle_workers, dask_address=c.dask_address))

    def _finish(self, reason: str) -> None:
        log.info("loop finished: %s", reason)
        self.state.finished, self.state.stop_reason = True, reason
        self.state.save()

    # ---------------------------------------------------------------- tracking
    def _record_iteration(self, k: int, train: dict, design: dict) -> dict:
        key = f"iter{k}/record"
        if self.state.done(key):
            return self.state.steps[key]
        c = self.config
        it_dir = c.iteration_dir(k)
        result = load_design(it_dir / "design")
        calls = self.simulator_calls()
        row = {"iteration": k, **{m: v for m, v in design.items() if isinstance(v, (int, float))},
               "train_loss": train["final_loss"], "train_step": train["step"], "n_train": train["n_train"],
               "train_seconds": train["seconds"], "simulator_calls_total": calls,
               # every oracle call so far (training data, targets, acquisitions, design checks) per hit
               "oracle_calls_per_hit_total": calls / design["hits"] if design.get("hits") else float("inf"),
               **{k: v for k, v in train.items() if k.startswith("vae_")}}
        pictures = self._iteration_pictures(k, result, train)
        with self.tracker.child(f"iteration {k}", tags={"genmat.iteration": str(k)}) as child:
            child.log_params({"iteration": k, "train_steps": train["step"], "n_train": train["n_train"],
                              "checkpoint": train["checkpoint"]})
            for step, loss in train["losses"]:
                child.log_metrics({"train_loss": loss}, step=step)
            if "dataset_digest" in train:  # (a loop resumed from before lineage was recorded has none)
                child.log_dataset(train["dataset"], digest=train["dataset_digest"], name=Path(train["dataset"]).name,
                                  rows=train["n_train"])
            child.log_metrics({m: v for m, v in row.items() if isinstance(v, (int, float)) and np.isfinite(v)})
            child.log_table(result.report, "validation_report")
            for p in pictures:
                child.log_artifact(p, "pictures")
            score = row[self.modality.hit_metric] + 1e-3 * row["hit_rate"]  # ties broken by targets hit
            sampler = self.config.sampler or self.config.generator.sampler
            row["model_version"] = child.log_model(
                Path(train["checkpoint"]), name="generator", registered_model=f"genmat-{c.modality}", score=score,
                predict_params={"n_per_condition": 1, "seed": 0, "steps": sampler.steps,
                                "guidance": float(sampler.guidance)},
            )
        self.tracker.log_metrics({m: v for m, v in row.items() if isinstance(v, (int, float)) and np.isfinite(v)},
                                 step=k)
        self.state.history.append(row)
        return self.state.record(key, row)

    def _iteration_pictures(self, k: int, result, train: dict) -> list[Path]:
        it_dir = self.config.iteration_dir(k)
        pics = []
        rep, per = result.report, self.config.n_candidates
        show = min(per, 8)
        mod = self.modality
        for tid, group in rep.groupby("target_id"):
            idx = group.index[:show]
            titles = [mod.candidate_title(r) for _, r in rep.loc[idx].iterrows()]
            fig = mod.plot_samples(result.samples[torch.tensor(np.array(idx, dtype=np.int64))], titles, ncols=show,
                                   conditions=_targets_of(rep.loc[idx]))
            t = group.iloc[0]
            fig.suptitle(mod.title(t, prefix="target_"), fontsize=8, y=1.02)
            pics.append(plots.save(fig, it_dir / "pictures" / f"samples_target_{tid:02d}.png"))
        best = result.designs.dropna(subset=["candidate"])
        if len(best):
            idx = (best["target_id"] * per + best["candidate"]).astype(int).to_numpy()
            titles = [f"T{int(r['target_id'])} {'HIT' if r['hit'] else 'miss'}: " + mod.candidate_title(r)
                      for _, r in best.iterrows()]
            fig = mod.plot_samples(result.samples[torch.tensor(np.array(idx, dtype=np.int64))], titles, ncols=6,
                                   conditions=_targets_of(best))
            pics.append(plots.save(fig, it_dir / "pictures" / "designs.png"))
        fig = plots.target_scatter(result.designs, mod.tolerance_bands)
        pics.append(plots.save(fig, it_dir / "pictures" / "target_vs_simulated.png"))
        if train.get("method") in ("vae", "latent_diffusion"):
            pics.append(self._interpolation_picture(Path(train["checkpoint"]), it_dir / "pictures" / "interpolation.png"))
        return pics

    def _interpolation_picture(self, checkpoint: Path, path: Path) -> Path:
        """Decoded points between two training samples' latents, under the first's condition."""
        from genmat.data import DatasetStore
        from genmat.generate import Generator

        store = DatasetStore.open(self.config.dataset)
        table = store.table().iloc[:2]
        x = torch.as_tensor(store.load(table["sample_id"].to_numpy()))
        first = table.iloc[:1].reindex(columns=list(self.modality.schema.names))
        path_x = Generator.from_checkpoint(checkpoint).interpolate(x[0], x[1], first, n=8)
        titles = [f"{w:.2f}" for w in np.linspace(0, 1, 8)]
        fig = self.modality.plot_samples(path_x, titles, ncols=8)
        fig.suptitle("latent interpolation between two training samples (linear in the posterior means)", fontsize=8)
        return plots.save(fig, path)

    def _summarise(self) -> None:
        history = pd.DataFrame(self.state.history)
        if history.empty:
            return
        wd = self.config.workdir
        history.to_csv(wd / "history.csv", index=False)
        pics = [plots.save(plots.hit_rate_curve(history, self.config.hit_rate_goal), wd / "hit_rate.png")]
        curves = {f"iteration {k}": self.state.steps.get(f"iter{k}/train", {}).get("losses", [])
                  for k in range(len(history))}
        pics.append(plots.save(plots.loss_curves(curves), wd / "loss_curves.png"))
        report = write_report(self.state, wd, self.modality)
        last = self.config.iteration_dir(len(history) - 1) / "model.ckpt"
        if last.exists():  # the latest model at a fixed place: genmat design --checkpoint runs/demo/model.ckpt
            atomic_write(wd / "model.ckpt", lambda tmp: shutil.copyfile(last, tmp))
        for p in [*pics, report, wd / "history.csv"]:
            self.tracker.log_artifact(p, "summary")
        if (wd / "targets.png").exists():
            self.tracker.log_artifact(wd / "targets.png", "summary")


def open_tracker(config: LoopConfig, *, enabled: bool = True, experiment: str | None = None, tags=None):
    """The MLflow parent run of a loop: a new one, or the one a resumed loop started.

    The experiment is one per modality (``genmat-<modality>``); the run id is kept in
    the loop state so that a killed and resumed loop keeps logging into the same run.
    """
    if not enabled:
        return NullTracker()
    state = LoopState.load(config.workdir / "state.json")
    run_id, tracker = state.tracking.get("parent_run_id"), None
    if run_id:
        try:
            tracker = MlflowTracker.attach(run_id)
        except Exception as exc:  # e.g. another tracking store than the one the loop started with
            log.warning("MLflow run %s of this loop is not in the current store (%s); starting a new run",
                        run_id, type(exc).__name__)
    if tracker is None:
        tracker = MlflowTracker.start(experiment or f"genmat-{config.modality}", f"closed loop: {config.workdir.name}")
        tracker.set_description(
            f"genmat closed loop on {config.modality}: workdir `{config.workdir}`; "
            "nested runs are the iterations; report and pictures under artifacts/summary."
        )
        state.tracking["parent_run_id"] = tracker.run_id
        state.save()
    if tags:
        tracker.set_tags(dict(tags))
    return tracker


def _targets_of(report_rows: pd.DataFrame) -> pd.DataFrame:
    """The target conditions of report rows (``target_<field>`` columns → ``<field>``)."""
    cols = [c for c in report_rows.columns if c.startswith("target_") and c != "target_id"]
    return report_rows[cols].rename(columns=lambda c: c[len("target_"):]).reset_index(drop=True)


def report_columns(modality, history: pd.DataFrame, short: bool = False) -> list[str]:
    """The per-iteration columns of reports: the generic ones around the modality's own
    (``Modality.report_metrics``); ``short`` for the Prefect table artifact."""
    head = ("iteration", "hit_rate") if short else ("iteration", "hit_rate", "hits", "targets", "candidate_hit_rate")
    tail = (("novelty_mean", "simulator_calls", "simulator_calls_per_hit", "n_train") if short else
            ("novelty_mean", "simulator_calls", "simulator_calls_total", "simulator_calls_per_hit",
             "oracle_calls_per_hit_total", "physics_evaluations", "recipe_hold_rate", "robust_recipes",
             "candidates_per_hit", "n_train", "train_step",
             "train_loss"))
    cols = (*head, "physics_pass_rate", *modality.report_metrics, *tail)
    return [c for c in dict.fromkeys(cols) if c in history]


def write_report(state: LoopState, workdir: Path, modality) -> Path:
    """A Markdown report of the run beside its pictures."""
    h = pd.DataFrame(state.history)
    cols = report_columns(modality, h)
    lines = ["# genmat closed-loop report", "", f"Stopped: {state.stop_reason or 'not finished'}", "",
             "## Per iteration", "", _markdown_table(h[cols]), "",
             "![hit rate](hit_rate.png)", "", "![training loss](loss_curves.png)", ""]
    last = len(h) - 1
    lines += [f"## Last iteration ({last})", "", f"![designs](iter_{last:02d}/pictures/designs.png)", "",
              f"![target vs simulated](iter_{last:02d}/pictures/target_vs_simulated.png)", ""]
    return atomic_write(workdir / "report.md", lambda tmp: tmp.write_text("\n".join(lines)))


def _markdown_table(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return "–" if not np.isfinite(v) else f"{v:.3g}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])
