"""The contract every modality fulfils."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import pandas as pd
import torch

from genmat.conditions import ConditionSchema
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

    def physics_model(self, fidelity: str = "cheap"):
        """Optional: a differentiable ``samples -> {field: (B,) tensor}`` for physics guidance
        ("cheap" or "full" fidelity), or None."""

    def physics_penalty(self, x0_hat: torch.Tensor, x0: torch.Tensor, values: torch.Tensor,
                        mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Optional: differentiable physics penalties ``{term: (B,)}`` of denoised estimates
        x̂0 against their training samples x0 and normalised conditions (physics-penalised
        training, ``GeneratorConfig.penalties``)."""

    def screening_features(self, samples: torch.Tensor) -> np.ndarray | None:
        """Cheap features (n, d) from which a surrogate predicts the target properties
        (None: no screening, every plausible candidate goes to the simulator check)."""

    def title(self, row, prefix: str = "") -> str:
        """A short picture title for a condition row (columns ``prefix + field``)."""

    def candidate_title(self, row) -> str:
        """A short picture title for one report row (a checked candidate)."""

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """A matplotlib Figure showing the samples (with ``conditions``: against their targets)."""
