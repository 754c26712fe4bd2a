"""The Python API for scientists' scripts: a few functions over the library.

    import genmat
    result = genmat.design({"E_GPa": 180, "density_g_cm3": 2.95}, checkpoint="runs/spinodal/iter_03/model.ckpt")
    result.designs      # one row per target: the returned micrograph's simulated properties, hit or miss
    result.report       # one row per candidate: every check, verdict and reason
    result.samples      # the candidates, (n_targets · n_candidates, 1, N, N)
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch


def _frame(targets) -> pd.DataFrame:
    if isinstance(targets, pd.DataFrame):
        return targets
    if isinstance(targets, Mapping):
        return pd.DataFrame([dict(targets)])
    return pd.DataFrame(list(targets))


def design(
    targets: pd.DataFrame | Mapping[str, float] | Sequence[Mapping[str, float]],
    *,
    checkpoint: str | Path,
    n: int = 16,
    n_simulate: int = 2,
    dataset: str | Path | None = None,
    modality: str = "spinodal",
    modality_options: dict | None = None,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    sampler: str | None = None,
    regressor: str | Path | None = None,
    classifier_scale: float = 1.0,
    classifier_tau: float = 0.1,
    ood_flow: str | Path | None = None,
):
    """Design candidates for one or more targets with a trained generator.

    ``targets``: any subset of the modality's condition fields, in physical units.
    ``dataset``: the training dataset, for novelty checks and the screening surrogate
    (without it every plausible candidate is ranked equally and only novelty is skipped).
    ``steps``, ``guidance``, ``sampler``: override the checkpoint's sampler settings (``sampler``:
    euler, heun, ddim, ddpm, dpmpp_2m or consistency; see docs/methods.md).
    ``regressor``: a noise-aware property regressor checkpoint (``genmat train
    --regressor-out``): classifier guidance at ``classifier_scale`` (τ = ``classifier_tau``
    in normalised units) and, without a dataset surrogate, the screen.
    ``ood_flow``: a normalizing-flow checkpoint (``genmat train --method normalizing_flow``)
    whose likelihood scores every candidate against the dataset (``flow_nll``,
    ``flow_pvalue`` in the report; needs ``dataset``).
    Returns a :class:`genmat.loop.DesignResult`.
    """
    from dataclasses import replace

    from genmat.data import DatasetStore
    from genmat.generate import Generator
    from genmat.loop.design import design as _design
    from genmat.loop.steps import fit_surrogate
    from genmat.modalities import get_modality

    mod = get_modality(modality, **(modality_options or {}))
    targets = mod.schema.validate_frame(_frame(targets))  # bad targets fail before anything is loaded
    generator = Generator.from_checkpoint(checkpoint)
    base = generator.config.sampler
    sampler = replace(base, steps=steps or base.steps, guidance=base.guidance if guidance is None else guidance,
                      method=sampler or base.method)
    reg = None
    if regressor is not None:
        from genmat.regressor import PropertyRegressor

        reg = PropertyRegressor.from_checkpoint(regressor)
        sampler = replace(sampler, classifier_scale=classifier_scale, classifier_tau=classifier_tau)
    training = ids = surrogate = None
    if dataset is not None:
        store = DatasetStore.open(dataset)
        training, ids = torch.as_tensor(store.load()), store.table()["sample_id"].to_numpy()
        surrogate = fit_surrogate(store, mod, training)
    return _design(generator, mod, targets, n_candidates=n, n_simulate=n_simulate, surrogate=surrogate,
                   training_samples=training, training_ids=ids, sampler=sampler, seed=seed, regressor=reg,
                   ood_flow=None if ood_flow is None else Generator.from_checkpoint(ood_flow))


def simulate(processing: pd.DataFrame | Mapping[str, float] | Sequence[Mapping[str, float]], *,
             modality: str = "spinodal", seed: int = 0, modality_options: dict | None = None):
    """Run the oracle: (samples, properties DataFrame) for processing conditions."""
    from genmat.modalities import get_modality

    mod = get_modality(modality, **(modality_options or {}))
    frame = mod.schema.validate_frame(_frame(processing))
    return mod.simulate(frame, seed=seed)
