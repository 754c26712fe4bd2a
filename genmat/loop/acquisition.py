"""Where to spend new simulations: near the targets the model fails.

Rule (nearest-neighbour acquisition in property space): for each failing target,
find the ``k`` simulated training samples whose properties are closest to the
target (distance in the schema's normalised units, over the targeted fields), and
simulate new processing conditions drawn around theirs — each a neighbour's
processing vector plus Gaussian jitter of ``jitter`` × the field's range, clipped
to the allowed range. The oracle then labels them, so the dataset gains real
(processing, micrograph, property) triples right where the model is weak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genmat.conditions import ConditionSchema


def acquire_near(
    failed_targets: pd.DataFrame,
    table: pd.DataFrame,
    schema: ConditionSchema,
    *,
    n_per_target: int,
    rng: np.random.Generator,
    k: int = 4,
    jitter: float = 0.05,
) -> pd.DataFrame:
    """Processing conditions (n_failed · n_per_target rows) to simulate next."""
    processing = [f.name for f in schema.fields if f.kind == "processing"]
    props = [c for c in failed_targets.columns if c in schema.names and c not in processing]
    pool = table.dropna(subset=processing + props)
    if pool.empty or failed_targets.empty or n_per_target < 1:
        return pd.DataFrame(columns=processing)
    lo = np.array([schema.field(c).low for c in props])
    span = np.array([schema.field(c).high - schema.field(c).low for c in props])
    pool_props = (pool[props].to_numpy() - lo) / span
    rows = []
    for _, target in failed_targets.iterrows():
        t = (target[props].to_numpy(dtype=float) - lo) / span
        given = np.isfinite(t)
        dist = np.sqrt((((pool_props - t) ** 2)[:, given]).sum(1))
        nearest = pool.iloc[np.argsort(dist)[:k]][processing].to_numpy()
        picks = nearest[rng.integers(0, len(nearest), size=n_per_target)]
        rows.append(picks)
    new = np.concatenate(rows)
    p_lo = np.array([schema.field(c).low for c in processing])
    p_hi = np.array([schema.field(c).high for c in processing])
    new = np.clip(new + rng.normal(0.0, jitter, new.shape) * (p_hi - p_lo), p_lo, p_hi)
    return pd.DataFrame(new, columns=processing)
