"""The design report: one row per candidate, a column per check, a verdict and a reason.

Verdicts, first match wins:

- ``"invalid"``: not a physical micrograph (non-finite, out of range, not two-phase,
  grid/checkerboard artefacts);
- ``"copy"``: (a shifted copy of) a training sample;
- ``"miss"``: a valid, novel micrograph that does not meet its condition (volume
  fraction, S2 or a targeted property out of tolerance);
- ``"hit"``: every check that applies passed;
- ``"unscreened"``: a check that applies was not run (no physics checks, or property
  targets without a simulator check), so no verdict can be given.

Checks that explain themselves (a ``physics_reason`` column, as the spectrum validators
write) get the same verdicts from their ``physics_pass``/``sim_pass`` flags and reasons.

Thresholds quoted in the reasons come from the ``attrs`` each check leaves on its
frame (``micrograph_checks``, ``tolerances``, ``novelty_config``), else the defaults.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from genmat.validate.micrograph import MicrographChecks, ValidateInputError
from genmat.validate.novelty import NoveltyConfig
from genmat.validate.simulator import TARGET_PROPERTIES, Tolerances

__all__ = ["VERDICTS", "build_report", "summarise"]

VERDICTS = ("hit", "miss", "invalid", "copy", "unscreened")
_VALIDITY = ("finite_pass", "range_pass", "two_phase_pass", "artefact_pass")
_DECIMALS = {"E": 1, "density": 3, "k": 1}  # decimals of each property in reasons


def _attr(frames: tuple[pd.DataFrame, ...], key: str, default):
    for f in frames:
        if key in f.attrs:
            return f.attrs[key]
    return default


def _flag(row: pd.Series, col: str) -> bool | None:
    """True/False, or None when the column is absent or NA in this row."""
    if col not in row.index or pd.isna(row[col]):
        return None
    return bool(row[col])


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _property_message(row: pd.Series, prop: str, tolerances: Tolerances) -> str:
    col, _key, unit = TARGET_PROPERTIES[prop]
    measured, target, rel = row[f"sim_{col}"], row[f"target_{col}"], row[f"{prop}_rel_err"]
    if not math.isfinite(measured):
        return f"{prop} could not be measured (simulator gave {measured})"
    tol = f"tolerance {100 * tolerances.of(prop):g} %"
    m, t = (f"{v:.{_DECIMALS[prop]}f} {unit}" for v in (measured, target))
    if abs(rel) <= tolerances.of(prop):
        return f"{prop} {m} within {100 * abs(rel):.1f} % of target {t} ({tol})"
    side = "above" if rel > 0 else "below"
    return f"{prop} {m} is {100 * abs(rel):.1f} % {side} target {t} ({tol})"


def _invalid_reasons(row: pd.Series, checks: MicrographChecks) -> list[str]:
    out = []
    if _flag(row, "finite_pass") is False:
        return ["non-finite values (NaN or inf) in the micrograph"]
    if _flag(row, "range_pass") is False:
        out.append(f"values out of range (max |c| {_fmt(row.get('max_abs', math.nan))} > {_fmt(checks.max_abs_value)})")
    if _flag(row, "two_phase_pass") is False:
        score = row.get("two_phase_score", math.nan)
        minority = row.get("minority_fraction", math.nan)
        if score < checks.two_phase_min:
            out.append(f"not two-phase (Otsu score {score:.2f} < {checks.two_phase_min:.2f})")
        else:
            out.append(
                f"not two-phase (minority phase {100 * minority:.1f} % of pixels "
                f"< {100 * checks.min_class_fraction:g} %)"
            )
    if _flag(row, "artefact_pass") is False:
        out.append(
            f"grid/checkerboard artefacts ({100 * row.get('artefact_score', math.nan):.1f} % of spectral power "
            f"above {checks.artefact_k_frac:g} × Nyquist > {100 * checks.artefact_max:g} %)"
        )
    return out


def _miss_reasons(row: pd.Series, checks: MicrographChecks, tolerances: Tolerances) -> list[str]:
    out = []
    if _flag(row, "vf_pass") is False:
        phi, err = row["volume_fraction"], row["vf_error"]
        out.append(
            f"volume fraction {phi:.3f} vs {phi - err:.3f} implied by the condition "
            f"(off by {abs(err):.3f} > {checks.vf_tol:g})"
        )
    if _flag(row, "s2_pass") is False:
        out.append(
            f"S2 differs from the simulator reference by {100 * row['s2_error']:.1f} % "
            f"(tolerance {100 * checks.s2_rel_tol:g} %)"
        )
    for prop in TARGET_PROPERTIES:
        if _flag(row, f"{prop}_pass") is False:
            out.append(_property_message(row, prop, tolerances))
    return out


def _has_property_target(row: pd.Series) -> bool:
    cols = [c for prop in TARGET_PROPERTIES.values() for c in (prop[0], f"target_{prop[0]}")]
    return any(c in row.index and pd.notna(row[c]) for c in cols)


def _self_explaining_verdict(row: pd.Series, novelty: NoveltyConfig):
    """Verdict from checks that carry their own reasons (``physics_reason``, ``sim_reason``;
    e.g. the spectrum validators): physics failure → invalid, simulator failure → miss."""
    if _flag(row, "physics_pass") is False:
        return "invalid", str(row["physics_reason"])
    if _flag(row, "novel_pass") is False:
        return "copy", (f"copy of training sample {row['nearest_id']} "
                        f"(novelty {row['novelty']:.3f} ≤ {novelty.copy_threshold:g})")
    if _flag(row, "sim_pass") is False:
        return "miss", str(row.get("sim_reason", "simulator check failed"))
    if _flag(row, "sim_pass") is None:
        return "unscreened", "physics checks passed; simulator check not run (no target given)"
    parts = ["every check passed"]
    if _flag(row, "novel_pass") is not None:
        parts.append(f"novelty {row['novelty']:.2f}")
    return "hit", "; ".join(parts)


def _verdict(row: pd.Series, checks: MicrographChecks, tolerances: Tolerances, novelty: NoveltyConfig):
    if "physics_reason" in row.index:
        return _self_explaining_verdict(row, novelty)
    invalid = _invalid_reasons(row, checks)
    if invalid:
        return "invalid", "; ".join(invalid)
    if _flag(row, "novel_pass") is False:
        return "copy", (
            f"copy of training sample {row['nearest_id']} "
            f"(novelty {row['novelty']:.3f} ≤ {novelty.copy_threshold:g})"
        )
    missed = _miss_reasons(row, checks, tolerances)
    if missed:
        return "miss", "; ".join(missed)
    if _flag(row, "physics_pass") is None:
        return "unscreened", "physics checks not run"
    targeted = _has_property_target(row)
    if targeted and _flag(row, "sim_pass") is None:
        return "unscreened", "property targets given but the simulator check was not run"
    parts = [_property_message(row, p, tolerances) for p in TARGET_PROPERTIES if _flag(row, f"{p}_pass") and
             pd.notna(row.get(f"{p}_rel_err", math.nan))]
    if not parts:
        parts = ["valid two-phase micrograph; no property target (physics checks only)"]
    if _flag(row, "novel_pass") is None:
        parts.append("novelty not checked")
    else:
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
    checks = _attr(frames, "micrograph_checks", MicrographChecks())
    tolerances = _attr(frames, "tolerances", Tolerances())
    novelty = _attr(frames, "novelty_config", NoveltyConfig())
    verdicts = [_verdict(row, checks, tolerances, novelty) for _, row in report.iterrows()]
    report["verdict"] = pd.Series([v for v, _ in verdicts], dtype=object)
    report["reason"] = pd.Series([r for _, r in verdicts], dtype=object)
    report.attrs.update({"micrograph_checks": checks, "tolerances": tolerances, "novelty_config": novelty})
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
    ``mean_novelty``; ``sim_pass_rate`` over rows with a property target;
    ``<P>_mae`` (absolute error, target units: E in GPa, density in g/cm³, k in
    W/(m·K)) and ``<P>_mape`` (mean |relative error|) over targeted rows;
    ``vf_mae`` and ``mean_s2_error``. NaN where the report lacks the columns or rows.
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
    if all(c in report.columns for c in _VALIDITY):
        out["valid_rate"] = float(report[list(_VALIDITY)].all(axis=1).mean()) if n else math.nan
    else:
        out["valid_rate"] = math.nan
    out["novel_rate"] = _mean(report, "novel_pass")
    out["mean_novelty"] = _mean(report, "novelty")
    targeted = (
        report["n_targets"].to_numpy() > 0 if "n_targets" in report.columns else np.zeros(n, dtype=bool)
    )
    out["sim_pass_rate"] = _mean(report, "sim_pass", targeted) if targeted.any() else math.nan
    for prop, (col, _key, _unit) in TARGET_PROPERTIES.items():
        if f"sim_{col}" in report.columns and f"target_{col}" in report.columns:
            err = (report[f"sim_{col}"] - report[f"target_{col}"]).abs()
            finite = err.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            out[f"{prop}_mae"] = float(finite.mean()) if finite.size else math.nan
        else:
            out[f"{prop}_mae"] = math.nan
        out[f"{prop}_mape"] = _mean(report, f"{prop}_rel_err", transform=np.abs)
    out["vf_mae"] = _mean(report, "vf_error", transform=np.abs)
    out["mean_s2_error"] = _mean(report, "s2_error")
    return out
