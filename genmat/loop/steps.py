"""The loop's steps as plain functions of a parameter model, reading and writing disk.

Each step is idempotent: run twice with the same parameters it does its work
once (datasets are appended by batch key, a finished checkpoint is not trained
again, a finished design directory is read back). That is what lets a killed
loop resume at the last completed step with nothing lost or duplicated, and what
lets Prefect retry a step. The Prefect flows in ``pipelines/`` wrap exactly these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
from pydantic import ConfigDict, Field

from genmat.atomic import atomic_write
from genmat.config import Config
from genmat.data import DatasetStore, SampleDataset
from genmat.data.tables import read_table
from genmat.errors import InputError, ServiceError
from genmat.generate import Generator, GeneratorConfig, SamplerConfig
from genmat.loop.acquisition import acquire_near
from genmat.loop.design import DesignResult, design
from genmat.loop.screening import PropertySurrogate, RecipeHead
from genmat.modalities import DEFAULT_MODALITY, get_modality
from genmat.train import TrainConfig

log = logging.getLogger(__name__)


class StepParams(Config):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    modality: str = DEFAULT_MODALITY
    modality_options: dict[str, Any] = Field(default_factory=dict)
    dataset: Path = Path("runs") / DEFAULT_MODALITY / "dataset"

    def build_modality(self):
        return get_modality(self.modality, **self.modality_options)


class SimulateParams(StepParams):
    n: int = Field(512, ge=1, description="samples to simulate")
    seed: int = 0
    iteration: int = Field(0, ge=0)
    batch_key: Optional[str] = None  # default: derived from seed and n
    source_run: str = "manual"
    processing_file: Optional[Path] = None  # parquet/csv of processing conditions; default: prior draws
    chunk: int = Field(256, ge=1, description="samples per commit: a crash loses at most one chunk of oracle work")
    workers: int = Field(1, ge=1, description="oracle processes: > 1 fans the chunks out on a local Dask cluster of "
                         "this many single-threaded workers (1: in this process)")
    dask_address: Optional[str] = Field(None, description="an existing Dask scheduler (tcp://host:port) to fan the "
                                        "chunks out to, instead of a local cluster")


class TrainParams(StepParams):
    checkpoint: Path
    warm_start: Optional[Path] = None
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class ReflowParams(StepParams):
    checkpoint: Path  # a trained rectified-flow generator
    out: Path  # the reflowed checkpoint
    pairs: int = Field(2048, ge=1, description="(noise, sample) pairs generated with the trained flow")
    ode_steps: int = Field(50, ge=1, description="Heun steps per generated pair")
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0


class DistillParams(StepParams):
    checkpoint: Path  # the diffusion teacher
    out: Path  # the consistency-distilled student
    n_grid: int = Field(18, ge=2, description="teacher ODE grid: t_0 = 0 < … < t_N = 1")
    guidance: Optional[float] = Field(None, ge=0, description="teacher guidance (default: the teacher's)")
    sampler_steps: int = Field(2, ge=1, le=8, description="the student's default consistency steps")
    train: TrainConfig = Field(default_factory=TrainConfig)


class DesignParams(StepParams):
    checkpoint: Path
    targets_file: Path
    out_dir: Path
    n_candidates: int = Field(16, ge=1)
    n_simulate: int = Field(2, ge=1)
    sampler: Optional[SamplerConfig] = None
    physics_guidance: float = Field(0.0, ge=0, description="physics-guidance scale (0 = off)")
    seed: int = 0


class RecipeCheckParams(StepParams):
    design_dir: Path
    seeds: int = Field(4, ge=1, description="fresh process seeds per hit design's recipe")
    seed: int = 0


class FeedbackParams(StepParams):
    design_dir: Path
    iteration: int = Field(..., ge=0)
    acquire_per_target: int = Field(8, ge=0)
    seed: int = 0
    source_run: str = "loop"
    # the acquisitions are simulated as SimulateParams' are: in chunks, optionally on Dask
    chunk: int = Field(256, ge=1, description="acquired samples per commit")
    workers: int = Field(1, ge=1, description="oracle processes for the acquisitions (> 1: a local Dask cluster)")
    dask_address: Optional[str] = Field(None, description="an existing Dask scheduler for the acquisitions")


# --------------------------------------------------------------------------- helpers
def write_json(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str)))


def open_dataset(params: StepParams, modality=None) -> DatasetStore:
    """The step's dataset, created if missing. Its manifest records the modality's options
    (e.g. a 16² grid), so that `genmat train/design --dataset` rebuild the same modality."""
    modality = modality or params.build_modality()
    simulator = dict(modality.simulator_settings())
    # an imported dataset names its own; a path option is kept as its string
    simulator.setdefault("modality_options", json.loads(json.dumps(dict(params.modality_options), default=str)))
    return DatasetStore.create(
        params.dataset,
        modality=modality.name,
        schema=modality.schema,
        sample_shape=modality.sample_shape,
        simulator=simulator,
        exist_ok=True,
    )


def _training_tensors(store: DatasetStore, modality):
    ds = SampleDataset(store, modality.schema)
    return ds.as_tensors()


def fit_surrogate(store: DatasetStore, modality, samples: torch.Tensor | None = None) -> PropertySurrogate | None:
    """Fit the screening surrogate on the whole dataset (``samples``: already loaded ones);
    None for a modality without screening features (its simulator check is cheap)."""
    table = store.table()
    names = list(modality.target_fields)
    samples = torch.as_tensor(store.load()) if samples is None else samples
    features = modality.screening_features(samples)
    if features is None:
        return None
    return PropertySurrogate.fit(features, table[names].to_numpy(dtype=float), names)


def fit_recipe_head(table: pd.DataFrame, modality, samples: torch.Tensor) -> RecipeHead | None:
    """The recipe head on the dataset's samples whose processing is known in full (simulated
    rows; relabelled generated samples have none). None when the modality offers no recipe
    coordinates or fewer than 10 such rows exist."""
    names = list(modality.schema.subset("processing"))
    known = table[names].notna().all(axis=1).to_numpy() if names else np.zeros(len(table), bool)
    if known.sum() < 10:
        return None
    return RecipeHead.train(modality, samples[torch.as_tensor(np.flatnonzero(known))],
                            table.loc[known, names].reset_index(drop=True))


# ----------------------------------------------------------------------------- steps
def simulate_step(p: SimulateParams, progress: bool = True) -> dict:
    """Run the oracle on n processing conditions and append them to the dataset, in chunks.

    The processing is fixed first (prior draws from ``seed``, or the file), then simulated
    and committed ``chunk`` rows at a time, each chunk under the batch key
    ``<key>/rows<lo>-<hi>`` (a run of one chunk keeps the plain ``<key>``). A crash or a
    full disk loses at most the chunk in flight; run again, the step simulates only the
    rows no committed chunk covers (whatever chunk size the first run used), so nothing is
    duplicated. The noise of a chunk comes from ``seed`` and its first row, so the result
    does not depend on where a run was interrupted. ``simulator_calls`` counts the rows of
    every chunk of this step in the store, the ones a crashed run committed included."""
    modality = p.build_modality()
    # a bad processing file is refused before the dataset is created: nothing left behind
    processing = (modality.schema.validate_frame(read_table(p.processing_file)) if p.processing_file is not None
                  else None)
    if p.dask_address is not None:  # a scheduler that is not there: one line, before the dataset is created
        _probe_scheduler(p.dask_address)
    store = open_dataset(p, modality)
    if processing is not None:
        digest = hashlib.sha256(pd.util.hash_pandas_object(processing, index=False).to_numpy().tobytes()).hexdigest()
        key = p.batch_key or f"simulate/file-{digest[:16]}/seed{p.seed}"
    else:
        key = p.batch_key or f"simulate/seed{p.seed}/n{p.n}"
    n = len(processing) if processing is not None else p.n
    if processing is None:
        processing = lambda: modality.draw_processing(p.n, np.random.default_rng(p.seed))  # noqa: E731 (drawn if needed)
    added, calls = simulate_into(store, modality, p, key, n, processing, seed=p.seed, iteration=p.iteration,
                                 progress=progress)
    return {"added": added, "total": len(store), "batch_key": key, "simulator_calls": calls}


def simulate_into(store: DatasetStore, modality, p: StepParams, key: str, n: int,
                  processing: pd.DataFrame | Callable[[], pd.DataFrame], *, seed: int, iteration: int,
                  progress: bool = True) -> tuple[int, int]:
    """Simulate the n rows of ``processing`` (a frame, or a function making it when any row
    is missing) into ``store`` under batch key ``key``, ``p.chunk`` rows per commit, on
    ``p.workers`` Dask workers or the scheduler at ``p.dask_address``. Rows a committed
    chunk covers are not simulated again; a chunk's noise comes from ``seed`` and its first
    row. Returns (rows added now, rows of ``key`` in the store = the step's oracle calls)."""
    done = _committed_rows(store, key, n)
    todo = _chunks(_uncovered(done, n), p.chunk)
    if todo and callable(processing):
        processing = processing()
    added = 0
    jobs = [(lo, hi, processing.iloc[lo:hi].reset_index(drop=True),
             seed if lo == 0 else int(np.random.SeedSequence([seed, lo]).generate_state(1)[0])) for lo, hi in todo]
    with oracle_pool(p.workers if len(jobs) > 1 else 1, p.dask_address) as pool:
        for i, (lo, hi, samples, rows) in enumerate(_run_chunks(pool, modality, p, jobs, progress)):
            if len(todo) > 1 or done:
                log.info("simulated rows %d-%d of %d (chunk %d of %d)", lo, hi, n, i + 1, len(todo))
            chunk_key = key if (lo, hi) == (0, n) else f"{key}/rows{lo}-{hi}"
            added += len(store.append(samples, rows, provenance="simulated", iteration=iteration,
                                      source_run=p.source_run, batch_key=chunk_key))
    if not todo:
        log.info("dataset %s already holds batch %r; nothing simulated", store.path, key)
    return added, sum(hi - lo for lo, hi in _committed_rows(store, key, n))


@contextlib.contextmanager
def oracle_pool(workers: int = 1, address: str | None = None):
    """A Dask client to fan oracle chunks out to: a LocalCluster of ``workers`` single-threaded
    worker processes, or the scheduler at ``address``; None (simulate in this process) for one
    worker and no address. The cluster is closed on exit, the client too."""
    if address is None and workers <= 1:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    if address is not None:
        _probe_scheduler(address)  # nothing listening: one line now, not a 10 s connect timeout
    try:
        if address is not None:
            client = Client(address, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.WARNING)
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ServiceError(f"Dask scheduler {address} is unreachable ({type(exc).__name__}: {exc}); start it "
                           "(dask scheduler, dask worker ADDRESS) or leave out --dask-address for a local cluster") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _probe_scheduler(address: str, timeout: float = 3.0) -> None:
    """ServiceError unless something listens at the Dask scheduler ``address`` (tcp://HOST:PORT)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InputError(f"dask_address = {address!r} is not a scheduler address", field="dask_address",
                         value=address, allowed="tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ServiceError(f"Dask scheduler {address} is unreachable ({exc.strerror or type(exc).__name__}); start "
                           "it (dask scheduler; dask worker ADDRESS) or leave out --dask-address for a local "
                           "cluster") from None


def simulate_chunk(modality: str, options: dict, processing: pd.DataFrame, seed: int):
    """One chunk of oracle work, as a Dask task runs it in a worker process (one thread:
    the workers share the machine's cores)."""
    torch.set_num_threads(1)
    samples, rows = get_modality(modality, **options).simulate(processing, seed=seed)
    return samples, rows


def _run_chunks(pool, modality, p: SimulateParams, jobs, progress: bool):
    """(lo, hi, samples, rows) per job, in job order. With a Dask ``pool`` every chunk is
    submitted at once and runs on the workers; results are taken in order, so the dataset's
    rows and sample ids do not depend on which worker finished first, or on their number."""
    if pool is None:
        for lo, hi, processing, seed in jobs:
            yield (lo, hi, *modality.simulate(processing, seed=seed, progress=progress))
        return
    futures = [pool.submit(simulate_chunk, p.modality, dict(p.modality_options), processing, seed, pure=False)
               for _, _, processing, seed in jobs]
    try:
        for (lo, hi, _, _), future in zip(jobs, futures):
            yield (lo, hi, *future.result())
    finally:
        for future in futures:
            future.cancel()


def _committed_rows(store: DatasetStore, key: str, n: int) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) of a simulate step's batch ``key`` that the store holds."""
    out = []
    for k in store.batch_keys:
        if k == key:
            out.append((0, n))
        elif k.startswith(key + "/rows"):
            lo, _, hi = k[len(key) + 5:].partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) < int(hi) <= n:
                out.append((int(lo), int(hi)))
    return sorted(out)


def _uncovered(done: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    gaps, at = [], 0
    for lo, hi in sorted(done):
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    return gaps + ([(at, n)] if at < n else [])


def _chunks(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, hi)) for lo, hi in ranges for a in range(lo, hi, size)]


def train_step(p: TrainParams, progress: bool = True, callbacks=()) -> dict:
    """Train (or warm-start and fine-tune) the generator on the whole dataset."""
    modality = p.build_modality()
    store = open_dataset(p, modality)
    generator = Generator(p.generator, modality.schema, modality.sample_shape, device=p.train.device)
    digest = store.digest  # before reading: what these tensors are, even if another writer appends meanwhile
    data = _training_tensors(store, modality)
    penalty = modality.physics_penalty if p.generator.penalties else None
    offered = tuple(modality.penalty_terms)
    if p.generator.penalties and set(p.generator.penalties) - set(offered):
        raise InputError(f"generator penalties {p.generator.penalties}: modality {modality.name!r} offers "
                         f"{', '.join(offered) or 'no physics penalties'}")
    result = generator.fit(data, p.train, checkpoint_path=p.checkpoint, warm_start=p.warm_start,
                           callbacks=callbacks, progress=progress, penalty=penalty)
    return {
        "checkpoint": str(p.checkpoint),
        "step": result.step,
        "final_loss": result.losses[-1][1] if result.losses else float("nan"),
        "losses": result.losses,
        "seconds": result.seconds,
        "n_train": int(data[0].shape[0]),
        "dataset": str(p.dataset),
        "dataset_digest": digest,  # what was trained on (MLflow dataset lineage)
        "n_parameters": generator.n_parameters,
        "method": generator.config.method,
        **generator.diagnostics,  # e.g. the VAE's active units and KL per dimension
    }


def reflow_step(p: ReflowParams, progress: bool = True) -> dict:
    """Rectified-flow reflow: pairs from the trained flow for the dataset's conditions, retrain."""
    modality = p.build_modality()
    store = open_dataset(p, modality)
    generator = Generator.from_checkpoint(p.checkpoint, device=p.train.device)
    result = generator.reflow(_training_tensors(store, modality), p.train, n_pairs=p.pairs, steps=p.ode_steps,
                              seed=p.seed, checkpoint_path=p.out, progress=progress)
    return {"checkpoint": str(p.out), "step": generator.step, "pairs": p.pairs, "seconds": result.seconds,
            "final_loss": result.losses[-1][1] if result.losses else float("nan")}


def distill_step(p: DistillParams, progress: bool = True) -> dict:
    """Consistency distillation of a trained diffusion generator on the dataset."""
    modality = p.build_modality()
    store = open_dataset(p, modality)
    teacher = Generator.from_checkpoint(p.checkpoint, device=p.train.device)
    student, result = teacher.distill(_training_tensors(store, modality), p.train, n_grid=p.n_grid,
                                      guidance=p.guidance, sampler_steps=p.sampler_steps, checkpoint_path=p.out,
                                      progress=progress)
    return {"checkpoint": str(p.out), "step": student.step, "seconds": result.seconds,
            "final_loss": result.losses[-1][1] if result.losses else float("nan")}


def design_step(p: DesignParams, progress: bool = True) -> dict:
    """Sample, validate, screen and simulate candidates for the targets; write the report."""
    out = Path(p.out_dir)
    done = out / "metrics.json"
    digest = _design_digest(p)
    if done.exists():
        metrics = json.loads(done.read_text())
        if metrics.get("params_digest") == digest:
            log.info("design %s already finished; reading it back", out)
            return metrics
        log.info("design %s was made with other parameters, model or targets; designing again", out)
        done.unlink()
    out.mkdir(parents=True, exist_ok=True)
    modality = p.build_modality()
    generator = Generator.from_checkpoint(p.checkpoint)
    targets = read_table(p.targets_file)
    targets = targets[[c for c in targets.columns if c in modality.schema.names]]
    store = open_dataset(p, modality) if Path(p.dataset).exists() else None
    training, ids, surrogate, head = None, None, None, None
    if store is not None and len(store):
        table = store.table()
        training, ids = torch.as_tensor(store.load()), table["sample_id"].to_numpy()
        surrogate = fit_surrogate(store, modality, training)
        head = fit_recipe_head(table, modality, training)
    result = design(
        generator, modality, targets, n_candidates=p.n_candidates, n_simulate=p.n_simulate, surrogate=surrogate,
        training_samples=training, training_ids=ids, sampler=p.sampler, seed=p.seed, progress=progress,
        physics_guidance=p.physics_guidance, recipe_head=head,
    )
    save_design(result, out)
    metrics = {**result.metrics, "out_dir": str(out), "params_digest": digest}
    if surrogate is not None:
        metrics.update({f"surrogate_rmse_{n}": float(r) for n, r in zip(surrogate.names, surrogate.rmse)})
    write_json(metrics, done)  # written last: marks the step complete
    return metrics


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _design_digest(p: DesignParams) -> str:
    """What a design depends on: its settings and the bytes of its model and targets (not
    how the paths are spelled, so a resume from another directory still finds it done)."""
    settings = p.model_dump(mode="json", exclude={"checkpoint", "targets_file", "out_dir", "dataset"})
    parts = [json.dumps(settings, sort_keys=True, default=str), _file_digest(Path(p.checkpoint)),
             _file_digest(Path(p.targets_file))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
    df = df.copy()
    df.attrs = {}  # validators keep their settings in attrs; parquet wants JSON there
    atomic_write(path, df.to_parquet)


def save_design(result: DesignResult, out: Path) -> None:
    _to_parquet(result.report, out / "report.parquet")
    _to_parquet(result.designs, out / "designs.parquet")
    atomic_write(out / "samples.npy", lambda tmp: np.save(tmp, result.samples.numpy()))


def load_design(out: Path) -> DesignResult:
    out = Path(out)
    metrics = json.loads((out / "metrics.json").read_text())
    return DesignResult(
        pd.read_parquet(out / "report.parquet"),
        torch.as_tensor(np.load(out / "samples.npy")),
        pd.read_parquet(out / "designs.parquet"),
        metrics,
    )


def recipe_check_step(p: RecipeCheckParams, progress: bool = True) -> dict:
    """Re-simulate the recipe of every hit design with ``seeds`` fresh process seeds and
    check the products against the design's target: how often the recipe holds. Writes
    ``recipes.parquet`` (one row per hit design: target, recipe, ``holds`` in [0, 1]) in the
    design directory; every simulation is an oracle call. Idempotent (read back when done)."""
    out = Path(p.design_dir) / "recipes.parquet"
    modality = p.build_modality()
    names = [f"recipe_{c}" for c in modality.schema.subset("processing")]
    designs = load_design(p.design_dir).designs
    if out.exists():
        table = pd.read_parquet(out)
    elif not names or not all(c in designs for c in names):
        table = pd.DataFrame(columns=["target_id", "holds"])
    else:
        hits = designs[designs["hit"].astype(bool)].reset_index(drop=True)
        rep = hits.loc[hits.index.repeat(p.seeds)].reset_index(drop=True)
        targets = rep[[c for c in rep.columns if c.startswith("target_") and c != "target_id"]]
        targets = targets.rename(columns=lambda c: c.removeprefix("target_"))
        holds = np.zeros(0)
        if len(rep):
            samples, _ = modality.simulate(rep[names].rename(columns=lambda c: c.removeprefix("recipe_")),
                                           seed=p.seed, progress=progress)
            ok = modality.simulator_checks(samples, targets)["sim_pass"].to_numpy(bool)
            holds = ok.reshape(len(hits), p.seeds).mean(axis=1)
        table = hits[["target_id", *names]].assign(holds=holds)
        _to_parquet(table, out)
    holds = table["holds"].to_numpy(float)
    return {"simulator_calls": int(len(table) * p.seeds), "recipe_hold_rate": float(holds.mean()) if len(holds)
            else float("nan"), "robust_recipes": float((holds >= 0.75).sum()), "recipes_checked": float(len(table))}


def feedback_step(p: FeedbackParams, progress: bool = True) -> dict:
    """Relabel simulated, physically valid failures with their simulated properties and
    simulate new samples near the failing targets; append both to the dataset."""
    modality = p.build_modality()
    store = open_dataset(p, modality)
    result = load_design(p.design_dir)
    rep = result.report
    passed = rep["sim_pass"] if "sim_pass" in rep else pd.Series(False, index=rep.index)
    fail = rep["simulated"].astype(bool) & rep["physics_pass"].astype(bool) & ~passed.fillna(False).astype(bool)
    counts = {"relabelled": 0, "acquired": 0, "simulator_calls": 0}
    key = f"iter{p.iteration}/relabel"
    if modality.relabel_failures and fail.any() and not store.has_batch(key):
        idx = np.flatnonzero(fail.to_numpy())
        sim_cols = {c: c[len("sim_"):] for c in rep.columns if c.startswith("sim_") and c != "sim_pass"}
        rows = rep.loc[idx, list(sim_cols)].rename(columns=sim_cols).reset_index(drop=True)
        rows = rows[[c for c in rows.columns if c in store.columns]]
        store.append(result.samples[torch.as_tensor(idx)], rows, provenance="relabelled", iteration=p.iteration,
                     source_run=p.source_run, batch_key=key)
        counts["relabelled"] = len(idx)
    if modality.hit_metric == "candidate_hit_rate":  # every failed candidate counts: its target gets data
        missed = pd.Series(sorted(rep.loc[rep["verdict"] != "hit", "target_id"].unique()), dtype="int64")
    else:  # the target's returned design missed
        missed = result.designs.loc[~result.designs["hit"].astype(bool), "target_id"]
    key = f"iter{p.iteration}/acquire"
    if len(missed) and p.acquire_per_target:
        targets = rep.drop_duplicates("target_id").set_index("target_id").loc[missed]
        targets = targets[[c for c in targets.columns if c.startswith("target_")]]
        targets.columns = [c[len("target_"):] for c in targets.columns]
        table = store.table()
        mine = table["batch_key"].astype(str).str.match(rf"{re.escape(key)}(/rows\d+-\d+)?$")
        # chosen from the data without this step's own acquisitions: a resumed step chooses the same rows
        processing = acquire_near(targets, table[~mine], modality, n_per_target=p.acquire_per_target,
                                  rng=np.random.default_rng(p.seed))
        added, calls = simulate_into(store, modality, p, key, len(processing), processing, seed=p.seed,
                                     iteration=p.iteration, progress=progress)
        counts["acquired"], counts["simulator_calls"] = added, calls
    counts["total"] = len(store)
    return counts
