"""``peaks``: a genmat modality in a package of its own (the plug-in example of
docs/modalities.md).

A sample is one Gaussian peak on a 1-D axis of 32 points, x ∈ [0, 1], scaled to
[-1, 1]: y = 2 exp(−(x − centre)² / (2 width²)) − 1 plus white noise. Processing: the
``centre`` and ``width`` of the peak; properties: its measured ``position`` (centroid) and
``spread`` (standard deviation above the noise floor), close to centre and width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from genmat.conditions import ConditionSchema, Field
from genmat.modalities import ModalityBase

N = 32
AXIS = np.linspace(0.0, 1.0, N)
NOISE = 0.01


class PeakModality(ModalityBase):
    name = "peaks"
    sample_shape = (1, N)
    schema = ConditionSchema(fields=(
        Field("centre", "", 0.3, 0.7, "processing", "peak centre"),
        Field("width", "", 0.04, 0.10, "processing", "peak width (standard deviation)"),
        Field("position", "", 0.25, 0.75, "property", "measured centroid"),
        Field("spread", "", 0.03, 0.11, "property", "measured standard deviation"),
    ))
    target_fields = ("position", "spread")
    checked_fields = ("position", "spread")
    tolerance = 0.01  # absolute, on position and spread
    # LoopConfig fields as in a --config file: a 1-D network for 1-D samples
    loop_defaults = {"generator": {"unet": {"spatial_dims": 1, "base_channels": 8, "channel_mults": [1, 2],
                                            "padding_mode": "replicate"}}}

    def simulator_settings(self) -> dict:
        return {"version": "peaks-1", "points": N, "noise": NOISE}

    def draw_processing(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame({"centre": rng.uniform(0.3, 0.7, n), "width": rng.uniform(0.04, 0.10, n)})

    def perturb(self, processing: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        out = processing[["centre", "width"]].copy()
        out["centre"] = np.clip(out["centre"] + scale * 0.4 * rng.normal(size=len(out)), 0.3, 0.7)
        out["width"] = np.clip(out["width"] + scale * 0.06 * rng.normal(size=len(out)), 0.04, 0.10)
        return out.reset_index(drop=True)

    def simulate(self, processing: pd.DataFrame, *, seed: int, progress: bool = False):
        c = processing["centre"].to_numpy(float)[:, None]
        w = processing["width"].to_numpy(float)[:, None]
        rng = np.random.default_rng(seed)
        y = 2 * np.exp(-(AXIS - c) ** 2 / (2 * w ** 2)) - 1 + NOISE * rng.normal(size=(len(c), N))
        samples = torch.as_tensor(y[:, None, :], dtype=torch.float32)
        table = pd.concat([processing[["centre", "width"]].reset_index(drop=True), self.measure(samples)], axis=1)
        return samples, table

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        p = np.clip((samples[:, 0].double().numpy() + 1) / 2, 0, None)
        p = np.where(p > 0.05, p, 0.0)  # ignore the noise floor
        total = np.maximum(p.sum(1), 1e-12)
        pos = (p * AXIS).sum(1) / total
        spread = np.sqrt((p * (AXIS - pos[:, None]) ** 2).sum(1) / total)
        return pd.DataFrame({"position": pos, "spread": spread})

    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        y = samples[:, 0].double().numpy()
        fails = {"non-finite values": ~np.isfinite(y).all(1),
                 "outside [-1.2, 1.2]": np.abs(np.nan_to_num(y, nan=9.0)).max(1) > 1.2,
                 "no peak": np.nan_to_num(y, nan=-1.0).max(1) < 0.0}
        bad = np.stack(list(fails.values()))
        return pd.DataFrame({"physics_pass": ~bad.any(0),
                             "physics_reason": ["; ".join(k for k, v in fails.items() if v[i]) for i in range(len(y))]})

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        measured = self.measure(samples)
        out = pd.DataFrame(index=range(len(measured)))
        reasons = [[] for _ in range(len(measured))]
        ok = np.ones(len(measured), dtype=bool)
        for f in self.checked_fields:
            want = targets[f].to_numpy(float) if f in targets else np.full(len(measured), np.nan)
            got = measured[f].to_numpy()
            out[f"sim_{f}"], out[f"target_{f}"] = got, want
            out[f"{f}_rel_err"] = (got - want) / want
            miss = np.isfinite(want) & ~(np.abs(got - want) <= self.tolerance)
            ok &= ~miss
            for i in np.flatnonzero(miss):
                reasons[i].append(f"{f} {got[i]:.3f} vs target {want[i]:.3f} (±{self.tolerance})")
        out["sim_pass"] = ok
        out["sim_reason"] = ["; ".join(r) for r in reasons]
        return out
