"""A noise-aware property regressor: classifier guidance and candidate pre-screening.

``PropertyRegressor`` predicts every condition field of a sample (normalised to [-1, 1]
as the schema encodes them) from a noisy sample x_t of a generator's path, trained by
the one training loop on the same dataset. It serves twice:

- **classifier guidance**: ∇_x log p(c | x_t) with p = N(c; μ(x_t, t), σ²(x_t, t) + τ²)
  on the given fields (μ, σ² the regressor's mean and variance), handed to :func:`genmat.diffusion.classifier_guided` (``Generator.sample``
  with ``regressor=`` and ``SamplerConfig.classifier_scale``);
- **pre-screening**: at t = 0 it predicts the fields of finished candidates in physical
  units (:meth:`predict_frame`), so candidates can be ranked before the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from genmat.conditions import ConditionSchema
from genmat.diffusion.losses import NoisyRegressionLoss
from genmat.nn import UNetConfig
from genmat.nn.regressor import NoisyRegressor
from genmat.train import TrainConfig, TrainResult, load_checkpoint, resolve_device, train


class PropertyRegressor:
    def __init__(self, schema: ConditionSchema, sample_shape: Sequence[int], unet: UNetConfig | None = None,
                 path: str = "rectified_flow", device="auto") -> None:
        self.schema, self.sample_shape, self.path = schema, tuple(int(s) for s in sample_shape), path
        unet = unet or UNetConfig()
        self.unet = unet.replace(spatial_dims=len(self.sample_shape) - 1, in_channels=self.sample_shape[0],
                            n_condition_fields=0)
        self.device = resolve_device(device)
        self.model = NoisyRegressor(self.unet, len(schema)).to(self.device).eval()

    def model_args(self) -> dict:
        return {"kind": "regressor", "unet": self.unet.to_dict(), "schema": self.schema.to_dict(),
                "sample_shape": list(self.sample_shape), "path": self.path}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="auto") -> "PropertyRegressor":
        ckpt = load_checkpoint(path)
        a = ckpt["model_args"]
        unet = UNetConfig(**{**a["unet"], "channel_mults": tuple(a["unet"]["channel_mults"])})
        reg = cls(ConditionSchema.from_dict(a["schema"]), a["sample_shape"], unet, a["path"], device)
        reg.model.load_state_dict(ckpt["ema"])
        return reg

    def fit(self, data: Sequence[torch.Tensor], config: TrainConfig, *, checkpoint_path=None,
            progress: bool = True) -> TrainResult:
        """Train on (x (N, C, *S), values (N, F), mask (N, F)) with noisy inputs of the path."""
        self.model.requires_grad_(True)
        ema, result = train(self.model, NoisyRegressionLoss(self.path), list(data[:3]),
                            config.replace(device=str(self.device)), model_args=self.model_args(),
                            checkpoint_path=checkpoint_path, progress=progress)
        self.model = ema
        return result

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: float | torch.Tensor = 0.0) -> torch.Tensor:
        """Normalised field values (B, F) predicted from x_t (default: clean samples)."""
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).expand(x.shape[0])
        return self.model(x.to(self.device), t)[0].cpu()

    def predict_frame(self, x: torch.Tensor) -> pd.DataFrame:
        """Every condition field of clean samples, in physical units."""
        v = self.predict(x, 0.0)
        return pd.DataFrame({f.name: f.denormalise(v[:, i]).numpy() for i, f in enumerate(self.schema.fields)})

    def grad_log_likelihood(self, values: torch.Tensor, mask: torch.Tensor, tau: float = 0.1):
        """g(x, t) = ∇_x Σ_f m_f [−(μ_f(x_t, t) − c_f)² / (2 (σ_f²(x_t, t) + τ²))], a callable
        for :func:`genmat.diffusion.classifier_guided`. The regressor's own variance σ² (large
        at high noise, where the sample says little about c) keeps early steps gentle; ``tau``
        (normalised units) is how closely the target is asked for."""
        values, mask = values.to(self.device), mask.to(self.device)

        def grad(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                mean, logvar = self.model(x, t)
                var = logvar.exp().detach() + tau**2
                log_lik = -(((mean - values) ** 2) / (2 * var) * mask).sum()
                return torch.autograd.grad(log_lik, x)[0].detach()

        return grad
