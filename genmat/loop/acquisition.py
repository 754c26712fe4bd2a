"""Where to spend new simulations: near the targets the model fails.

Two cases, by what a failing target gives:

- **a full simulator input** (every processing/composition field, e.g. a spectrum's phase
  fractions, size, strain and temperature): the target's own condition is simulated once
  and the rest of its budget goes to neighbours of it (``modality.perturb``);
- **properties only** (e.g. a micrograph's modulus and density; rule: nearest-neighbour
  acquisition in property space): find the ``k`` simulated training samples whose
  properties are closest to the target (distance in the schema's normalised units, over
  the targeted fields) and simulate processing drawn around theirs.

Neighbours are ``modality.perturb`` draws: Gaussian jitter of ``jitter`` × each field's
range, kept inside the allowed range (on the simplex for phase fractions). The oracle then
labels them, so the dataset gains real (condition, sample) pairs where the model is weak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def input_fields(schema) -> list[str]:
    """The simulator's inputs: processing and composition fields, schema order."""
    return [f.name for f in schema.fields if f.kind in ("processing", "composition")]


def acquire_near(
    failed_targets: pd.DataFrame,
    table: pd.DataFrame,
    modality,
    *,
    n_per_target: int,
    rng: np.random.Generator,
    k: int = 4,
    jitter: float = 0.05,
) -> pd.DataFrame:
    """Simulator inputs (n_failed · n_per_target rows) to simulate next."""
    schema = modality.schema
    inputs = input_fields(schema)
    if failed_targets.empty or n_per_target < 1:
        return pd.DataFrame(columns=inputs)
    if set(inputs) <= set(failed_targets.columns) and failed_targets[inputs].notna().all(axis=None):
        anchors = failed_targets[inputs].loc[failed_targets.index.repeat(n_per_target)].reset_index(drop=True)
        near = modality.perturb(anchors, rng, jitter)
        first = np.arange(len(anchors)) % n_per_target == 0  # each target's own condition once
        near.loc[first, inputs] = anchors.loc[first, inputs].to_numpy()
        return near[inputs]
    props = [c for c in failed_targets.columns if c in schema.names and c not in inputs]
    pool = table.dropna(subset=inputs + props)
    if pool.empty:
        return pd.DataFrame(columns=inputs)
    lo = np.array([schema.field(c).low for c in props])
    span = np.array([schema.field(c).high - schema.field(c).low for c in props])
    pool_props = (pool[props].to_numpy() - lo) / span
    rows = []
    for _, target in failed_targets.iterrows():
        t = (target[props].to_numpy(dtype=float) - lo) / span
        given = np.isfinite(t)
        dist = np.sqrt((((pool_props - t) ** 2)[:, given]).sum(1))
        nearest = pool.iloc[np.argsort(dist)[:k]][inputs].to_numpy()
        rows.append(nearest[rng.integers(0, len(nearest), size=n_per_target)])
    anchors = pd.DataFrame(np.concatenate(rows), columns=inputs)
    return modality.perturb(anchors, rng, jitter)[inputs]
