"""Conditional generators: build, train, save, load and sample one in a few lines.

``GeneratorConfig`` names the family (``method``: diffusion, vae, latent_diffusion — see
:mod:`genmat.methods`), the network and the objective; ``Generator`` holds the trained
(EMA) model and the condition schema, trains it through the one training loop and
samples candidates for conditions given in physical units.

Default objective: **rectified-flow matching with velocity prediction**, sampled
with Heun's method. The loss is a plain regression onto x1 − x0 with no
schedule to tune, the probability-flow paths are nearly straight so 10–20 steps
suffice, and the deterministic ODE makes samples reproducible from their noise.
The diffusion paths (VP linear/cosine with ε/x0/v prediction) sit behind the same
wrapper and samplers.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from genmat.conditions import ConditionSchema
from genmat.diffusion import DenoisingLoss
from genmat.diffusion.losses import ConsistencyDistillationLoss
from genmat.errors import InputError
from genmat.methods import (
    METHOD_NAMES,
    DiffusionMethod,
    FlowSettings,
    GeneratorConfig,
    LatentSettings,
    SamplerConfig,
    get_method,
)
from genmat.nn.embeddings import drop_fields
from genmat.train import TrainConfig, TrainResult, load_checkpoint, resolve_device, train

METHODS = METHOD_NAMES  # "diffusion" | "vae" | "latent_diffusion" | "normalizing_flow"
__all__ = ["METHODS", "FlowSettings", "Generator", "GeneratorConfig", "LatentSettings", "SamplerConfig"]


class Generator:
    """A trained conditional generator for one modality."""

    def __init__(
        self, config: GeneratorConfig, schema: ConditionSchema, sample_shape: Sequence[int], device="auto",
        *, seed: int = 0,
    ) -> None:
        """``seed`` fixes the initial weights: the same config and seed give the same
        network whatever random numbers were drawn before (no global RNG state leaks in)."""
        self.sample_shape = tuple(int(s) for s in sample_shape)
        if config.unet.n_condition_fields != len(schema):
            config = config.replace(unet=config.unet.replace(n_condition_fields=len(schema)))
        if config.unet.spatial_dims != len(self.sample_shape) - 1:  # (C, L) spectra, (C, H, W) micrographs
            config = config.replace(unet=config.unet.replace(spatial_dims=len(self.sample_shape) - 1))
        if config.unet.in_channels != self.sample_shape[0]:  # e.g. the (cos 2θ, sin 2θ) of grain maps
            config = config.replace(unet=config.unet.replace(in_channels=self.sample_shape[0]))
        self.config, self.schema = config, schema
        self.device = resolve_device(device)
        self.method = get_method(config, self.sample_shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.model = self.method.build().to(self.device)
        self.model.eval()
        self.step = 0
        self.diagnostics: dict[str, float] = {}  # after fit: e.g. the VAE's posterior-collapse numbers

    # ----------------------------------------------------------------- persistence
    def model_args(self) -> dict:
        return {
            "kind": "diffusion",
            "generator": self.config.to_dict(),
            "schema": self.schema.to_dict(),
            "sample_shape": list(self.sample_shape),
        }

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="auto") -> "Generator":
        ckpt = load_checkpoint(path)
        args = ckpt["model_args"]
        gen = cls(
            GeneratorConfig.from_dict(args["generator"]),
            ConditionSchema.from_dict(args["schema"]),
            args["sample_shape"],
            device,
        )
        gen.model.load_state_dict(ckpt["ema"])
        gen.step = int(ckpt["step"])
        return gen

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -------------------------------------------------------------------- training
    def fit(
        self,
        data: Sequence[torch.Tensor],
        config: TrainConfig,
        *,
        checkpoint_path: str | Path | None = None,
        warm_start: str | Path | None = None,
        callbacks=(),
        progress: bool = True,
        penalty=None,
    ) -> TrainResult:
        """Train on (x (N, C, *S), values (N, F), mask (N, F)); keeps the EMA weights.
        ``penalty``: the modality's ``physics_penalty``, needed when ``config.penalties``
        names weights (physics-penalised training) and ignored otherwise."""
        if self.config.penalties and penalty is None:
            raise InputError(f"generator penalties {self.config.penalties} need the modality's physics_penalty "
                             "(Generator.fit(..., penalty=modality.physics_penalty))")
        ema, result = self.method.fit(
            self.model,
            data,
            config.replace(device=str(self.device)),
            model_args=self.model_args(),
            checkpoint_path=checkpoint_path,
            warm_start=warm_start,
            callbacks=callbacks,
            progress=progress,
            penalty=penalty if self.config.penalties else None,
        )
        self.model, self.step = ema, result.step
        self.diagnostics = self.method.diagnostics(self.model, data)
        return result

    def reflow(
        self,
        data: Sequence[torch.Tensor],
        config: TrainConfig,
        *,
        n_pairs: int | None = None,
        steps: int = 50,
        seed: int = 0,
        checkpoint_path: str | Path | None = None,
        progress: bool = True,
    ) -> TrainResult:
        """Rectified-flow "reflow" (Liu et al. 2023): draw noise ε, integrate the trained ODE to
        x̂ = Φ(ε | c) for conditions of the training set (``steps`` Heun steps; the condition
        fields dropped per field as in training), and retrain on the pairs (x̂, c, ε) with the
        interpolation x_t = (1 − t) x̂ + t ε. The new model's paths are straighter, so few
        steps suffice. Continues from the current weights; returns the TrainResult."""
        if self.config.method != "diffusion" or self.config.path != "rectified_flow":
            raise InputError(f"reflow needs a rectified-flow diffusion generator, not method = "
                             f"{self.config.method!r}, path = {self.config.path!r}")
        _, values, mask = data[:3]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        n = values.shape[0] if n_pairs is None else n_pairs
        idx = torch.randint(0, values.shape[0], (n,), generator=gen)
        v, m = values[idx], drop_fields(mask[idx], self.config.cond_dropout, gen)
        noise = torch.randn((n, *self.sample_shape), generator=gen)
        sampler = SamplerConfig(steps=steps, method="heun", guidance=1.0)
        x = torch.cat([DiffusionMethod.integrate(self.model, noise[s:s + 256], v[s:s + 256], m[s:s + 256], sampler,
                                                 gen).float().cpu() for s in range(0, n, 256)])
        loss = DenoisingLoss(cond_dropout=0.0, t_sampling=self.config.t_sampling)  # dropout already in the pairs
        self.model.requires_grad_(True)  # the EMA copy kept after fit() is frozen
        ema, result = train(self.model, loss, [x, v, m, noise], config.replace(device=str(self.device)),
                            model_args=self.model_args(), checkpoint_path=checkpoint_path, progress=progress)
        self.model, self.step = ema, self.step + result.step
        return result

    def distill(
        self,
        data: Sequence[torch.Tensor],
        config: TrainConfig,
        *,
        n_grid: int = 18,
        guidance: float | None = None,
        sampler_steps: int = 2,
        checkpoint_path: str | Path | None = None,
        progress: bool = True,
    ) -> tuple["Generator", TrainResult]:
        """Consistency distillation (Song et al. 2023): a student with this generator's
        architecture, initialised from its weights, learns to map any point of the teacher's
        ODE trajectories (teacher guidance ``guidance``, default the teacher's sampler's) to
        their end, so it samples in 1–4 steps (``SamplerConfig(method="consistency")``;
        ``sampler_steps`` is the student's default). Returns (student, TrainResult)."""
        if self.config.method != "diffusion":
            raise InputError(f"distillation needs a diffusion teacher, not method = {self.config.method!r}")
        w = self.config.sampler.guidance if guidance is None else guidance
        student_cfg = self.config.replace(sampler=SamplerConfig(steps=sampler_steps, method="consistency"))
        student = Generator(student_cfg, self.schema, self.sample_shape, device=self.device)
        student.model.load_state_dict(self.model.state_dict())
        teacher = copy.deepcopy(self.model).eval().requires_grad_(False)
        loss = ConsistencyDistillationLoss(teacher, n_grid=n_grid, guidance=w, cond_dropout=self.config.cond_dropout)
        student.model.requires_grad_(True)
        ema, result = train(student.model, loss, list(data[:3]), config.replace(device=str(self.device)),
                            model_args=student.model_args(), checkpoint_path=checkpoint_path, progress=progress)
        student.model, student.step = ema, result.step
        return student, result

    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, condition: pd.DataFrame | None = None, *,
                    n: int = 8, spherical: bool = False) -> torch.Tensor:
        """VAE-based generators: decode n points between the posterior means of two samples
        ``(C, *S)`` under one condition (a one-row frame, physical units; None: unconditional)."""
        from genmat.vae import interpolate

        vae = {"vae": lambda m: m, "latent_diffusion": lambda m: m.vae}.get(self.config.method)
        if vae is None:
            raise InputError(f"latent interpolation needs a VAE-based generator, not method = {self.config.method!r}")
        if condition is None:
            values = mask = torch.zeros(1, len(self.schema))
        else:
            values, mask = self.schema.encode(self.schema.validate_frame(condition.iloc[:1]))
        dev = self.device
        out = interpolate(vae(self.model), x_a[None].to(dev), x_b[None].to(dev), values.to(dev), mask.to(dev), n=n,
                          spherical=spherical)
        return out.float().cpu()

    # -------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        values: torch.Tensor,
        mask: torch.Tensor,
        *,
        sampler: SamplerConfig | None = None,
        seed: int = 0,
        batch_size: int = 256,
        progress: bool = False,
        regressor=None,
        physics=None,
    ) -> torch.Tensor:
        """Samples (B, *sample_shape) for normalised conditions ``values``/``mask`` (B, F), on CPU.
        ``regressor``: a :class:`genmat.regressor.PropertyRegressor` for classifier guidance
        (with ``sampler.classifier_scale`` > 0). ``physics``: ``loss(x̂0, rows) -> (B,)``, the
        differentiable physics misfit of the denoised estimates of samples ``rows`` (a slice of
        the B), for physics guidance (with ``sampler.physics_scale`` > 0; diffusion, flow matching and
        latent diffusion)."""
        sampler = sampler or self.config.sampler
        guided = physics is not None and sampler.physics_scale > 0
        if guided and not self.method.physics_guidance:
            raise InputError(f"physics guidance needs a diffusion, flow-matching or latent-diffusion generator, "
                             f"not method = {self.config.method!r}")
        if regressor is not None and sampler.classifier_scale > 0 and not isinstance(self.method, DiffusionMethod):
            raise InputError(f"classifier guidance (classifier_scale = {sampler.classifier_scale:g}) needs a diffusion "
                             f"or flow-matching generator in data space, not method = {self.config.method!r}; "
                             "set classifier_scale 0 or use method 'diffusion'")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        out = []
        for start in range(0, values.shape[0], batch_size):
            v = values[start : start + batch_size].to(self.device)
            m = mask[start : start + batch_size].to(self.device)
            rows = slice(start, start + v.shape[0])
            extra = {"physics": (lambda x0, rows=rows: physics(x0, rows))} if guided else {}
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                        else contextlib.nullcontext())
            with autocast:
                x = self.method.sample(self.model, v, m, sampler, gen, regressor=regressor, progress=progress,
                                       **extra)
            out.append(x.float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def sample_from(self, noise, values, mask, sampler: SamplerConfig, gen=None, progress: bool = False,
                    regressor=None):
        """Diffusion: integrate from the given ``noise`` (B, *sample_shape) to samples (on CPU)."""
        if not isinstance(self.method, DiffusionMethod):
            raise InputError(f"sample_from needs a diffusion generator, not method = {self.config.method!r}")
        return DiffusionMethod.integrate(self.model, noise, values, mask, sampler, gen, regressor=regressor,
                                         progress=progress).float().cpu()

    def sample_conditions(
        self, conditions: pd.DataFrame, *, n_per_condition: int = 1, **kwargs
    ) -> torch.Tensor:
        """Samples (len(conditions) · n_per_condition, *sample_shape) for conditions in physical units.

        Rows are validated against the schema; NaN means "field not given".
        Candidates of one condition are contiguous.
        """
        conditions = self.schema.validate_frame(conditions)
        values, mask = self.schema.encode(conditions)
        values = values.repeat_interleave(n_per_condition, dim=0)
        mask = mask.repeat_interleave(n_per_condition, dim=0)
        return self.sample(values, mask, **kwargs)

    def sample_frame(
        self,
        conditions: pd.DataFrame,
        *,
        n_per_condition: int = 1,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> pd.DataFrame:
        """Like ``sample_conditions`` but returns a DataFrame (one row per sample, the
        condition columns plus ``sample``: the array as nested lists). Used by MLflow pyfunc."""
        base = self.config.sampler
        sampler = base.replace(
            steps=int(steps) if steps is not None else base.steps,
            guidance=float(guidance) if guidance is not None else base.guidance,
        )
        x = self.sample_conditions(conditions, n_per_condition=int(n_per_condition), seed=int(seed), sampler=sampler)
        out = conditions.loc[conditions.index.repeat(int(n_per_condition))].reset_index(drop=True)
        out["sample"] = [s.tolist() for s in x.numpy()]
        return out
