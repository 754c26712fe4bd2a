"""Modalities: one small description per kind of sample that every stage reads.

A modality says what a sample looks like (shape), what can be asked for (the
condition schema), how the oracle makes samples (simulate), how samples are
measured and checked (validate), and how to draw them (plot). Adding a modality
means adding one of these, not branching through the stages.
"""

from __future__ import annotations

from typing import Callable

from genmat.errors import InputError
from genmat.modalities.base import Modality
from genmat.modalities.spectrum import SpectrumConfig, SpectrumModality, raman, xrd
from genmat.modalities.spinodal import SpinodalConfig, SpinodalModality

MODALITIES: dict[str, Callable[..., Modality]] = {"spinodal": SpinodalModality, "xrd": xrd, "raman": raman}


def get_modality(name: str, **kwargs) -> Modality:
    """Build a modality by name (``genmat loop --modality NAME``)."""
    if name not in MODALITIES:
        raise InputError(f"modality = {name!r} is not known; allowed: {', '.join(MODALITIES)}")
    return MODALITIES[name](**kwargs)


def design_tasks() -> dict:
    """Every modality's named design tasks (``genmat tasks``; :mod:`genmat.tasks`)."""
    return {t.name: t for factory in MODALITIES.values() for t in getattr(factory, "design_tasks", ())}


def get_task(name: str):
    tasks = design_tasks()
    if name not in tasks:
        from genmat.conditions import ConditionError

        raise ConditionError("task", name, ", ".join(tasks), "is not a known design task; allowed:")
    return tasks[name]


__all__ = ["design_tasks", "get_task", "MODALITIES", "Modality", "SpectrumConfig", "SpectrumModality", "SpinodalConfig", "SpinodalModality",
           "get_modality"]
