"""The contract every modality fulfils (:class:`Modality`) and a base class with the
optional parts filled in (:class:`ModalityBase`), for built-in and plug-in modalities alike
(docs/modalities.md)."""

from __future__ import annotations

from dataclasses import is_dataclass, replace
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
import torch

from genmat.conditions import ConditionError, ConditionSchema
from genmat.errors import InputError
from genmat.validate import NoveltyConfig


class Modality(Protocol):
    name: str  # e.g. "spinodal"; names the MLflow experiment and registered model
    sample_shape: tuple[int, ...]  # (C, *spatial)
    schema: ConditionSchema  # every field a user may condition on
    target_fields: tuple[str, ...]  # the fields a default (held-out) design target gives
    checked_fields: tuple[str, ...]  # the condition fields its simulator check verifies
    hit_metric: str  # design metric the loop reports and stops on: "hit_rate" or "candidate_hit_rate"
    relabel_failures: bool  # feed failed candidates back with their measured labels
    loop_defaults: dict  # LoopConfig fields whose demo defaults differ for this modality
    novelty: "NoveltyConfig"  # copy-check settings for its samples
    any_size: bool  # validators accept samples of other spatial sizes than sample_shape
    penalty_terms: tuple[str, ...]  # optional: the terms physics_penalty returns (physics-penalised training)
    design_tasks: tuple  # optional: named design problems (genmat.tasks.DesignTask) of this modality
    design_tolerances: dict  # optional: {field: genmat.tasks.Tolerance} of point targets (recipes, guidance)
    guidance_tolerances: dict  # optional: the tolerances of physics guidance's misfit (default: design_tolerances)
    tolerance_bands: dict  # optional: {field: ("rel" | "abs", tol)} bands of target-vs-simulated pictures
    report_metrics: tuple[str, ...]  # optional: design metrics of its own that the loop's reports show

    def simulator_settings(self) -> dict:
        """JSON-safe settings and version of the oracle (stored in the dataset manifest)."""

    def draw_processing(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """n processing conditions drawn from the prior over the processing fields."""

    def perturb(self, processing: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        """Conditions near the given simulator inputs (acquisition around failing targets)."""

    def simulate(self, processing: pd.DataFrame, *, seed: int, progress: bool = False) -> tuple[torch.Tensor, pd.DataFrame]:
        """Oracle: samples (n, *sample_shape) and one row per sample with every
        condition field (processing as given, properties as measured) and extras."""

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        """Measured properties (condition property fields + extras), one row per sample."""

    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        """Cheap plausibility checks, one row per sample, with a boolean ``physics_pass``."""

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        """Oracle check of each sample against its target, with a boolean ``sim_pass``."""

    def physics_model(self, fidelity: str = "cheap", conditions: pd.DataFrame | None = None):
        """Optional: a differentiable ``model(samples, index=None) -> {field: (B,) tensor}`` for
        physics guidance ("cheap" or "full" fidelity), or None. ``conditions`` are the targets
        the samples are drawn for and ``index`` ``(B,)`` each sample's row among them, for a
        model that measures against its target's conditions (spectra: the phase patterns at
        the target's size, strain and temperature); a model that needs none ignores both. A
        model may add ``physics_prior`` ``(B,)``: a misfit of the sample's own physics (in the
        targets' units, ½ d²) that guidance and the physics screen add to the targets'."""

    def physics_penalty(self, x0_hat: torch.Tensor, x0: torch.Tensor, values: torch.Tensor,
                        mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Optional: differentiable physics penalties ``{term: (B,)}`` of denoised estimates
        x̂0 against their training samples x0 and normalised conditions (physics-penalised
        training, ``GeneratorConfig.penalties``)."""

    def screening_features(self, samples: torch.Tensor) -> np.ndarray | None:
        """Cheap features (n, d) from which a surrogate predicts the target properties
        (None: no screening, every plausible candidate goes to the simulator check)."""

    def recipe_coordinates(self, processing: pd.DataFrame) -> np.ndarray | None:
        """Optional: the coordinates (n, k) of processing that its product determines (the
        recipe head regresses them on ``screening_features``; None: designs carry no recipe).
        Processing that makes the same product in law must map to the same coordinates."""

    def processing_from_coordinates(self, coords: np.ndarray) -> pd.DataFrame:
        """Optional, with ``recipe_coordinates``: one processing row (simulator inputs, inside
        their ranges) per row of ``coords`` that realises those coordinates."""

    def title(self, row, prefix: str = "") -> str:
        """A short picture title for a condition row (columns ``prefix + field``)."""

    def candidate_title(self, row) -> str:
        """A short picture title for one report row (a checked candidate)."""

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """A matplotlib Figure showing the samples (with ``conditions``: against their targets)."""

    def design_metrics(self, report: pd.DataFrame, designs: pd.DataFrame) -> dict[str, float]:
        """Optional: modality-specific metrics of one design step (added to the generic ones)."""

    def task_options(self, tolerances: dict) -> dict:
        """Optional: modality options under which the simulator check uses a design task's
        tolerances ``{field: genmat.tasks.Tolerance}`` (``genmat loop --task``)."""


#: What a modality must define itself; everything else of :class:`Modality` has a default
#: in :class:`ModalityBase`.
REQUIRED = ("name", "sample_shape", "schema", "target_fields", "checked_fields", "simulator_settings",
            "draw_processing", "perturb", "simulate", "measure", "physics_checks", "simulator_checks")


def missing_members(modality) -> list[str]:
    """The members of :class:`Modality` that ``modality`` lacks (empty: it conforms)."""
    members = {*Modality.__annotations__, *(n for n in vars(Modality) if not n.startswith("_"))}
    return sorted(m for m in members if not hasattr(modality, m))


def configured(config, overrides: dict, modality: str):
    """A modality's ``config`` (a dataclass) with keyword ``overrides``: an unknown name is an
    InputError naming the allowed ones; a dict value updates a nested dataclass field by
    field (what JSON ``modality_options`` give)."""
    known = config.__dataclass_fields__
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise InputError(f"{modality} options {unknown} are not known; allowed: {', '.join(known)}",
                         field="modality_options", value=unknown, allowed=", ".join(known))
    values = {}
    for name, value in overrides.items():
        default = getattr(config, name)
        values[name] = replace(default, **value) if isinstance(value, dict) and is_dataclass(default) else value
    return replace(config, **values)


def arrhenius_anneal(work: np.ndarray, prefactor: float, q_over_r: float, temperature_range, time_range):
    """An isothermal anneal (T, t) that does ``work`` = rate(T) · t with rate(T) = prefactor ·
    exp(−q_over_r / T) (a dimensionless time, Monte Carlo steps, …): the temperature at the
    middle of its range and t = work / rate(T); where that t leaves its range, t at the nearer
    end and the temperature that gives the work with it, T = q_over_r / ln(prefactor t / work)
    (clipped: work beyond what the box reaches gets the nearest corner). Returns (T, t)."""
    (T_lo, T_hi), (t_lo, t_hi) = temperature_range, time_range
    work = np.asarray(work, dtype=float)
    rate = lambda T: prefactor * np.exp(-q_over_r / T)  # noqa: E731
    T = np.full(len(work), 0.5 * (T_lo + T_hi))
    t = work / rate(T)
    t_end = np.clip(t, t_lo, t_hi)
    moved = (t_end != t) & (work > 0) & (t_end > 0)
    T[moved] = q_over_r / np.log(prefactor * t_end[moved] / work[moved])
    T = np.clip(T, T_lo, T_hi)
    return T, np.clip(work / rate(T), t_lo, t_hi)


def simplex_feasibility(fractions: Sequence[str], tol: float, noun: str):
    """A schema feasibility check for fraction fields that form a simplex: they sum to
    1 ± ``tol`` when all are given, to at most 1 + ``tol`` when some are (``noun``: e.g.
    "phase fractions", named in the error)."""
    fractions = tuple(fractions)

    def feasible(cond: dict[str, float]) -> None:
        given = [cond[f] for f in fractions if f in cond]
        if not given:
            return
        total = float(sum(given))
        if len(given) == len(fractions) and abs(total - 1) > tol:
            raise ConditionError(" + ".join(fractions), total, f"1 ± {tol:g} ({noun} sum to 1)",
                                 f"is the sum of the {noun}; it must be")
        if total > 1 + tol:
            raise ConditionError(" + ".join(f for f in fractions if f in cond), total, f"≤ 1 + {tol:g}",
                                 f"is the sum of the given {noun}; it must be")

    return feasible


def draw_simplex(n: int, k: int, absent_probability: float, rng: np.random.Generator) -> np.ndarray:
    """n points (n, k) of a simplex: each part absent with ``absent_probability`` (at least
    one present), the present ones Dirichlet(1)-distributed."""
    present = rng.random((n, k)) >= absent_probability
    present[~present.any(1), rng.integers(0, k, size=int((~present.any(1)).sum()))] = True
    g = rng.gamma(1.0, size=(n, k)) * present
    return g / g.sum(1, keepdims=True)


def jitter_simplex(f: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Neighbours of simplex points (n, k): the present parts jittered by N(0, scale),
    clipped at 0 and renormalised; absent parts stay absent (a point jittered to nothing
    stays where it was)."""
    jittered = np.clip(f + rng.normal(0, scale, f.shape) * (f > 0), 0, None)
    f = np.where(jittered.sum(1, keepdims=True) > 0, jittered, f)
    return f / f.sum(1, keepdims=True)


def sample_grid(n: int, ncols: int, cell: tuple[float, float]):
    """A matplotlib figure with a grid of axes for n samples, ``ncols`` wide (fewer when
    n is smaller), each cell ``cell`` inches; the axes beyond n are switched off."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


class ModalityBase:
    """The optional parts of :class:`Modality` with their defaults. A modality subclasses it
    and defines the :data:`REQUIRED` members (docs/modalities.md has a complete example)."""

    hit_metric = "hit_rate"  # the fraction of targets whose returned design hits
    checked_by = "simulator"  # what the simulator check runs: the oracle ("simulator") or e.g. a "surrogate"
    relabel_failures = True  # a failed candidate is a real sample of its simulated properties
    loop_defaults: dict = {}  # LoopConfig's defaults suit it
    novelty = NoveltyConfig()
    any_size = False  # the validators accept sample_shape only
    penalty_terms: tuple[str, ...] = ()
    design_tasks: tuple = ()
    design_tolerances: dict = {}
    tolerance_bands: dict = {}
    report_metrics: tuple[str, ...] = ()

    def physics_model(self, fidelity: str = "cheap", conditions=None):
        return None  # no differentiable physics: no physics guidance

    @property
    def guidance_tolerances(self) -> dict:
        """{field: Tolerance} in whose units physics guidance measures the misfit (default:
        ``design_tolerances``)."""
        return self.design_tolerances

    def physics_penalty(self, x0_hat, x0, values, mask) -> dict:
        raise InputError(f"modality {self.name!r} offers no physics penalties")

    def screening_features(self, samples: torch.Tensor):
        return None  # every plausible candidate goes to the simulator check

    def recipe_coordinates(self, processing: pd.DataFrame):
        return None  # designs carry no recipe

    def processing_from_coordinates(self, coords: np.ndarray) -> pd.DataFrame:
        raise InputError(f"modality {self.name!r} has no recipe coordinates")

    def design_metrics(self, report: pd.DataFrame, designs: pd.DataFrame) -> dict[str, float]:
        return {}

    def task_options(self, tolerances: dict) -> dict:
        raise InputError(f"modality {self.name!r} cannot run design tasks through the loop (no task_options)")

    def title(self, row, prefix: str = "") -> str:
        parts = []
        for f in self.target_fields:
            v = row.get(prefix + f)
            if v is not None and np.isfinite(v):
                parts.append(f"{f} {v:.3g}")
        return ", ".join(parts)

    def candidate_title(self, row) -> str:
        verdict = str(row.get("verdict", ""))
        if row.get("simulated"):
            sim = self.title(row, "sim_")
            return f"{sim}\n{verdict}" if sim else verdict
        return verdict

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """1-D samples as lines, 2-D ones as images (first channel), in a grid."""
        n = samples.shape[0]
        fig, axes = sample_grid(n, ncols, (2.0, 1.8))
        data = samples[:, 0].detach().cpu().numpy()
        for i, ax in enumerate(axes.flat[:n]):
            if data.ndim == 2:
                ax.plot(data[i], lw=0.8, color="k")
                ax.tick_params(labelsize=5)
            else:
                ax.imshow(data[i], cmap="cividis", interpolation="nearest")
                ax.axis("off")
            ax.set_title(titles[i] if i < len(titles) else "", fontsize=6)
        fig.tight_layout()
        return fig
