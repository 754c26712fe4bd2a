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
from typing import Optional

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import get_run_context

from genmat.loop import ClosedLoop, LoopConfig
from genmat.loop.closed_loop import open_tracker, report_columns
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
def train(params: TrainParams) -> dict:
    """Train (or warm-start) the conditional generator on a dataset."""
    return train_task(params)


@flow(name="design")
def design(params: DesignParams) -> dict:
    """Sample candidates for targets, validate, screen, simulate; write the report."""
    return design_task(params)


SUBFLOWS = {"simulate": simulate, "train": train, "design": design, "feedback": feedback_task,
            "recipes": recipe_check_task}


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
) -> dict:
    """The whole loop: per iteration train → design → (feedback), recorded in MLflow.

    ``new_workdir``: run in a fresh, time-stamped folder under ``config.workdir`` (what a
    schedule wants: every scheduled run is a new campaign); otherwise an existing loop in
    ``config.workdir`` is resumed.
    """
    logger = get_run_logger()
    if new_workdir:
        from datetime import datetime, timezone

        stamp = datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%SZ")
        config = config.replace(workdir=config.workdir / stamp)
    tracker = open_tracker(config, enabled=tracking, experiment=experiment, tags=_prefect_tags())
    status = "FAILED"
    try:
        state = _with_run_logger(lambda: ClosedLoop(config, tracker, runner=lambda n, p: SUBFLOWS[n](p)).run())
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
