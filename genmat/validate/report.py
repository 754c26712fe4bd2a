"""The design report: one row per candidate, a column per check, a verdict and a reason.

Verdicts, first match wins:

- ``"invalid"``: not a physical sample (the physics checks failed for a reason of their own);
- ``"copy"``: (a shifted copy of) a training sample;
- ``"miss"``: a valid, novel sample that does not meet its condition (a physics check
  against the condition, or the simulator check, failed);
- ``"hit"``: every check that applies passed;
- ``"unscreened"``: a check that applies was not run (no physics checks, or targets
  without a simulator check), so no verdict can be given.

Generic: the checks explain themselves, and nothing here knows a modality. Columns read:
``physics_pass`` with ``physics_reason`` (why a sample is not physical) and, optionally,
``condition_reason`` (how a physical sample disagrees with its condition) and
``physics_note``; ``novel_pass``/``novelty``/``nearest_id``; ``sim_pass`` with
``sim_reason`` (what missed), optionally ``sim_note`` (what was met) and ``n_targets``
(0: the simulator had nothing to confirm). Frame ``attrs`` read: ``target_columns``
(condition columns that need the simulator check; without them every row does),
``novelty_config``, and for :func:`summarise` ``properties``, ``validity_columns`` and
``summary_means``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genmat.validate.micrograph import ValidateInputError
from genmat.validate.novelty import NoveltyConfig

__all__ = ["VERDICTS", "build_report", "summarise"]

VERDICTS = ("hit", "miss", "invalid", "copy", "unscreened")


def _flag(row: pd.Series, col: str) -> bool | None:
    """True/False, or None when the column is absent or NA in this row."""
    if col not in row.index or pd.isna(row[col]):
        return None
    return bool(row[col])


def _text(row: pd.Series, col: str) -> str:
    v = row.get(col)
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _merged_attrs(frames: tuple[pd.DataFrame, ...]) -> dict:
    """The frames' attrs in one dict (dicts merged, tuples joined; the first wins otherwise)."""
    out: dict = {}
    for f in frames:
        for key, value in f.attrs.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            elif isinstance(value, tuple) and isinstance(out.get(key), tuple):
                out[key] = tuple(dict.fromkeys((*out[key], *value)))
            else:
                out.setdefault(key, value)
    return out


def _targeted(row: pd.Series, target_columns: tuple[str, ...] | None) -> bool:
    if target_columns is None:
        return True  # no check said which conditions it confirms: every row needs the simulator
    cols = [c for name in target_columns for c in (name, f"target_{name}")]
    return any(c in row.index and pd.notna(row[c]) for c in cols)


def _verdict(row: pd.Series, novelty: NoveltyConfig, target_columns: tuple[str, ...] | None):
    physics, invalid, condition = _flag(row, "physics_pass"), _text(row, "physics_reason"), _text(row, "condition_reason")
    if physics is False and (invalid or not condition):
        return "invalid", invalid or "physics checks failed"
    if _flag(row, "novel_pass") is False:
        return "copy", (f"copy of training sample {row['nearest_id']} "
                        f"(novelty {row['novelty']:.3f} ≤ {novelty.copy_threshold:g})")
    sim = _flag(row, "sim_pass")
    if sim is not None and "n_targets" in row.index and row["n_targets"] == 0:
        sim = None  # the simulator had nothing to confirm
    missed = [condition] if condition else []
    if sim is False:
        missed.append(_text(row, "sim_reason") or "simulator check failed")
    if missed:
        return "miss", "; ".join(missed)
    if physics is None:
        return "unscreened", "physics checks not run"
    if sim is None and _targeted(row, target_columns):
        return "unscreened", "targets given but the simulator check was not run"
    note = _text(row, "sim_note") if sim else ""
    parts = [note or _text(row, "physics_note") or "every check passed"]
    if sim is None:
        parts[0] += "; no property target (physics checks only)" if target_columns is not None else ""
    if _flag(row, "novel_pass") is not None:
        parts.append(f"novelty {row['novelty']:.2f}")
    return "hit", "; ".join(parts)


def build_report(candidates_meta: pd.DataFrame, *frames: pd.DataFrame) -> pd.DataFrame:
    """Join check results into one report, one row per candidate.

    ``candidates_meta``: B rows (e.g. ``target_id``, ``candidate``, the target fields).
    ``frames``: outputs of :func:`physics_checks`, :func:`simulator_check`,
    :func:`novelty_check` (any subset, any order), each B rows in the same candidate
    order; they are joined by position. Column names must not repeat across inputs.
    Adds ``verdict`` (one of :data:`VERDICTS`) and ``reason`` (readable text).
    """
    if not isinstance(candidates_meta, pd.DataFrame):
        raise ValidateInputError("candidates_meta", type(candidates_meta).__name__, "a pandas DataFrame")
    parts = [candidates_meta.reset_index(drop=True)]
    seen = set(candidates_meta.columns)
    for i, f in enumerate(frames):
        if not isinstance(f, pd.DataFrame):
            raise ValidateInputError(f"frames[{i}]", type(f).__name__, "a pandas DataFrame")
        if len(f) != len(candidates_meta):
            raise ValidateInputError(f"frames[{i}]", f"{len(f)} rows", f"{len(candidates_meta)} rows, one per candidate")
        dup = seen.intersection(f.columns)
        if dup:
            raise ValidateInputError(f"frames[{i}]", sorted(dup), "column names not already in the report")
        seen.update(f.columns)
        parts.append(f.reset_index(drop=True))
    report = pd.concat(parts, axis=1)
    attrs = _merged_attrs(frames)
    novelty = attrs.setdefault("novelty_config", NoveltyConfig())
    verdicts = [_verdict(row, novelty, attrs.get("target_columns")) for _, row in report.iterrows()]
    report["verdict"] = pd.Series([v for v, _ in verdicts], dtype=object)
    report["reason"] = pd.Series([r for _, r in verdicts], dtype=object)
    report.attrs = attrs
    return report


def _mean(report: pd.DataFrame, col: str, mask: np.ndarray | None = None, transform=None) -> float:
    if col not in report.columns:
        return math.nan
    v = pd.to_numeric(report[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if transform is not None:
        v = transform(v)
    if mask is not None:
        v = v[mask]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def summarise(report: pd.DataFrame) -> dict[str, float]:
    """Counts and rates of a report from :func:`build_report`.

    Keys: ``n_candidates``, ``n_<verdict>`` and ``<verdict>_rate`` for every verdict;
    ``physics_pass_rate``, ``valid_rate`` (no validity failure), ``novel_rate``,
    ``mean_novelty``; ``sim_pass_rate`` over rows with a property target (``n_targets`` > 0);
    for each property P the simulator check declares (``attrs["properties"]``, P → column):
    ``<P>_mae`` (absolute error in the column's units) and ``<P>_mape`` (mean |relative
    error|) over targeted rows; the means the checks declare (``attrs["summary_means"]``,
    e.g. the micrograph checks' ``vf_mae`` and ``mean_s2_error``). NaN where the report
    lacks the columns or rows.
    """
    if not isinstance(report, pd.DataFrame) or "verdict" not in report.columns:
        raise ValidateInputError("report", type(report).__name__, "a DataFrame from build_report (with 'verdict')")
    n = len(report)
    out: dict[str, float] = {"n_candidates": float(n)}
    for v in VERDICTS:
        count = float((report["verdict"] == v).sum())
        out[f"n_{v}"] = count
        out[f"{v}_rate"] = count / n if n else math.nan
    out["physics_pass_rate"] = _mean(report, "physics_pass")
    validity = list(report.attrs.get("validity_columns", ()))
    if validity and all(c in report.columns for c in validity):
        out["valid_rate"] = float(report[validity].all(axis=1).mean()) if n else math.nan
    else:
        out["valid_rate"] = math.nan
    out["novel_rate"] = _mean(report, "novel_pass")
    out["mean_novelty"] = _mean(report, "novelty")
    targeted = (
        report["n_targets"].to_numpy() > 0 if "n_targets" in report.columns else np.zeros(n, dtype=bool)
    )
    out["sim_pass_rate"] = _mean(report, "sim_pass", targeted) if targeted.any() else math.nan
    for prop, col in report.attrs.get("properties", {}).items():
        if f"sim_{col}" in report.columns and f"target_{col}" in report.columns:
            err = (report[f"sim_{col}"] - report[f"target_{col}"]).abs()
            finite = err.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            out[f"{prop}_mae"] = float(finite.mean()) if finite.size else math.nan
        else:
            out[f"{prop}_mae"] = math.nan
        out[f"{prop}_mape"] = _mean(report, f"{prop}_rel_err", transform=np.abs)
    for key, (col, absolute) in report.attrs.get("summary_means", {}).items():
        out[key] = _mean(report, col, transform=np.abs if absolute else None)
    return out
