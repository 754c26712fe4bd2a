"""A conditional generator of recipes: processing that should make a material with the
asked-for properties, for point **and interval** targets over any subset of fields.

The model is rectified-flow matching on the normalised processing vector (an MLP
denoiser behind the same preconditioning wrapper, loss and samplers as the
micrograph generator). It is conditioned on one interval per property field,
encoded as (lo, hi) values with (has_lo, has_hi) masks — a point target with its
tolerance is the interval it allows, a one-sided bound has one mask off, a field
not asked for has both off.

**Interval conditioning, exactly.** Training queries I are drawn *independently of
the sample*: an anchor row is picked, an interval is built around its properties
(random subset of fields; per field a narrow or wide two-sided interval or a one-sided
bound, log-uniform widths), and the training recipe is then drawn uniformly from all
rows whose properties lie in I. The pairs (x, I) therefore have joint density
q(I) · p(x) · 1[f(x) ∈ I] / P(f ∈ I), whose conditional is p(x | f(x) ∈ I): the
model learns the distribution of recipes that satisfy the query, not the
distribution of recipes near its centre (drawing I around x itself would weight each x
by how often intervals around it are drawn). p is the distribution of the table it is
trained on: after the recipe loop fine-tunes on its own design rows, which cluster near
the targets, that is the table's conditional, not the prior's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from genmat.conditions import UNSET, ConditionError, ConditionSchema
from genmat.config import Config
from genmat.diffusion import DenoisingLoss
from genmat.diffusion.guidance import classifier_free
from genmat.diffusion.paths import NoisePath
from genmat.diffusion.precond import Denoiser
from genmat.diffusion.samplers import sample as integrate
from genmat.nn.mlp import MLPConfig, MLPDenoiserNet
from genmat.tasks import TargetSet
from genmat.train import TrainConfig, TrainResult, load_checkpoint, train

CLIP = 1.5  # normalised interval ends beyond the data range are clipped here
Weight = Annotated[float, Field(ge=0)]


class RecipeConfig(Config):
    width: int = Field(256, ge=1)
    depth: int = Field(4, ge=1)
    embed_dim: int = Field(128, ge=1)
    p_absent: float = Field(0.3, ge=0, lt=1)  # a property field left out of a training query (any subset is asked)
    # per given field: point-like narrow interval, wide interval, lower bound only, upper bound only
    kind_weights: tuple[Weight, Weight, Weight, Weight] = (0.4, 0.3, 0.15, 0.15)
    half_width: tuple[float, float] = (0.003, 0.3)  # log-uniform, fraction of the field's data range
    steps: int = Field(16, ge=1)  # Heun steps at sampling
    sampler: str = "heun"

    @model_validator(mode="after")
    def _check(self):
        if not 0 < self.half_width[0] <= self.half_width[1]:
            raise ConditionError("half_width", self.half_width, "0 < low ≤ high")
        if not sum(self.kind_weights) > 0:
            raise ConditionError("kind_weights", self.kind_weights, "non-negative, not all 0")
        return self


class IntervalQueryLoss:
    """The flow-matching loss on (recipe, interval query) pairs drawn as the module
    docstring says. ``props`` (N, F) normalised properties, ``recipes`` (N, D) normalised
    processing of the same rows; the training loop hands it anchor indices (B, 1)."""

    def __init__(self, props: torch.Tensor, recipes: torch.Tensor, config: RecipeConfig) -> None:
        self.props, self.recipes, self.config = props, recipes, config
        self.inner = DenoisingLoss(cond_dropout=0.0)
        self.log_w = (math.log(config.half_width[0] * 2), math.log(config.half_width[1] * 2))  # range [-1,1] is 2 wide

    def queries(self, anchors: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) (B, F) around the anchors' properties; ±inf = open end, NaN = not given."""
        v = self.props[anchors]
        b, f = v.shape
        u = lambda: torch.rand(b, f, generator=gen)  # noqa: E731
        half = torch.exp(self.log_w[0] + (self.log_w[1] - self.log_w[0]) * u())
        kind = torch.multinomial(torch.tensor(self.config.kind_weights, dtype=torch.float), b * f, replacement=True,
                                 generator=gen).reshape(b, f)
        wide = torch.where(kind == 1, 4 * half, half)
        lo = v - u() * 2 * wide
        hi = lo + 2 * wide
        lo = torch.where(kind == 3, -math.inf, lo)
        hi = torch.where(kind == 2, math.inf, hi)
        absent = u() < self.config.p_absent
        nan = torch.full_like(lo, math.nan)
        return torch.where(absent, nan, lo), torch.where(absent, nan, hi)

    def __call__(self, model: Denoiser, batch, gen: torch.Generator | None = None) -> torch.Tensor:
        anchors = batch[0][:, 0].long().cpu()
        lo, hi = self.queries(anchors, gen)
        p = self.props[None]  # (1, N, F)
        inside = ((p >= lo[:, None]) & (p <= hi[:, None])) | torch.isnan(lo[:, None])
        ok = inside.all(-1).float()  # (B, N)
        ok[torch.arange(len(anchors)), anchors] = 1.0  # the anchor satisfies its query (float rounding aside)
        pick = torch.multinomial(ok, 1, generator=gen)[:, 0]
        values, mask = encode_intervals(lo, hi)
        device = next(model.parameters()).device
        return self.inner(model, (self.recipes[pick].to(device), values.to(device), mask.to(device)), gen)


def encode_intervals(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (lo, hi) (B, F) → network values and masks (B, 2F): [lo…, hi…]."""
    ends = torch.cat([lo, hi], dim=1)
    mask = torch.isfinite(ends).float()
    values = torch.where(mask.bool(), ends.clamp(-CLIP, CLIP), torch.zeros_like(ends))
    return values, mask


class RecipeGenerator:
    """Proposes processing (the schema's ``processing`` fields) for property targets."""

    def __init__(self, schema: ConditionSchema, properties: Sequence[str], prop_range: np.ndarray,
                 config: RecipeConfig = RecipeConfig(), *, seed: int = 0) -> None:
        self.schema, self.config = schema, config
        self.processing = schema.subset("processing")
        self.properties = tuple(properties)
        self.prop_range = np.asarray(prop_range, dtype=float).reshape(2, len(self.properties))
        net = MLPConfig(dim=len(self.processing), n_condition_fields=2 * len(self.properties), width=config.width,
                        depth=config.depth, embed_dim=config.embed_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.model = Denoiser(MLPDenoiserNet(net), NoisePath("rectified_flow"), "velocity").eval()
        self.step = 0

    # -------------------------------------------------------------- normalising
    def _norm_props(self, values: np.ndarray) -> np.ndarray:
        lo, hi = self.prop_range
        return 2 * (np.asarray(values, dtype=float) - lo) / np.where(hi > lo, hi - lo, 1.0) - 1

    def _norm_recipes(self, frame: pd.DataFrame) -> np.ndarray:
        return np.stack([self.schema.field(n).normalise(frame[n].to_numpy(float)) for n in self.processing], axis=1)

    def _denorm_recipes(self, x: np.ndarray) -> pd.DataFrame:
        x = np.clip(x, -1, 1)
        fields = [self.schema.field(n) for n in self.processing]
        return pd.DataFrame({f.name: np.clip(f.denormalise(x[:, j]), f.low, f.high) for j, f in enumerate(fields)})

    # ----------------------------------------------------------------- building
    @classmethod
    def for_table(cls, schema: ConditionSchema, table: pd.DataFrame, properties: Sequence[str],
                  config: RecipeConfig = RecipeConfig(), *, seed: int = 0) -> "RecipeGenerator":
        """A generator whose property normalisation spans ``table`` (the oracle's rows)."""
        missing = [p for p in properties if p not in table.columns]
        if missing:
            raise ConditionError("properties", missing, ", ".join(map(str, table.columns)), "are not columns of the table; allowed:")
        vals = table[list(properties)].to_numpy(float)
        return cls(schema, properties, np.stack([np.nanmin(vals, 0), np.nanmax(vals, 0)]), config, seed=seed)

    def fit(self, table: pd.DataFrame, train_config: TrainConfig, *, checkpoint_path: str | Path | None = None,
            warm_start: str | Path | None = None, progress: bool = False) -> TrainResult:
        """Train on an oracle table (processing + property columns; rows with NaN are skipped)."""
        ok = table[list(self.processing) + list(self.properties)].notna().all(axis=1).to_numpy()
        table = table.loc[ok]
        if len(table) < 2:
            raise ConditionError("training rows", len(table), "[2, ∞)", "are too few; need")
        props = torch.as_tensor(self._norm_props(table[list(self.properties)].to_numpy(float)), dtype=torch.float)
        recipes = torch.as_tensor(self._norm_recipes(table), dtype=torch.float)
        loss = IntervalQueryLoss(props, recipes, self.config)
        anchors = torch.arange(len(table), dtype=torch.float)[:, None]
        self.model.requires_grad_(True)
        ema, result = train(self.model, loss, [anchors], train_config.replace(device="cpu"),
                            model_args=self.model_args(), checkpoint_path=checkpoint_path, warm_start=warm_start,
                            progress=progress)
        self.model, self.step = ema, result.step
        return result

    def model_args(self) -> dict:
        return {"kind": "recipe", "config": self.config.to_dict(), "schema": self.schema.to_dict(),
                "properties": list(self.properties), "prop_range": self.prop_range.tolist()}

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "RecipeGenerator":
        ckpt = load_checkpoint(path)
        args = ckpt["model_args"]
        if args.get("kind") != "recipe":
            raise ConditionError("checkpoint", str(path), "a recipe generator's checkpoint", "is not")
        cfg = RecipeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in args["config"].items()})
        gen = cls(ConditionSchema.from_dict(args["schema"]), args["properties"], np.array(args["prop_range"]), cfg)
        gen.model.load_state_dict(ckpt["ema"])
        gen.step = int(ckpt["step"])
        return gen

    # ----------------------------------------------------------------- sampling
    def encode(self, targets: TargetSet) -> tuple[torch.Tensor, torch.Tensor]:
        """A target set's intervals as network conditions (fields it does not ask → masked)."""
        unknown = [f for f in targets.fields if f not in self.properties]
        if unknown:
            raise ConditionError(unknown[0], UNSET, ", ".join(self.properties), "is not a field this recipe model knows; allowed:")
        t = len(targets)
        lo = np.full((t, len(self.properties)), np.nan)
        hi = lo.copy()
        for j, name in enumerate(targets.fields):
            k = self.properties.index(name)
            lo[:, k], hi[:, k] = targets.lo[:, j], targets.hi[:, j]
        with np.errstate(invalid="ignore"):
            lo_n, hi_n = self._norm_props(lo), self._norm_props(hi)
        return encode_intervals(torch.as_tensor(lo_n, dtype=torch.float), torch.as_tensor(hi_n, dtype=torch.float))

    @torch.no_grad()
    def propose(self, targets: TargetSet, n_per_target: int, *, seed: int = 0, guidance: float = 1.0) -> pd.DataFrame:
        """``n_per_target`` recipes per target: a frame with ``target_id`` and the processing
        fields, contiguous per target. Per-sample noise comes from ``seed`` alone."""
        if n_per_target < 1:
            raise ConditionError("n_per_target", n_per_target, "[1, ∞)")
        values, mask = self.encode(targets)
        values, mask = values.repeat_interleave(n_per_target, 0), mask.repeat_interleave(n_per_target, 0)
        noise = torch.randn(values.shape[0], len(self.processing), generator=torch.Generator().manual_seed(int(seed)))
        out = []
        for start in range(0, values.shape[0], 8192):
            sl = slice(start, start + 8192)
            predict = classifier_free(self.model, values[sl], mask[sl], guidance)
            out.append(integrate(predict, self.model.path, noise[sl], steps=self.config.steps, method=self.config.sampler))
        frame = self._denorm_recipes(torch.cat(out).numpy())
        frame.insert(0, "target_id", np.repeat(np.arange(len(targets)), n_per_target))
        return frame

    def normalised(self, frame: pd.DataFrame) -> np.ndarray:
        """Recipes in the model's [-1, 1]³ coordinates (distances between recipes are taken here)."""
        return self._norm_recipes(frame)
