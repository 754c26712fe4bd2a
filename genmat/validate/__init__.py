"""Validators of generated candidates: physics checks, simulator checks, novelty, report.

A validator never imports a model: it reads candidates (tensors) and conditions
(DataFrames) and calls only :mod:`genmat.sim` (and :mod:`genmat.conditions`).
Typical use, one row per candidate throughout::

    phys = physics_checks(x, expected_volume_fraction=implied_volume_fraction(cond),
                          reference_s2=reference_s2(cond))
    sim = simulator_check(x, cond)
    nov = novelty_check(x, training)
    report = build_report(meta, phys, sim, nov)
    summarise(report)
"""

from __future__ import annotations

from genmat.validate.micrograph import (
    PROCESSING_FIELDS,
    MicrographChecks,
    ValidateInputError,
    high_frequency_power,
    implied_volume_fraction,
    otsu_two_phase,
    physics_checks,
    reference_s2,
)
from genmat.validate.novelty import NoveltyConfig, nearest_training_distance, novelty_check, training_scale
from genmat.validate.report import VERDICTS, build_report, summarise
from genmat.validate.simulator import TARGET_PROPERTIES, Tolerances, simulator_check

__all__ = [
    "PROCESSING_FIELDS",
    "MicrographChecks",
    "ValidateInputError",
    "high_frequency_power",
    "implied_volume_fraction",
    "otsu_two_phase",
    "physics_checks",
    "reference_s2",
    "NoveltyConfig",
    "nearest_training_distance",
    "novelty_check",
    "training_scale",
    "VERDICTS",
    "build_report",
    "summarise",
    "TARGET_PROPERTIES",
    "Tolerances",
    "simulator_check",
]
