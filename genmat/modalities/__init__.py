"""Modalities: one small description per kind of sample that every stage reads.

A modality says what a sample looks like (shape), what can be asked for (the
condition schema), how the oracle makes samples (simulate), how samples are
measured and checked (validate), and how to draw them (plot). Adding a modality
means adding one of these, not branching through the stages.

Built-in modalities are listed in :data:`BUILTIN`. Other packages add theirs through the
``genmat.modalities`` entry point group (docs/modalities.md)::

    [project.entry-points."genmat.modalities"]
    toy = "my_package.toy:ToyModality"

and ``genmat loop --modality toy`` finds it. A plug-in is loaded only when it is asked for.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Callable

from genmat.errors import InputError
from genmat.modalities.base import REQUIRED, Modality, ModalityBase, missing_members
from genmat.modalities.eels import EELSModality, EELSModalityConfig
from genmat.modalities.grains import GrainModality, GrainModalityConfig
from genmat.modalities.imported import ImportedModality, import_folder
from genmat.modalities.spectrum import SpectrumConfig, SpectrumModality, raman, xrd
from genmat.modalities.spinodal import SpinodalConfig, SpinodalModality

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "genmat.modalities"
DEFAULT_MODALITY = "spinodal"
BUILTIN: dict[str, Callable[..., Modality]] = {"spinodal": SpinodalModality, "xrd": xrd, "raman": raman,
                                               "grains": GrainModality, "eels": EELSModality,
                                               "imported": ImportedModality}
MODALITIES = BUILTIN  # the built-in ones (plug-ins: modality_names())


def _plugins() -> dict[str, metadata.EntryPoint]:
    """Entry points of installed plug-ins (not loaded); a plug-in never shadows a built-in."""
    out = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            log.warning("modality plug-in %r (%s) ignored: a built-in modality has that name", ep.name, ep.value)
        elif ep.name not in out:
            out[ep.name] = ep
    return out


def modality_names() -> tuple[str, ...]:
    """Every modality name: the built-ins, then the installed plug-ins."""
    return (*BUILTIN, *sorted(_plugins()))


def _factory(name: str) -> Callable[..., Modality]:
    if name in BUILTIN:
        return BUILTIN[name]
    plugins = _plugins()
    if name not in plugins:
        raise InputError(f"modality = {name!r} is not known; allowed: {', '.join(modality_names())}",
                         field="modality", value=name, allowed=", ".join(modality_names()))
    ep = plugins[name]
    try:
        factory = ep.load()
    except Exception as exc:  # a broken plug-in is the user's to fix: say which and why
        raise InputError(f"modality plug-in {name!r} ({ep.value}) could not be loaded: "
                         f"{type(exc).__name__}: {exc}", field="modality", value=name) from exc
    if not callable(factory):
        raise InputError(f"modality plug-in {name!r} ({ep.value}) is not a class or factory")
    return factory


def get_modality(name: str, **kwargs) -> Modality:
    """Build a modality by name (``genmat loop --modality NAME``): a built-in or a plug-in."""
    modality = _factory(name)(**kwargs)
    missing = missing_members(modality)
    if missing:
        raise InputError(f"modality {name!r} lacks {', '.join(missing)} (subclass genmat.modalities.ModalityBase "
                         "for the optional ones; docs/modalities.md)", field="modality", value=name)
    if modality.name != name:
        raise InputError(f"modality {name!r} calls itself {modality.name!r}; the names must agree")
    return modality


def modality_of_dataset(path) -> tuple[str, dict]:
    """The modality (name, options) a dataset was made with, from its manifest: the options
    in its simulator settings' ``modality_options`` (an option given as ``"."`` is the
    dataset's own path — how an imported dataset names itself)."""
    from pathlib import Path

    from genmat.data import DatasetStore

    store = DatasetStore.open(path, verify=False)
    options = dict(store.simulator.get("modality_options", {}))
    return store.modality, {k: (str(Path(path)) if v == "." else v) for k, v in options.items()}


def design_tasks() -> dict:
    """Every modality's named design tasks (``genmat tasks``; :mod:`genmat.tasks`); a plug-in
    that cannot be loaded is skipped with a warning."""
    tasks = {}
    for name in modality_names():
        try:
            factory = _factory(name)
        except InputError as exc:
            log.warning("%s", exc)
            continue
        tasks.update({t.name: t for t in getattr(factory, "design_tasks", ())})
    return tasks


def get_task(name: str):
    tasks = design_tasks()
    if name not in tasks:
        from genmat.conditions import ConditionError

        raise ConditionError("task", name, ", ".join(tasks), "is not a known design task; allowed:")
    return tasks[name]


__all__ = ["BUILTIN", "DEFAULT_MODALITY", "ENTRY_POINT_GROUP", "EELSModality", "EELSModalityConfig", "GrainModality", "GrainModalityConfig", "MODALITIES",
           "ImportedModality", "REQUIRED", "Modality", "ModalityBase",
           "SpectrumConfig", "SpectrumModality", "SpinodalConfig", "SpinodalModality", "design_tasks", "get_modality",
           "get_task", "import_folder", "missing_members", "modality_names", "modality_of_dataset"]
