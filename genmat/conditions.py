"""Condition schema: named fields with units and ranges, validation of conditions
given as any subset of the fields, and their encoding for networks.

A condition is a mapping ``field name -> float`` in physical units (the unit is part
of the name: ``temperature_K``, ``E_GPa``, ``density_g_cm3``). Any subset of the
fields may be given. Networks see each field normalised to [-1, 1] by its range,
plus a mask (1 = given, 0 = not given), so that every field can be dropped on its own.

This module imports nothing of genmat but its error base (genmat.errors).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from genmat.errors import InputError

KINDS = ("processing", "property", "composition")
SCHEMA_FORMAT_VERSION = 1

Feasibility = Callable[[dict[str, float]], None]


class _Unset:
    """Marks an error that shows no value (unknown field, empty condition)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:  # unpickles to the module singleton
        return "UNSET"


UNSET = _Unset()


def _fmt(value: Any) -> str:
    """Short human text of a value for an error message (numbers as ``%g``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SchemaError(InputError):
    """The schema definition itself is invalid (a programming error in a modality)."""


class ConditionError(InputError):
    """A condition a user gave is not allowed.

    Attributes: ``field`` (name), ``value`` (as given), ``allowed`` (human text such as
    ``"[70, 410] GPa"`` or ``"one of x_B, temperature_K"``), ``row`` (the DataFrame
    index label, or None). The message is one line, e.g.
    ``E_GPa = 999 GPa is outside the allowed range [70, 410] GPa``.
    """

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: str,
        problem: str = "is outside the allowed range",
        *,
        unit: str = "",
        row: Any = None,
    ) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        self.problem, self.unit, self.row = problem, unit, row
        super().__init__(self._message(), field=field, value=value, allowed=allowed)

    def _message(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        if self.value is UNSET:
            text = f"{where}{self.field} {self.problem} {self.allowed}"
        else:
            value = _fmt(self.value) + (f" {self.unit}" if self.unit else "")
            text = f"{where}{self.field} = {value} {self.problem} {self.allowed}"
        return " ".join(text.split())  # one line

    def at_row(self, row: Any) -> "ConditionError":
        """The same error, naming the DataFrame row it came from."""
        return ConditionError(self.field, self.value, self.allowed, self.problem, unit=self.unit, row=row)

    def __reduce__(self):  # picklable (e.g. across Prefect task workers)
        return (_rebuild_condition_error, (self.field, self.value, self.allowed, self.problem, self.unit, self.row))


def _rebuild_condition_error(field, value, allowed, problem, unit, row) -> ConditionError:
    return ConditionError(field, value, allowed, problem, unit=unit, row=row)


@dataclass(frozen=True)
class Field:
    """One condition field.

    ``name`` carries the unit (``temperature_K``); ``unit`` is the display unit
    (``""`` for dimensionless); ``[low, high]`` is the allowed range in that unit and
    the interval mapped onto [-1, 1]; ``kind`` is "processing", "property" or
    "composition".
    """

    name: str
    unit: str
    low: float
    high: float
    kind: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SchemaError(f"field name {self.name!r} must be a Python identifier such as 'temperature_K'")
        if self.kind not in KINDS:
            raise SchemaError(f"field {self.name}: kind = {self.kind!r} must be one of {', '.join(KINDS)}")
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise SchemaError(f"field {self.name}: {attr} = {v!r} must be a finite number")
            object.__setattr__(self, attr, float(v))
        if not self.low < self.high:
            raise SchemaError(f"field {self.name}: low = {self.low:g} must be < high = {self.high:g}")
        object.__setattr__(self, "unit", str(self.unit))
        object.__setattr__(self, "description", str(self.description))

    @property
    def range_text(self) -> str:
        """e.g. ``"[70, 410] GPa"``."""
        return f"[{self.low:g}, {self.high:g}]" + (f" {self.unit}" if self.unit else "")

    def normalise(self, x):
        """Physical value(s) -> [-1, 1] over [low, high] (linear; values outside map beyond ±1)."""
        return 2.0 * (x - self.low) / (self.high - self.low) - 1.0

    def denormalise(self, v):
        """Inverse of :meth:`normalise`."""
        return self.low + (v + 1.0) * 0.5 * (self.high - self.low)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "unit": self.unit,
            "low": self.low,
            "high": self.high,
            "kind": self.kind,
            "description": self.description,
        }


@dataclass(frozen=True)
class ConditionSchema:
    """The fields a modality may be conditioned on, in a fixed order (the F axis).

    ``feasibility`` is an optional modality-supplied check called by :meth:`validate`
    (and per row by :meth:`validate_frame`) with the dict of given fields; it raises
    :class:`ConditionError` for infeasible combinations. It is not persisted and not
    part of equality: two schemas are equal when their fields are.
    """

    fields: tuple[Field, ...]
    feasibility: Feasibility | None = dc_field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        fields = tuple(self.fields)
        if not fields:
            raise SchemaError("a condition schema needs at least one field")
        for f in fields:
            if not isinstance(f, Field):
                raise SchemaError(f"schema fields must be Field objects, got {type(f).__name__}")
        names = [f.name for f in fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaError(f"duplicate field names: {', '.join(dup)}")
        if self.feasibility is not None and not callable(self.feasibility):
            raise SchemaError("feasibility must be a callable taking a dict of given fields")
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    # ------------------------------------------------------------------ lookup
    @property
    def names(self) -> tuple[str, ...]:
        """Field names in schema order."""
        return tuple(f.name for f in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def field(self, name: str) -> Field:
        """The field called ``name``; ConditionError listing the known fields otherwise."""
        try:
            return self.fields[self._index[name]]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    def subset(self, kind: str) -> tuple[str, ...]:
        """Names of the fields of one kind ("processing", "property", "composition")."""
        if kind not in KINDS:
            raise ConditionError("kind", kind, ", ".join(KINDS), "is not a field kind; expected one of")
        return tuple(f.name for f in self.fields if f.kind == kind)

    def _known_text(self) -> str:
        return ", ".join(self.names)

    def _unknown(self, name: Any, row: Any = None) -> ConditionError:
        return ConditionError(
            str(name), UNSET, self._known_text(), "is not a condition field; known fields are", row=row
        )

    # -------------------------------------------------------------- validation
    def validate(self, condition: Mapping[str, float]) -> dict[str, float]:
        """Check one condition (any non-empty subset of the fields, physical units).

        ``None`` means "not given". Returns ``{name: float}`` in schema order, then
        calls ``feasibility``. Raises ConditionError for an unknown field, a
        non-numeric, NaN/inf or out-of-range value, or an empty condition.
        """
        if not isinstance(condition, Mapping):
            raise ConditionError(
                "condition", type(condition).__name__, "a mapping of field name to number", "is not"
            )
        for name in condition:
            if name not in self._index:
                raise self._unknown(name)
        clean: dict[str, float] = {}
        for f in self.fields:
            if f.name not in condition or condition[f.name] is None:
                continue
            clean[f.name] = self._check_value(f, condition[f.name])
        if not clean:
            raise ConditionError(
                "condition", UNSET, f"at least one of {self._known_text()}", "is empty; give"
            )
        if self.feasibility is not None:
            self.feasibility(dict(clean))
        return clean

    @staticmethod
    def _check_value(f: Field, value: Any) -> float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ConditionError(f.name, value, f"a number in {f.range_text}", "is not a number; expected")
        x = float(value)
        if not math.isfinite(x):
            raise ConditionError(f.name, x, f"a finite number in {f.range_text}", "is not finite; expected")
        if not f.low <= x <= f.high:
            raise ConditionError(f.name, x, f.range_text, unit=f.unit)
        return x

    def validate_frame(
        self, df: pd.DataFrame, *, extra: str = "error", allow_empty: bool = False
    ) -> pd.DataFrame:
        """Check many conditions, one per row (NaN = that field not given for that row).

        Columns not in the schema raise ConditionError unless ``extra="ignore"`` (they
        are then dropped). A row with no field given raises unless ``allow_empty``.
        Errors name the row's index label. Returns the schema columns present in
        ``df`` (schema order, float64, same index); feasibility is checked per row.
        """
        if extra not in ("error", "ignore"):
            raise ConditionError("extra", extra, "one of error, ignore", "is not allowed; expected")
        if not isinstance(df, pd.DataFrame):
            raise ConditionError("conditions", type(df).__name__, "a pandas DataFrame", "is not")
        if extra == "error":
            for col in df.columns:
                if col not in self._index:
                    raise self._unknown(col)
        cols = [n for n in self.names if n in df.columns]
        out = pd.DataFrame(index=df.index)
        for name in cols:
            out[name] = self._numeric_column(self.field(name), df[name])
        for name in cols:
            f = self.field(name)
            x = out[name].to_numpy()
            bad = np.flatnonzero(np.isinf(x) | (np.isfinite(x) & ((x < f.low) | (x > f.high))))
            if len(bad):
                i = bad[0]
                if np.isinf(x[i]):
                    raise ConditionError(
                        name, x[i], f"a finite number in {f.range_text}", "is not finite; expected", row=df.index[i]
                    )
                raise ConditionError(name, x[i], f.range_text, unit=f.unit, row=df.index[i])
        given = out.notna().to_numpy()
        if not allow_empty and len(out):
            empty = np.flatnonzero(~given.any(axis=1)) if cols else np.arange(len(out))
            if len(empty):
                raise ConditionError(
                    "condition", UNSET, f"at least one of {self._known_text()}", "is empty; give",
                    row=df.index[empty[0]],
                )
        if self.feasibility is not None:
            values = out.to_numpy()
            for i, label in enumerate(out.index):
                cond = {c: float(values[i, j]) for j, c in enumerate(cols) if given[i, j]}
                if not cond:
                    continue
                try:
                    self.feasibility(cond)
                except ConditionError as err:
                    raise err.at_row(label) from None
        return out

    @staticmethod
    def _numeric_column(f: Field, col: pd.Series) -> pd.Series:
        """Column as float64; ConditionError (naming the row) for non-numeric entries."""
        if pd.api.types.is_bool_dtype(col.dtype):
            raise ConditionError(
                f.name, col.iloc[0] if len(col) else True, f"a number in {f.range_text}",
                "is not a number; expected", row=col.index[0] if len(col) else None,
            )
        if pd.api.types.is_numeric_dtype(col.dtype):
            return col.astype("float64")
        bad = [
            i for i, v in enumerate(col)
            if not (v is None or v is pd.NA or isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)))
        ]
        if bad:
            i = bad[0]
            raise ConditionError(
                f.name, col.iloc[i], f"a number in {f.range_text}", "is not a number; expected", row=col.index[i]
            )
        num = pd.to_numeric(col, errors="coerce")
        return num.astype("float64")

    # ----------------------------------------------------------------- encoding
    def jitter(self, frame: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        """Gaussian jitter of ``scale`` × each field's range on the frame's schema columns,
        clipped to the allowed ranges (neighbouring conditions for acquisition)."""
        out = frame.copy().reset_index(drop=True)
        for name in [n for n in self.names if n in out.columns]:
            f = self.field(name)
            out[name] = np.clip(out[name].to_numpy(float) + rng.normal(0.0, scale, len(out)) * (f.high - f.low),
                                f.low, f.high)
        return out

    def encode(self, rows: pd.DataFrame | Sequence[Mapping[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditions -> (values, mask), both float32 tensors of shape (B, F).

        ``values`` is each field normalised to [-1, 1] over its range (0 where not
        given), ``mask`` is 1 where the field is given (NaN/None/missing column = not
        given). Columns that are not fields (ids, extras) are ignored; ranges are not
        checked here (measured data may lie slightly outside the target ranges and
        then maps beyond ±1) — use :meth:`validate_frame` for user input.
        """
        if isinstance(rows, pd.DataFrame):
            df = rows
        elif isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
            for i, r in enumerate(rows):
                if not isinstance(r, Mapping):
                    raise ConditionError("condition", type(r).__name__, "a mapping of field name to number",
                                         "is not", row=i)
            df = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in r.items()} for r in rows])
        else:
            raise ConditionError("rows", type(rows).__name__, "a DataFrame or a sequence of mappings", "is not")
        n = len(df)
        values = np.zeros((n, len(self)), dtype=np.float64)
        mask = np.zeros((n, len(self)), dtype=np.float64)
        for j, f in enumerate(self.fields):
            if f.name not in df.columns:
                continue
            x = self._numeric_column(f, df[f.name]).to_numpy()
            inf = np.flatnonzero(np.isinf(x))
            if len(inf):
                raise ConditionError(f.name, x[inf[0]], "a finite number or NaN (not given)",
                                     "is not finite; expected", row=df.index[inf[0]])
            given = np.isfinite(x)
            values[given, j] = f.normalise(x[given])
            mask[given, j] = 1.0
        return torch.from_numpy(values.astype(np.float32)), torch.from_numpy(mask.astype(np.float32))

    def decode(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> pd.DataFrame:
        """Inverse of :meth:`encode`: (B, F) normalised values -> DataFrame in physical
        units, one column per field in schema order; NaN where ``mask`` (B, F) is 0."""
        v = torch.as_tensor(values).detach().to("cpu", torch.float64).numpy()
        if v.ndim != 2 or v.shape[1] != len(self):
            raise ConditionError(
                "values", f"shape {tuple(v.shape)}", f"shape (B, {len(self)})", "has the wrong shape; expected"
            )
        out = np.empty_like(v)
        for j, f in enumerate(self.fields):
            out[:, j] = f.denormalise(v[:, j])
        if mask is not None:
            m = torch.as_tensor(mask).detach().cpu().numpy()
            if m.shape != v.shape:
                raise ConditionError("mask", f"shape {tuple(m.shape)}", f"shape {tuple(v.shape)} like values",
                                     "has the wrong shape; expected")
            out[m == 0] = np.nan
        return pd.DataFrame(out, columns=list(self.names))

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-safe description (plain str/float) for manifests and checkpoints."""
        return {"format_version": SCHEMA_FORMAT_VERSION, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], feasibility: Feasibility | None = None) -> "ConditionSchema":
        """Rebuild from :meth:`to_dict`; the feasibility check is code, so it is passed in."""
        if not isinstance(d, Mapping) or "fields" not in d:
            raise SchemaError("a schema dict needs a 'fields' list (from ConditionSchema.to_dict())")
        version = d.get("format_version", SCHEMA_FORMAT_VERSION)
        if version != SCHEMA_FORMAT_VERSION:
            raise SchemaError(f"schema format_version = {version!r}; this genmat reads {SCHEMA_FORMAT_VERSION}")
        try:
            fields = tuple(
                Field(
                    name=f["name"], unit=f["unit"], low=f["low"], high=f["high"],
                    kind=f["kind"], description=f.get("description", ""),
                )
                for f in d["fields"]
            )
        except (KeyError, TypeError) as err:
            raise SchemaError(f"malformed field in schema dict: {err}") from None
        return cls(fields, feasibility)

    def describe(self) -> str:
        """A plain-text table of the fields: name, unit, range, kind, description."""
        head = ("field", "unit", "range", "kind", "description")
        rows = [(f.name, f.unit or "-", f"[{f.low:g}, {f.high:g}]", f.kind, f.description) for f in self.fields]
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(4)]
        lines = []
        for r in (head, *rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        return "\n".join(line.rstrip() for line in lines)
