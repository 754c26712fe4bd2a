"""Design tasks: what a scientist asks for, as data.

A **target** gives each of its fields an interval ``[lo, hi]`` (either end may be open):

    E_GPa=180            a point, widened by the field's tolerance (5 % → [171, 189])
    E_GPa>=180           a lower bound (also ``>``)
    density_g_cm3<=2.9   an upper bound (also ``<``)
    k_W_mK in [90, 110]  a range (also ``k_W_mK=[90,110]``)

A design **hits** a target when every simulated field lies inside its interval; a point
target is the interval its tolerance allows, so "within 5 % of 180 GPa" and
``E_GPa in [171, 189]`` are the same question. How far a value is from satisfying a
target is measured in units of the field's tolerance (:meth:`TargetSet.violation`):
≤ 0 is a hit, and the number is what a Bayesian optimiser or a screen minimises.

A :class:`DesignTask` is a named target set with tolerances, the modality that judges
it and how its targets are drawn (from held-out simulations, so every target is
feasible). Modalities declare their tasks (``Modality.design_tasks``); the same task
runs through ``genmat recipes``, the Python API and ``benchmarks/design.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from genmat.conditions import UNSET, ConditionError
from genmat.errors import InputError

INF = math.inf
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PATTERNS = (
    (re.compile(rf"^\s*(\w+)\s*(>=|<=|>|<|=)\s*({_NUMBER})\s*$", re.I), "cmp"),
    (re.compile(rf"^\s*(\w+)\s*(?:=|\s+in\s+)\s*\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]\s*$", re.I), "range"),
)
TARGET_SYNTAX = "NAME=VALUE, NAME>=VALUE, NAME<=VALUE or 'NAME in [LOW, HIGH]'"


@dataclass(frozen=True)
class Tolerance:
    """How close a point target must be met: ``rel`` (fraction of |value|) or ``abs`` (field units)."""

    kind: str = "rel"
    value: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in ("rel", "abs"):
            raise ConditionError("tolerance kind", self.kind, "rel or abs", "is not one of")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ConditionError("tolerance", self.value, "(0, ∞)")

    def width(self, at: np.ndarray | float) -> np.ndarray:
        """Half-width of the allowed interval around ``at``."""
        at = np.asarray(at, dtype=float)
        return np.abs(at) * self.value if self.kind == "rel" else np.full_like(at, self.value)


def _number(fieldname: str, text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ConditionError(fieldname, text, "a finite number", "is not finite; give")
    return value


def parse_target(text: str) -> tuple[str, float, float, bool]:
    """``"E_GPa>=180"`` → (field, lo, hi, is_point); a point has lo = hi = value."""
    for pattern, kind in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        name = m.group(1)
        if kind == "range":
            lo, hi = _number(name, m.group(2)), _number(name, m.group(3))
            if lo > hi:
                raise ConditionError(name, f"[{lo:g}, {hi:g}]", "an interval with LOW ≤ HIGH", "is empty; give")
            return name, lo, hi, False
        op, value = m.group(2), _number(name, m.group(3))
        if op == "=":
            return name, value, value, True
        return (name, value, INF, False) if op.startswith(">") else (name, -INF, value, False)
    raise ConditionError("target", text, TARGET_SYNTAX, "is not understood; write")


@dataclass
class TargetSet:
    """T targets over F fields: each field of each target an interval [lo, hi].

    ``lo``/``hi`` are (T, F) arrays (±inf = open end, NaN in both = field not asked for);
    ``point`` (T, F) holds the asked-for value of point targets (NaN otherwise) and
    ``scale`` (T, F) the tolerance unit in which :meth:`violation` counts.
    """

    fields: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    point: np.ndarray
    scale: np.ndarray
    reference: pd.DataFrame | None = None  # e.g. the held-out processing each target came from

    def __len__(self) -> int:
        return int(self.lo.shape[0])

    @property
    def asked(self) -> np.ndarray:
        """(T, F) True where the field is part of the target."""
        return ~(np.isnan(self.lo) & np.isnan(self.hi))

    @classmethod
    def from_specs(cls, specs: Sequence[Mapping[str, tuple[float, float, bool]]],
                   tolerances: Mapping[str, Tolerance], reference: pd.DataFrame | None = None) -> "TargetSet":
        """From one mapping per target: field → (lo, hi, is_point) (as :func:`parse_target` gives)."""
        fields = tuple(dict.fromkeys(f for spec in specs for f in spec))
        shape = (len(specs), len(fields))
        lo, hi, point, scale = (np.full(shape, np.nan) for _ in range(4))
        for i, spec in enumerate(specs):
            for j, name in enumerate(fields):
                if name not in spec:
                    continue
                a, b, is_point = spec[name]
                if name not in tolerances:
                    raise ConditionError(name, a if is_point else f"[{a:g}, {b:g}]", ", ".join(tolerances),
                                         "is not a field this task can check; allowed:")
                tol = tolerances[name]
                if is_point:
                    w = float(tol.width(a))
                    lo[i, j], hi[i, j], point[i, j], scale[i, j] = a - w, a + w, a, w
                else:
                    lo[i, j], hi[i, j] = a, b
                    finite = [v for v in (a, b) if math.isfinite(v)]
                    half = 0.5 * (b - a) if len(finite) == 2 else 0.0
                    scale[i, j] = max(half, float(tol.width(np.mean(finite)))) if finite else 1.0
        scale = np.where(np.isnan(scale), scale, np.maximum(scale, 1e-12))  # a zero-width target still divides
        return cls(fields, lo, hi, point, scale, reference)

    @classmethod
    def parse_many(cls, targets: Sequence[Sequence[str]], tolerances: Mapping[str, Tolerance]) -> "TargetSet":
        """Targets from target texts, one list per target (``-t`` strings; each field once)."""
        specs = []
        for texts in targets:
            spec: dict[str, tuple[float, float, bool]] = {}
            for text in texts:
                name, lo, hi, is_point = parse_target(text)
                if name in spec:
                    raise ConditionError(name, text, "each field once per target", "is given twice; give")
                spec[name] = (lo, hi, is_point)
            if not spec:
                raise ConditionError("target", UNSET, TARGET_SYNTAX, "is empty; give at least one, as")
            specs.append(spec)
        return cls.from_specs(specs, tolerances)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, tolerances: Mapping[str, Tolerance]) -> "TargetSet":
        """A targets file: a column per field holding a number (point) or a target text
        (``">=180"``, ``"in [90, 110]"``); empty cells = not asked for."""
        specs = []
        for row_id, row in frame.iterrows():
            spec = {}
            for name, cell in row.items():
                if cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == "":
                    continue
                text = str(cell).strip()
                text = f"{name}{text}" if text[0] in "<>=" else (f"{name} {text}" if text.startswith("in") else f"{name}={text}")
                try:
                    _, lo, hi, is_point = parse_target(text)
                except ConditionError as err:
                    raise err.at_row(row_id) from None
                spec[str(name)] = (lo, hi, is_point)
            specs.append(spec)
        return cls.from_specs(specs, tolerances)

    def subset(self, idx) -> "TargetSet":
        idx = np.asarray(idx)
        ref = None if self.reference is None else self.reference.iloc[idx].reset_index(drop=True)
        return TargetSet(self.fields, self.lo[idx], self.hi[idx], self.point[idx], self.scale[idx], ref)

    # ------------------------------------------------------------------ judging
    def values_of(self, rows: pd.DataFrame) -> np.ndarray:
        """(N, F) values of this set's fields from an oracle table."""
        missing = [f for f in self.fields if f not in rows.columns]
        if missing:
            raise KeyError(f"the oracle's table has no column {missing}")
        return rows[list(self.fields)].to_numpy(dtype=float)

    def violation(self, values: np.ndarray, target: int | np.ndarray | None = None) -> np.ndarray:
        """How far values (N, F) are outside the targets, in tolerance units (max over fields).

        With ``target`` None: an (N, T) matrix against every target; with an index: (N,)
        against that one; with an (N,) index array: row i against target[i]. ≤ 0 is a hit.
        """
        values = np.asarray(values, dtype=float)
        if target is None:
            v = values[:, None, :]
            lo, hi, s, asked = self.lo[None], self.hi[None], self.scale[None], self.asked[None]
        else:
            v = values
            lo, hi, s, asked = self.lo[target], self.hi[target], self.scale[target], self.asked[target]
        with np.errstate(invalid="ignore"):
            out = np.maximum((lo - v) / s, (v - hi) / s)
        out = np.where(asked, out, -np.inf)
        out = np.where(asked & ~np.isfinite(v), np.inf, out)  # a NaN measurement never hits
        return out.max(axis=-1)

    def hits(self, values: np.ndarray, target=None) -> np.ndarray:
        return self.violation(values, target) <= 0

    def soft_loss(self, values, target: np.ndarray):
        """A differentiable misfit (B,) of torch ``values`` (field → (B,) tensor) against
        targets ``target`` (B,): ½ Σ_fields d², d in tolerance units — the distance to the
        asked-for value of a point target, the distance outside the interval of a range or
        bound (0 inside). The negative log-likelihood physics guidance descends."""
        import torch

        target = np.asarray(target)
        total = None
        for j, name in enumerate(self.fields):
            asked = self.asked[target, j]
            if not asked.any():
                continue
            y = values[name]
            point = self.point[target, j]
            lo = np.where(np.isfinite(point), point, self.lo[target, j])
            hi = np.where(np.isfinite(point), point, self.hi[target, j])
            lo, hi = np.where(asked, lo, -np.inf), np.where(asked, hi, np.inf)
            scale = np.where(asked, self.scale[target, j], 1.0)
            lo_t, hi_t, scale_t = (torch.as_tensor(a, dtype=y.dtype, device=y.device) for a in (lo, hi, scale))
            d = (torch.relu(lo_t - y) + torch.relu(y - hi_t)) / scale_t
            term = 0.5 * d.square()
            total = term if total is None else total + term
        if total is None:
            raise InputError("soft_loss: none of the targets asks for any field")
        return total

    # ------------------------------------------------------------------ showing
    def describe(self, i: int) -> str:
        parts = []
        for j, name in enumerate(self.fields):
            lo, hi, p = self.lo[i, j], self.hi[i, j], self.point[i, j]
            if np.isnan(lo) and np.isnan(hi):
                continue
            if np.isfinite(p):
                parts.append(f"{name}={p:.4g}±{self.scale[i, j]:.2g}")
            elif np.isinf(hi):
                parts.append(f"{name}>={lo:.4g}")
            elif np.isinf(lo):
                parts.append(f"{name}<={hi:.4g}")
            else:
                parts.append(f"{name} in [{lo:.4g}, {hi:.4g}]")
        return ", ".join(parts)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"target": [self.describe(i) for i in range(len(self))]})
        for j, name in enumerate(self.fields):
            frame[f"{name}_lo"], frame[f"{name}_hi"] = self.lo[:, j], self.hi[:, j]
        if self.reference is not None:
            frame = pd.concat([frame, self.reference.add_prefix("ref_")], axis=1)
        return frame


# -------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class DesignTask:
    """A named design problem: fields, tolerances, how targets are drawn.

    ``kinds`` are the target forms drawn per field, with ``kind_weights``: "point" (the
    held-out value ± tolerance), "ge"/"le" (a one-sided bound a little inside the
    held-out value, so it stays feasible) and "range" (an interval around it of
    ``range_width`` × the field's spread). Targets come from ``n_targets`` held-out
    simulations (seed ``seed``, disjoint from any training seed).
    """

    name: str
    modality: str
    description: str
    fields: tuple[str, ...]
    tolerances: Mapping[str, Tolerance]
    modality_options: Mapping = field(default_factory=dict)
    n_targets: int = 32
    kinds: tuple[str, ...] = ("point",)
    kind_weights: tuple[float, ...] = (1.0,)
    range_width: float = 0.15
    seed: int = 1_000_003

    def targets(self, modality, n: int | None = None, *, seed: int | None = None) -> TargetSet:
        """Draw the task's targets from held-out oracle simulations of ``modality``."""
        n = self.n_targets if n is None else int(n)
        if n < 1:
            raise ConditionError("n_targets", n, "[1, ∞)")
        seed = self.seed if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        processing = modality.draw_processing(n, rng)
        _, rows = modality.simulate(processing, seed=seed)
        values = rows[list(self.fields)].to_numpy(dtype=float)
        spread = np.nanstd(values, axis=0)
        specs = []
        for i in range(n):
            spec = {}
            for j, name in enumerate(self.fields):
                v = values[i, j]
                kind = self.kinds[rng.choice(len(self.kinds), p=np.asarray(self.kind_weights) / sum(self.kind_weights))]
                w = self.range_width * spread[j]
                if kind == "point":
                    spec[name] = (v, v, True)
                elif kind == "ge":
                    spec[name] = (v - rng.uniform(0, w), INF, False)
                elif kind == "le":
                    spec[name] = (-INF, v + rng.uniform(0, w), False)
                elif kind == "range":
                    a = v - rng.uniform(0, w)
                    spec[name] = (a, a + w, False)
                else:
                    raise ConditionError("kinds", kind, "point, ge, le or range", "is not one of")
            specs.append(spec)
        return TargetSet.from_specs(specs, self.tolerances, reference=processing.reset_index(drop=True))


__all__ = ["DesignTask", "TARGET_SYNTAX", "TargetSet", "Tolerance", "parse_target"]
