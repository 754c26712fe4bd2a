"""Design: sample candidates for targets, check them, screen, simulate, pick one per target.

For each target the generator proposes ``n_candidates`` (optionally steered by a
noise-aware ``regressor``: classifier guidance); every candidate gets the cheap physics
checks and a novelty score (and, with ``ood_flow``, a normalizing flow's likelihood as an
out-of-distribution score); the surrogate (or, without one, the regressor) ranks the
plausible, novel ones and only the best ``n_simulate`` go to the simulator. The returned
design of a target is its best simulated candidate, and it is a **hit** when it
passes the physics checks, is not a copy of training data, and its simulated
properties are within tolerance of the target. Nothing is hidden: the report has
a row for every candidate (verdict ``unscreened`` when the simulator never saw it), and
the metrics count simulator calls and candidates per hit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from genmat.errors import InputError
from genmat.generate import Generator, SamplerConfig
from genmat.loop.screening import PropertySurrogate, RecipeHead
from genmat.tasks import TargetSet
from genmat.validate import build_report, novelty_check

log = logging.getLogger(__name__)


@dataclass
class DesignResult:
    report: pd.DataFrame  # one row per candidate
    samples: torch.Tensor  # (n_targets · n_candidates, *sample_shape), contiguous per target
    designs: pd.DataFrame  # one row per target: its returned design
    metrics: dict[str, float] = field(default_factory=dict)


def design(
    generator: Generator,
    modality,
    targets: pd.DataFrame,
    *,
    n_candidates: int = 16,
    n_simulate: int = 2,
    surrogate: PropertySurrogate | None = None,
    training_samples: torch.Tensor | None = None,
    training_ids: np.ndarray | None = None,
    sampler: SamplerConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    regressor=None,
    ood_flow=None,
    physics_guidance: float = 0.0,
    recipe_head: RecipeHead | None = None,
) -> DesignResult:
    """Propose, check and pick designs for ``targets`` (one row per target, physical units).

    ``physics_guidance``: scale of physics guidance (0 = off): every sampling step steers the
    denoised estimate toward the targets through the modality's differentiable physics model
    (``modality.physics_model("cheap")``), misfit in the units of ``modality.guidance_tolerances``.
    The candidates are then screened by the same model (:func:`physics_screen`). Its
    evaluations are counted in the metrics (``physics_evaluations``), apart from the
    simulator calls.

    ``recipe_head``: every candidate gets the processing that should make it (report
    columns ``recipe_<field>``), a claim no simulator has checked yet."""
    if n_candidates < 1 or n_simulate < 1:
        raise InputError(f"n_candidates = {n_candidates} and n_simulate = {n_simulate} must be ≥ 1")
    targets = modality.schema.validate_frame(targets.reset_index(drop=True))
    fields = [c for c in targets.columns if targets[c].notna().any()]
    physics_loss, counter = None, {"evaluations": 0}
    if physics_guidance > 0:
        sampler = (sampler or generator.config.sampler).replace(physics_scale=float(physics_guidance))
        physics_loss = physics_misfit(modality, targets, n_candidates, counter)
    samples = generator.sample_conditions(
        targets, n_per_condition=n_candidates, sampler=sampler, seed=seed, progress=progress, regressor=regressor,
        physics=physics_loss,
    )
    rep = targets.loc[targets.index.repeat(n_candidates)].reset_index(drop=True)
    meta = pd.DataFrame(
        {
            "target_id": np.repeat(np.arange(len(targets)), n_candidates),
            "candidate": np.tile(np.arange(n_candidates), len(targets)),
        }
    )
    meta = pd.concat([meta, rep[fields].add_prefix("target_")], axis=1)
    physics = modality.physics_checks(samples, rep[fields])
    frames = [physics]
    novel_ok = np.ones(len(meta), dtype=bool)
    if training_samples is not None and len(training_samples):
        novelty = novelty_check(samples, training_samples, modality.novelty, training_ids=training_ids)
        frames.append(novelty)
        novel_ok = novelty["novel_pass"].to_numpy(bool)

    if ood_flow is not None and training_samples is not None and len(training_samples):
        # the normalizing flow's exact likelihood as an out-of-distribution score (not a check)
        from genmat.methods import ood_scores

        values, mask = ood_flow.schema.encode(rep[fields])
        ref = training_samples[:1024]
        frames.append(ood_scores(ood_flow.model, samples, ref, values, mask))

    # Screen: rank plausible, novel candidates of each target by predicted error.
    score = np.zeros(len(meta))
    checked = [c for c in fields if c in modality.checked_fields]  # what the simulator check verifies
    if physics_loss is not None:  # guided: screened by the same physics model
        score = physics_screen(modality, targets, samples, n_candidates, counter)
    elif surrogate is not None and checked:
        wanted = rep.reindex(columns=list(surrogate.names)).to_numpy(dtype=float)
        score = surrogate.score(modality.screening_features(samples), wanted)
    elif regressor is not None and checked:  # the noise-aware regressor at t = 0 as the screen
        predicted = regressor.predict_frame(samples)[checked].to_numpy(dtype=float)
        wanted = rep[checked].to_numpy(dtype=float)
        span = np.array([modality.schema.field(c).high - modality.schema.field(c).low for c in checked])
        score = np.nanmax(np.abs(predicted - wanted) / span, axis=1)  # largest error, in units of the range
    plausible = physics["physics_pass"].to_numpy(bool) & novel_ok
    score = np.where(plausible, score, np.inf)
    rank = pd.Series(score).groupby(meta["target_id"]).rank(method="first").to_numpy()
    selected = (rank <= n_simulate) & plausible
    screen = pd.DataFrame({"screen_score": score, "screen_rank": rank.astype(int), "simulated": selected})
    frames.append(screen)

    sim = pd.DataFrame(index=range(len(meta)))
    if checked and selected.any():
        idx = np.flatnonzero(selected)
        result = modality.simulator_checks(samples[torch.as_tensor(idx)], rep.loc[idx, checked])
        result = result.drop(columns=[c for c in result.columns if c.startswith("target_")])  # in meta already
        result.index = idx
        sim = sim.join(result)
    frames.append(sim)
    if recipe_head is not None:
        frames.append(recipe_head.recipes(modality, samples).add_prefix("recipe_"))
    report = build_report(meta, *frames)
    designs = _pick_designs(report)
    metrics = {**_metrics(report, designs, n_candidates), **modality.design_metrics(report, designs)}
    metrics["physics_evaluations"] = float(counter["evaluations"])
    log.info("design: %d/%d targets hit (%d simulator calls)", int(designs["hit"].sum()), len(designs), int(selected.sum()))
    return DesignResult(report, samples, designs, metrics)


def physics_misfit(modality, targets: pd.DataFrame, n_candidates: int, counter: dict | None = None):
    """``loss(x̂0, rows) -> (B,)`` for physics guidance of ``n_candidates`` samples per target
    row: the modality's cheap differentiable physics model, judged by
    :meth:`genmat.tasks.TargetSet.soft_loss` in the modality's guidance tolerances. Counts one
    evaluation (forward + adjoint) per sample per call in ``counter["evaluations"]``."""
    model, tset = _physics_targets(modality, targets)
    counter = counter if counter is not None else {"evaluations": 0}

    def loss(x0: torch.Tensor, rows: slice) -> torch.Tensor:
        counter["evaluations"] = counter.get("evaluations", 0) + x0.shape[0]
        target = np.arange(rows.start, rows.start + x0.shape[0]) // n_candidates
        return _misfit(tset, model(x0, target), target)

    return loss


def _misfit(tset: TargetSet, values: dict, target: np.ndarray) -> torch.Tensor:
    """½ Σ d² of the targets (:meth:`TargetSet.soft_loss`) plus the model's own
    ``physics_prior`` term when it returns one (a sample's physics apart from the targets)."""
    loss = tset.soft_loss(values, target)
    return loss + values["physics_prior"] if "physics_prior" in values else loss


def _physics_targets(modality, targets: pd.DataFrame):
    """The modality's cheap physics model for these targets, and the targets in its
    guidance tolerances."""
    targets = targets.reset_index(drop=True)
    model = modality.physics_model("cheap", targets)
    tolerances = getattr(modality, "guidance_tolerances", None) or getattr(modality, "design_tolerances", {})
    guided = [c for c in targets.columns if c in tolerances and targets[c].notna().any()]
    if model is None or not guided:
        raise InputError(f"physics guidance: the {modality.name} modality has no differentiable physics model "
                         f"of the target fields {list(targets.columns)}")
    return model, TargetSet.from_frame(targets[guided], tolerances)


def physics_screen(modality, targets: pd.DataFrame, samples: torch.Tensor, n_candidates: int,
                   counter: dict, batch: int = 256) -> np.ndarray:
    """The screen of guided designs: each candidate's misfit (½ Σ d², d in tolerance units)
    as the cheap physics model predicts it — the model the guidance steered by, far closer
    to the oracle than a surrogate on descriptors. One evaluation per candidate (counted)."""
    model, tset = _physics_targets(modality, targets)
    out = []
    with torch.no_grad():
        for start in range(0, samples.shape[0], batch):
            x = samples[start:start + batch]
            counter["evaluations"] = counter.get("evaluations", 0) + x.shape[0]
            rows = np.arange(start, start + x.shape[0]) // n_candidates
            out.append(_misfit(tset, model(x, rows), rows).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _pick_designs(report: pd.DataFrame) -> pd.DataFrame:
    """One row per target: the simulated candidate that hits, else the simulated one with
    the smallest error, else (nothing reached the simulator) the best-ranked candidate,
    whose ``reason`` says why it failed."""
    rep = report.copy()
    err_cols = [c for c in rep.columns if c.endswith(("_rel_err", "_abs_err"))]
    rep["_err"] = rep[err_cols].abs().max(axis=1) if err_cols else 0.0
    passed = rep["sim_pass"] if "sim_pass" in rep else pd.Series(False, index=rep.index)
    rep["hit"] = rep["simulated"].astype(bool) & passed.fillna(False).astype(bool) & rep["physics_pass"].astype(bool)
    if "novel_pass" in rep:
        rep["hit"] &= rep["novel_pass"].astype(bool)
    order = ["target_id", "hit", "simulated", "_err", "screen_rank"]
    best = rep.sort_values(order, ascending=[True, False, False, True, True]).groupby("target_id").head(1)
    return best.drop(columns="_err").reset_index(drop=True)


def _metrics(report: pd.DataFrame, designs: pd.DataFrame, n_candidates: int) -> dict[str, float]:
    hits = int(designs["hit"].sum())
    sims = int(report["simulated"].sum())
    candidate_hits = report["verdict"].eq("hit").to_numpy()
    metrics = {
        "hit_rate": hits / max(1, len(designs)),
        "candidate_hit_rate": float(candidate_hits.mean()) if len(report) else 0.0,
        "hits": float(hits),
        "targets": float(len(designs)),
        "candidates": float(len(report)),
        "simulator_calls": float(sims),
        "physics_pass_rate": float(report["physics_pass"].mean()),
        "simulator_calls_per_hit": sims / hits if hits else float("inf"),
        "candidates_per_hit": len(report) / hits if hits else float("inf"),
    }
    for col in designs.columns:  # every relative error the simulator check reports: <field>_mape
        if col.endswith("_rel_err") and designs[col].notna().any():
            metrics[f"{col.removesuffix('_rel_err')}_mape"] = float(designs[col].abs().mean())
    if "novelty" in report:
        metrics["novelty_mean"] = float(report["novelty"].mean())
        metrics["copy_rate"] = float(1 - report["novel_pass"].mean())
    return metrics
