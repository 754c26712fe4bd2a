"""``genmat deploy``: genmat's flows as Prefect deployments on work pools, for workers to run.

:func:`deploy` registers the flows ``closed_loop``, ``simulate``, ``train`` and ``design``
(:mod:`pipelines.flows`) with the Prefect server at ``PREFECT_API_URL`` as deployments
``<flow>/genmat-<flow>`` on the work pool ``pool`` (``process`` type, created when missing),
loaded from this checkout (``Flow.from_source``: the worker imports
``pipelines/flows.py`` from the repository, so the worker's machine needs the same checkout
and environment). ``train`` and ``design`` — the steps that want a GPU — go to ``gpu_pool``
when one is given; that pool is created with a concurrency limit of one flow run per worker
slot (``gpu_concurrency``), so two campaigns never share one GPU. Job variables: the working
directory the runs start in and environment variables (e.g. ``CUDA_VISIBLE_DEVICES``,
``MLFLOW_TRACKING_URI``). With a GPU pool the deployed closed loop runs on ``pool`` and sends
its ``train`` and ``design`` steps to their deployments (``remote_steps``), so they run on the
GPU host while the loop waits; its working folder must be on storage both hosts see.
``cron`` schedules the closed loop (each scheduled run in a new
time-stamped folder under the config's workdir).

A host then runs ``prefect worker start --pool NAME`` and picks the runs up
(docs/running.md §12).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from genmat.errors import InputError, ServiceError

__all__ = ["FLOWS", "GPU_FLOWS", "deploy"]

_log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
FLOWS = {name: f"pipelines/flows.py:{name}" for name in ("closed_loop", "simulate", "train", "design")}
GPU_FLOWS = ("train", "design")


def _ensure_pool(client, name: str, concurrency: int | None) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=concurrency))
        _log.info("created work pool %r (process%s)", name, f", {concurrency} run at a time" if concurrency else "")
        return
    if pool.type != "process":
        raise InputError(f"work pool {name!r} is of type {pool.type!r}; genmat deploys to process pools",
                         field="pool", value=name, allowed="a process work pool (or a new name)")
    if concurrency is not None and pool.concurrency_limit != concurrency:
        client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency))


def deploy(pool: str, *, gpu_pool: str | None = None, gpu_concurrency: int = 1, flows=tuple(FLOWS),
           cron: str | None = None, loop_config: Mapping[str, Any] | None = None, working_dir: Path | None = None,
           env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Register the deployments; ``{flow: "flow/deployment"}`` (module docstring)."""
    from prefect import Flow
    from prefect.client.orchestration import get_client

    if gpu_pool is not None and gpu_pool == pool:
        raise InputError(f"gpu_pool = {gpu_pool!r} is the CPU pool too: the loop would hold the GPU pool's only slot "
                         "while it waits for its own train step", field="gpu_pool", value=gpu_pool,
                         allowed=f"a pool other than {pool!r}")
    if not os.environ.get("PREFECT_API_URL"):
        raise ServiceError("genmat deploy needs a Prefect server: set PREFECT_API_URL (genmat up starts one; "
                           "Prefect's temporary server forgets deployments when the command exits)")
    unknown = sorted(set(flows) - set(FLOWS))
    if unknown:
        raise InputError(f"flows {unknown} are not genmat flows; allowed: {', '.join(FLOWS)}", field="flows",
                         value=unknown, allowed=", ".join(FLOWS))
    job_variables = {"working_dir": str(Path(working_dir or Path.cwd()).absolute()), "env": dict(env or {})}
    with get_client(sync_client=True) as client:
        _ensure_pool(client, pool, None)
        if gpu_pool:
            _ensure_pool(client, gpu_pool, gpu_concurrency)
    out = {}
    for name in flows:
        target = gpu_pool if (gpu_pool and name in GPU_FLOWS) else pool
        parameters = None
        if name == "closed_loop":
            parameters = {"new_workdir": cron is not None, **({"config": dict(loop_config)} if loop_config else {}),
                          # the loop (on the CPU pool) hands its GPU steps to their deployments on the GPU pool
                          **({"remote_steps": list(GPU_FLOWS)} if gpu_pool and set(GPU_FLOWS) <= set(flows) else {})}
        flow = Flow.from_source(source=str(REPO), entrypoint=FLOWS[name])
        # to_deployment + apply, not Flow.deploy: prefect 3.8.8's deploy() lists the pool's workers
        # with a request its own server refuses (422 on offset/limit None)
        flow.to_deployment(name=f"genmat-{name}", work_pool_name=target, job_variables=job_variables,
                           cron=cron if name == "closed_loop" else None, parameters=parameters,
                           tags=["genmat"]).apply()
        out[name] = f"{flow.name}/genmat-{name}"
        _log.info("deployed %s to work pool %r", out[name], target)
    return out
