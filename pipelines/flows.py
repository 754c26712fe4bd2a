"""Prefect flows: thin wrappers that arrange genmat's step functions.

``simulate``, ``train`` and ``design`` are flows of their own (runnable alone, and
subflows of ``closed_loop``); the feedback step is a task. Each wraps one
idempotent library step, so retries and resumes never duplicate data. MLflow
records through ``genmat.tracking``; this module adds Prefect's run ids as tags and
a Markdown/table artifact with the per-iteration summary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import get_run_context

from genmat.loop import ClosedLoop, LoopConfig
from genmat.errors import InputError, ServiceError
from genmat.loop.closed_loop import direct_runner, open_tracker, report_columns
from genmat.modalities import get_modality
from genmat.loop.state import LoopState
from genmat.loop.steps import (
    DesignParams,
    FeedbackParams,
    RecipeCheckParams,
    SimulateParams,
    TrainParams,
    design_step,
    feedback_step,
    recipe_check_step,
    simulate_step,
    train_step,
)

RETRIES = dict(retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)


class _PrefectLogHandler(logging.Handler):
    """Mirror genmat's log records (progress included) into the Prefect run logger."""

    def __init__(self, run_logger) -> None:
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, self.format(record))


def _with_run_logger(fn):
    logger = get_run_logger()
    handler = _PrefectLogHandler(logger)
    root = logging.getLogger("genmat")
    root.addHandler(handler)
    try:
        return fn()
    finally:
        root.removeHandler(handler)


@task(name="simulate-step", **RETRIES)
def simulate_task(params: SimulateParams) -> dict:
    return _with_run_logger(lambda: simulate_step(params, progress=False))


@task(name="train-step", **RETRIES)
def train_task(params: TrainParams) -> dict:
    logger = get_run_logger()

    def report(step: int, metrics: dict) -> None:
        if step % 250 == 0:
            logger.info("step %d: loss %.4f", step, metrics["train_loss"])

    return _with_run_logger(lambda: train_step(params, progress=False, callbacks=[report]))


@task(name="design-step", **RETRIES)
def design_task(params: DesignParams) -> dict:
    return _with_run_logger(lambda: design_step(params, progress=False))


@task(name="feedback-step", **RETRIES)
def feedback_task(params: FeedbackParams) -> dict:
    return _with_run_logger(lambda: feedback_step(params, progress=False))


@task(name="recipe-check-step", **RETRIES)
def recipe_check_task(params: RecipeCheckParams) -> dict:
    return _with_run_logger(lambda: recipe_check_step(params, progress=False))


@flow(name="simulate")
def simulate(params: SimulateParams) -> dict:
    """Simulate n samples with the modality's oracle and append them to a dataset."""
    return simulate_task(params)


@flow(name="train")
def train(params: TrainParams, tracking: bool = True, experiment: Optional[str] = None) -> dict:
    """Train (or warm-start) the conditional generator on a dataset.

    Run alone (a deployment on a GPU worker, `prefect deployment run`), it is one MLflow run
    (``MLFLOW_TRACKING_URI``; experiment ``genmat-<modality>`` unless ``experiment``): the
    parameters, the loss curve, the dataset it read (lineage: path, content digest, rows), the
    worker's system metrics while it trained, tagged with this flow run. Inside the closed
    loop (``tracking=False``) the loop's iteration run records the same.
    """
    if not tracking:
        return train_task(params)
    from genmat.tracking import MlflowTracker

    tracker = MlflowTracker.start(experiment or f"genmat-{params.modality}", f"train: {params.checkpoint}",
                                  tags={**_prefect_tags(), "genmat.step": "train"})
    status = "FAILED"
    try:
        tracker.log_params({"params": params.model_dump(mode="json")})
        with tracker.system_metrics():
            out = train_task(params)
        for step, loss in out["losses"]:
            tracker.log_metrics({"train_loss": loss}, step=step)
        tracker.log_metrics({k: out[k] for k in ("final_loss", "seconds", "n_train", "n_parameters")})
        tracker.log_dataset(out["dataset"], digest=out["dataset_digest"], name=Path(out["dataset"]).name,
                            rows=out["n_train"])
        status = "FINISHED"
    finally:
        tracker.end(status)
    return {**out, "mlflow_run_id": tracker.run_id}


@flow(name="design")
def design(params: DesignParams) -> dict:
    """Sample candidates for targets, validate, screen, simulate; write the report."""
    return design_task(params)


# the closed loop's steps; its own MLflow run records training (the train flow's run would repeat it)
SUBFLOWS = {"simulate": simulate, "train": lambda p: train(p, tracking=False), "design": design,
            "feedback": feedback_task, "recipes": recipe_check_task}


# the steps deployed on their own (genmat deploy), which the loop may hand to a work pool
REMOTE_STEPS = ("simulate", "train", "design")


def remote_runner(remote: set[str]):
    """The loop's runner with ``remote`` steps sent to their deployments ``<step>/genmat-<step>``
    (``run_deployment``, as a subflow of the loop's flow run): a worker of the deployment's
    pool — e.g. the GPU host's — runs the step and writes its outputs to the shared working
    folder; the loop waits for it, then reads the outputs back by calling the same idempotent
    step here, which finds the work done (a finished checkpoint, a design's metrics, committed
    chunks) and does nothing again. The other steps run in this process as subflows."""
    unknown = sorted(set(remote) - set(REMOTE_STEPS))
    if unknown:
        raise InputError(f"remote steps {unknown} are not deployed steps; allowed: {', '.join(REMOTE_STEPS)}",
                         field="remote_steps", value=unknown, allowed=", ".join(REMOTE_STEPS))

    def run(name: str, params) -> dict:
        if name not in remote:
            return SUBFLOWS[name](params)
        from prefect.deployments import run_deployment

        logger = get_run_logger()
        deployment = f"{name}/genmat-{name}"
        logger.info("sending %s to the deployment %s", name, deployment)
        extra = {"tracking": False} if name == "train" else {}  # the loop's iteration run records it
        flow_run = run_deployment(deployment, parameters={"params": params.model_dump(mode="json"), **extra},
                                  as_subflow=True)
        if not flow_run.state.is_completed():
            raise ServiceError(f"the {name} step's flow run {flow_run.name} ({flow_run.id}) on deployment "
                               f"{deployment} ended {flow_run.state.type.value}: {flow_run.state.message or ''}")
        output = _remote_output(name, params)
        if output is not None and not output.exists():  # the worker wrote elsewhere: do not redo its work here
            raise ServiceError(f"the {name} step's flow run {flow_run.name} completed, but its output {output} is "
                               "not here: the working folder must be the same path on both hosts (shared storage)")
        return direct_runner(name, params)  # reads back what the worker wrote

    return run


def _remote_output(name: str, params) -> Optional[Path]:
    """What a remote step leaves in the shared folder, for the loop to find."""
    if name == "train":
        return Path(params.checkpoint)
    if name == "design":
        return Path(params.out_dir) / "metrics.json"
    return Path(params.dataset) / "manifest.json" if name == "simulate" else None


def _prefect_tags() -> dict[str, str]:
    ctx = get_run_context()
    run = getattr(ctx, "flow_run", None)
    if run is None:
        return {}
    tags = {"prefect.flow_run_id": str(run.id), "prefect.flow_run_name": str(run.name)}
    api = os.environ.get("PREFECT_API_URL")
    if api and api.rstrip("/").endswith("/api"):
        tags["prefect.flow_run_url"] = f"{api.rstrip('/')[:-4]}/runs/flow-run/{run.id}"
    return tags


@flow(name="closed_loop")
def closed_loop(
    config: LoopConfig = LoopConfig(),
    tracking: bool = True,
    experiment: Optional[str] = None,
    new_workdir: bool = False,
    remote_steps: Optional[list[str]] = None,
) -> dict:
    """The whole loop: per iteration train → design → (feedback), recorded in MLflow.

    ``new_workdir``: run in a fresh, time-stamped folder under ``config.workdir`` (what a
    schedule wants: every scheduled run is a new campaign); otherwise an existing loop in
    ``config.workdir`` is resumed.

    ``remote_steps`` (of ``simulate``, ``train``, ``design``): steps handed to their
    deployments' work pools (:func:`remote_runner`; ``genmat deploy --gpu-pool`` sets
    ``["train", "design"]`` for the deployed loop). The working folder must then be shared.
    """
    logger = get_run_logger()
    if new_workdir:
        from datetime import datetime, timezone

        stamp = datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%SZ")
        config = config.replace(workdir=config.workdir / stamp)
    runner = remote_runner(set(remote_steps or ()))  # unknown steps refused before anything is written
    if remote_steps:  # the workers start in another folder: the paths they are given are absolute
        config = config.replace(workdir=config.workdir.absolute())
    tracker = open_tracker(config, enabled=tracking, experiment=experiment, tags=_prefect_tags())
    status = "FAILED"
    try:
        state = _with_run_logger(lambda: ClosedLoop(config, tracker, runner=runner).run())
        status = "FINISHED"
    finally:
        tracker.end(status)
    _summary_artifacts(state, get_modality(config.modality, **config.modality_options))
    logger.info("loop finished: %s; report at %s", state.stop_reason, config.workdir / "report.md")
    return {"stop_reason": state.stop_reason, "history": state.history, "workdir": str(config.workdir),
            "mlflow_run_id": state.tracking.get("parent_run_id")}


def _summary_artifacts(state: LoopState, modality) -> None:
    history = pd.DataFrame(state.history)
    if history.empty:
        return
    cols = report_columns(modality, history, short=True)
    table = history[cols].round(4).replace([float("inf")], None)
    create_table_artifact(table.to_dict(orient="records"), key="closed-loop-iterations",
                          description="genmat closed loop: one row per iteration")
    report = state.path.parent / "report.md"
    if report.exists():
        create_markdown_artifact(report.read_text(), key="closed-loop-report",
                                 description=f"genmat closed-loop report ({state.stop_reason})")
