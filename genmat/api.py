"""The Python API for scientists' scripts: a few functions over the library.

    import genmat
    result = genmat.design({"E_GPa": 180, "density_g_cm3": 2.95}, checkpoint="runs/spinodal/model.ckpt")
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
    """Targets as a frame; a value given as NaN or ±inf is refused (an empty cell of a frame
    means "not asked", a NaN written in a mapping is a mistake, not a wish)."""
    import math

    from genmat.conditions import ConditionError

    if isinstance(targets, pd.DataFrame):
        return targets
    rows = [dict(targets)] if isinstance(targets, Mapping) else [dict(t) for t in targets]
    for i, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise ConditionError(name, value, "a finite number", "is not finite; give",
                                     row=i if len(rows) > 1 else None)
    return pd.DataFrame(rows)


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
    physics_guidance: float = 0.0,
):
    """Design candidates for one or more targets with a trained generator.

    ``targets``: any subset of the modality's condition fields, in physical units.
    ``dataset``: the training dataset, for novelty checks, the screening surrogate and the
    recipe head (without it every plausible candidate is ranked equally, novelty is skipped
    and the designs carry no recipe). With it, and a modality with recipe coordinates, every
    candidate carries the processing that should make it (``recipe_<field>`` columns).
    ``steps``, ``guidance``, ``sampler``: override the checkpoint's sampler settings (``sampler``:
    euler, heun, ddim, ddpm, dpmpp_2m or consistency; see docs/methods.md).
    ``regressor``: a noise-aware property regressor checkpoint (``genmat train
    --regressor-out``): classifier guidance at ``classifier_scale`` (τ = ``classifier_tau``
    in normalised units) and, without a dataset surrogate, the screen.
    ``ood_flow``: a normalizing-flow checkpoint (``genmat train --method normalizing_flow``)
    whose likelihood scores every candidate against the dataset (``flow_nll``,
    ``flow_pvalue`` in the report; needs ``dataset``).
    ``physics_guidance``: scale of physics guidance (0 = off): each sampling step is steered
    through the modality's differentiable physics model toward the targets
    (docs/physics_guidance.md; 30 measured best on the spinodal tasks). Its evaluations are
    ``metrics["physics_evaluations"]``.
    Returns a :class:`genmat.loop.DesignResult`.
    """

    from genmat.data import DatasetStore
    from genmat.generate import Generator
    from genmat.loop.design import design as _design
    from genmat.loop.steps import fit_recipe_head, fit_surrogate
    from genmat.modalities import get_modality

    mod = get_modality(modality, **(modality_options or {}))
    targets = mod.schema.validate_frame(_frame(targets))  # bad targets fail before anything is loaded
    generator = Generator.from_checkpoint(checkpoint)
    base = generator.config.sampler
    sampler = base.replace(steps=steps or base.steps, guidance=base.guidance if guidance is None else guidance,
                      method=sampler or base.method)
    reg = None
    if regressor is not None:
        from genmat.regressor import PropertyRegressor

        reg = PropertyRegressor.from_checkpoint(regressor)
        sampler = sampler.replace(classifier_scale=classifier_scale, classifier_tau=classifier_tau)
    training = ids = surrogate = head = None
    if dataset is not None:
        store = DatasetStore.open(dataset)
        table = store.table()
        training, ids = torch.as_tensor(store.load()), table["sample_id"].to_numpy()
        surrogate = fit_surrogate(store, mod, training)
        head = fit_recipe_head(table, mod, training)
    return _design(generator, mod, targets, n_candidates=n, n_simulate=n_simulate, surrogate=surrogate,
                   training_samples=training, training_ids=ids, sampler=sampler, seed=seed, regressor=reg,
                   ood_flow=None if ood_flow is None else Generator.from_checkpoint(ood_flow),
                   physics_guidance=physics_guidance, recipe_head=head)


def simulate(processing: pd.DataFrame | Mapping[str, float] | Sequence[Mapping[str, float]], *,
             modality: str = "spinodal", seed: int = 0, modality_options: dict | None = None):
    """Run the oracle: (samples, properties DataFrame) for processing conditions."""
    from genmat.modalities import get_modality

    mod = get_modality(modality, **(modality_options or {}))
    frame = mod.schema.validate_frame(_frame(processing))
    return mod.simulate(frame, seed=seed)


def design_recipes(
    targets=None,
    *,
    task: str | None = None,
    n_targets: int | None = None,
    dataset: str | Path | None = None,
    checkpoint: str | Path | None = None,
    modality: str = "spinodal",
    modality_options: dict | None = None,
    initial: int = 256,
    rounds: int = 6,
    proposals: int = 64,
    train_steps: int = 1500,
    seed: int = 0,
):
    """Recipes (processing) for targets, each verified by running the process simulator.

    ``targets``: target texts — one target (``["E_GPa>=180", "density_g_cm3<=3.0"]``) or several
    (a list of such lists) — a targets frame (a column per field, numbers or texts such as
    ``">=180"`` / ``"in [90, 110]"``), or a :class:`genmat.tasks.TargetSet`. Or ``task``, a
    registered design task (``genmat tasks``), with ``n_targets`` of its targets.
    Point targets take the task's tolerances (else the modality's ``design_tolerances``).
    ``dataset``: an existing dataset to learn from (else ``initial`` prior draws are simulated,
    and counted); ``checkpoint``: a trained recipe generator (else one is trained).
    Returns a :class:`genmat.loop.recipes.RecipeSearchResult` (``recipes``: one row per target
    with ``hit`` and the recipe; ``oracle_calls`` by purpose; ``history``).
    """
    from genmat.conditions import UNSET, ConditionError
    from genmat.data import DatasetStore
    from genmat.loop.recipes import RecipeSearchConfig, search_recipes
    from genmat.modalities import get_modality, get_task
    from genmat.recipes import RecipeGenerator
    from genmat.tasks import TargetSet

    spec = get_task(task) if task is not None else None
    if spec is not None:
        modality, modality_options = spec.modality, {**spec.modality_options, **(modality_options or {})}
    mod = get_modality(modality, **(modality_options or {}))
    tolerances = dict(spec.tolerances) if spec is not None else dict(mod.design_tolerances)
    if not tolerances:
        raise ConditionError("modality", modality, "a modality with property targets", "has no recipe design; use")
    if isinstance(targets, TargetSet):
        target_set = targets
    elif targets is None:
        if spec is None:
            raise ConditionError("targets", UNSET, "target texts, a targets frame or task=NAME", "are missing; give")
        target_set = spec.targets(mod, n_targets)
    elif isinstance(targets, pd.DataFrame):
        target_set = TargetSet.from_frame(targets, tolerances)
    elif isinstance(targets, str):
        target_set = TargetSet.parse_many([[targets]], tolerances)
    elif all(isinstance(t, str) for t in targets):
        target_set = TargetSet.parse_many([list(targets)], tolerances)
    else:
        target_set = TargetSet.parse_many([list(t) for t in targets], tolerances)
    table = None
    if dataset is not None:
        table = DatasetStore.open(dataset).table()
        missing = [c for c in (*mod.schema.subset("processing"), *target_set.fields) if c not in table.columns]
        if missing:
            raise ConditionError("dataset", str(dataset), f"columns {missing} (its table has no such columns)", "lacks")
        table = table.assign(purpose="dataset", round=0)
    generator = RecipeGenerator.from_checkpoint(checkpoint) if checkpoint is not None else None
    config = RecipeSearchConfig(initial=initial, rounds=rounds, proposals=proposals, train_steps=train_steps)
    return search_recipes(mod, target_set, config, table=table, generator=generator, seed=seed)
