"""Default design targets: property vectors of held-out simulated samples.

Every default target is feasible (a real simulated micrograph has exactly those
properties) and the set spans the composition range: the held-out processing
conditions are stratified in the first processing field (x_B for spinodal, the crystallite
size for spectra).
They are simulated with a seed disjoint from the training data's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from genmat.errors import InputError


def held_out_targets(modality, n: int, *, seed: int) -> tuple[pd.DataFrame, object]:
    """(targets, samples): up to n target rows (those the schema accepts) (target fields only, plus the held-out
    processing for reference under ``ref_`` columns) and the held-out samples."""
    if n < 1:
        raise InputError(f"n_targets = {n} is outside the allowed range [1, ∞)")
    rng = np.random.default_rng(seed)
    processing = modality.draw_processing(n, rng)
    first = next(f.name for f in modality.schema.fields if f.kind == "processing")
    f = modality.schema.field(first)
    strata = (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n  # one draw per stratum
    processing[first] = f.low + strata * (f.high - f.low)
    samples, rows = modality.simulate(processing, seed=seed)
    feasible = []
    for _, row in rows[list(modality.target_fields)].iterrows():
        try:
            modality.schema.validate(row.to_dict())
            feasible.append(True)
        except ValueError:  # e.g. a property outside the schema's range on a tiny grid
            feasible.append(False)
    keep = np.flatnonzero(feasible)
    if len(keep) == 0:
        raise InputError(f"none of the {n} held-out {modality.name} samples is a feasible target; "
                         "check the schema ranges against the simulator")
    processing, rows = processing.iloc[keep].reset_index(drop=True), rows.iloc[keep].reset_index(drop=True)
    samples = samples[torch.as_tensor(keep, dtype=torch.long)]
    targets = rows[list(modality.target_fields)].copy()
    for c in processing.columns:
        targets[f"ref_{c}"] = processing[c].to_numpy()
    return targets.reset_index(drop=True), samples
