"""Validators of EELS spectra (low loss + core loss, counts): is it an EELS measurement,
and does it show the composition and thickness asked for.

**Physics checks** (cheap, no fit): finite, non-negative counts; the zero-loss peak at
0 eV; a plausible thickness by the log-ratio method (exspy's ``estimate_thickness``); a
power-law pre-edge background with an exponent r in a plausible range (least squares of
log counts on log energy, before the first edge); and, against the sample's condition,
every element with a given fraction ≥ ``min_fraction`` showing its edge — a rise above the
extrapolated background of more than ``jump_sigmas`` Poisson σ, its steepest point within
``onset_tolerance_eV`` of the onset in exspy's element database.

**Simulator check** (the measurement an EELS analyst makes): the core loss fitted with
exspy's model (power-law background and the elements' hydrogenic edges, convolved with the
sample's own low loss, so plural scattering is accounted for) gives the atomic fractions
as the ratio of the edges' intensities; the log-ratio gives t/λ. Both are compared with
the target within :class:`EELSTolerances`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genmat.sim.eels import EELS_ELEMENTS, EELSConfig, edge_onsets, eels_signal
from genmat.validate.micrograph import ValidateInputError

__all__ = ["EELSChecks", "EELSTolerances", "eels_measure", "eels_physics_checks", "eels_simulator_check",
           "fraction_field"]

VALIDITY_COLUMNS = ("finite_pass", "zlp_pass", "thickness_pass", "background_pass")


def fraction_field(element: str) -> str:
    return f"x_{element}"


@dataclass(frozen=True)
class EELSChecks:
    zlp_tolerance_eV: float = 1.0  # the low loss's maximum within this of 0 eV
    t_range: tuple[float, float] = (0.05, 2.5)  # plausible t/λ by the log-ratio method
    zlp_threshold_eV: float = 3.0  # the end of the zero-loss peak for the log-ratio
    r_range: tuple[float, float] = (2.0, 5.0)  # power-law exponent of the pre-edge background
    pre_edge_eV: tuple[float, float] = (252.0, 280.0)  # the background window before the first edge
    min_fraction: float = 0.1  # an element given at least this fraction must show its edge
    jump_sigmas: float = 20.0  # its rise above the extrapolated background, in Poisson σ (an absent edge: < 10)
    onset_tolerance_eV: float = 3.0


@dataclass(frozen=True)
class EELSTolerances:
    fraction_abs: float = 0.05  # |fitted − target| atomic fraction
    t_lambda_abs: float = 0.05  # |log-ratio − target| t/λ


def _check_counts(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 3 or counts.shape[1] != 2:
        raise ValidateInputError("counts", counts.shape, "(B, 2, N): low loss and core loss")
    return counts


def log_ratio_thickness(low: np.ndarray, config: EELSConfig, checks: EELSChecks = EELSChecks()) -> np.ndarray:
    """t/λ = ln(I_total / I_0) of low-loss spectra (B, N), by exspy (I_0 integrated up to
    ``zlp_threshold_eV``)."""
    s = eels_signal(np.clip(low, 0, None), config.low_loss_axis, config)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(s.estimate_thickness(threshold=checks.zlp_threshold_eV).data, dtype=float).reshape(-1)


def _power_law_fit(x: np.ndarray, y: np.ndarray, window: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(log A, r) of y ≈ A·E^(−r) per row by least squares of log y on log E in ``window``."""
    m = (x >= window[0]) & (x <= window[1])
    lx = np.log(x[m])
    ly = np.log(np.clip(y[:, m], 1.0, None))
    slope, intercept = np.polyfit(lx, ly.T, 1)
    return intercept, -slope


def _edge_jumps(core: np.ndarray, config: EELSConfig, checks: EELSChecks) -> tuple[dict, dict]:
    """Per element: (rise above the extrapolated pre-edge power law in Poisson σ, energy of
    the steepest rise near the database onset) for every spectrum."""
    x = config.core_loss_axis.x
    jumps, where = {}, {}
    for el, onset in edge_onsets(config.elements).items():
        pre = (max(x[0], onset - 30.0), onset - 4.0)
        log_a, r = _power_law_fit(x, core, pre)
        post = (x >= onset + 3) & (x <= onset + 20)
        model = np.exp(log_a[:, None] - r[:, None] * np.log(x[post])[None])
        excess = (core[:, post] - model).sum(1)
        jumps[el] = excess / np.sqrt(np.clip(model.sum(1), 1.0, None))
        near = np.flatnonzero(np.abs(x - onset) <= 15)
        smooth = np.apply_along_axis(lambda v: np.convolve(v, np.ones(5) / 5, mode="same"), 1, core[:, near])
        where[el] = x[near][1:][np.argmax(np.diff(smooth, axis=1)[:, 2:-2], axis=1) + 2]
    return jumps, where


def eels_physics_checks(counts, conditions: pd.DataFrame, config: EELSConfig = EELSConfig(),
                        checks: EELSChecks = EELSChecks()) -> pd.DataFrame:
    """One row per spectrum (module docstring): the measurements, a pass column per check,
    ``physics_pass``, ``physics_reason`` and ``condition_reason``."""
    counts = _check_counts(counts)
    conditions = conditions.reset_index(drop=True)
    if len(conditions) != counts.shape[0]:
        raise ValidateInputError("conditions", f"{len(conditions)} rows", f"{counts.shape[0]} rows, one per spectrum")
    finite = np.isfinite(counts).all(axis=(1, 2)) & (np.nan_to_num(counts, nan=-1.0) >= 0).all(axis=(1, 2))
    clean = np.where(np.isfinite(counts), np.clip(counts, 0, None), 0.0)
    low, core = clean[:, 0], clean[:, 1]
    zlp_at = config.low_loss_axis.x[np.argmax(low, axis=1)]
    t = log_ratio_thickness(low, config, checks)
    _, r = _power_law_fit(config.core_loss_axis.x, core, checks.pre_edge_eV)
    frame = pd.DataFrame({"finite_pass": finite, "zlp_eV": zlp_at, "t_lambda_log_ratio": t, "background_r": r})
    frame["zlp_pass"] = np.abs(zlp_at) <= checks.zlp_tolerance_eV
    frame["thickness_pass"] = np.isfinite(t) & (t >= checks.t_range[0]) & (t <= checks.t_range[1])
    frame["background_pass"] = np.isfinite(r) & (r >= checks.r_range[0]) & (r <= checks.r_range[1])
    jumps, where = _edge_jumps(core, config, checks)
    onsets = edge_onsets(config.elements)
    missing: list[list[str]] = [[] for _ in range(len(frame))]
    for el in config.elements:
        frame[f"edge_sigma_{el}"] = jumps[el]
        frame[f"edge_onset_{el}"] = where[el]
        col = fraction_field(el)
        given = conditions[col].to_numpy(float) if col in conditions else np.full(len(frame), np.nan)
        expected = np.nan_to_num(given, nan=0.0) >= checks.min_fraction
        shown = (jumps[el] >= checks.jump_sigmas) & (np.abs(where[el] - onsets[el]) <= checks.onset_tolerance_eV)
        for i in np.flatnonzero(expected & ~shown):
            missing[i].append(f"no {el} {EELS_ELEMENTS[el]} edge at {onsets[el]:.0f} eV (rise {jumps[el][i]:.1f} σ, "
                              f"steepest at {where[el][i]:.1f} eV) for x_{el} = {given[i]:.2f}")
    frame["edges_pass"] = [not m for m in missing]
    frame["physics_pass"] = frame[[*VALIDITY_COLUMNS, "edges_pass"]].all(axis=1)
    frame["physics_reason"] = [_invalid_reason(row, checks) for row in frame.itertuples()]
    frame["condition_reason"] = ["; ".join(m) for m in missing]
    frame.attrs.update({"validity_columns": VALIDITY_COLUMNS})
    return frame


def _invalid_reason(r, checks: EELSChecks) -> str:
    out = []
    if not r.finite_pass:
        out.append("negative or non-finite counts")
    if not r.zlp_pass:
        out.append(f"the zero-loss peak is at {r.zlp_eV:.1f} eV, not 0 ± {checks.zlp_tolerance_eV:g}")
    if not r.thickness_pass:
        out.append(f"log-ratio t/λ {r.t_lambda_log_ratio:.2f} outside {checks.t_range}")
    if not r.background_pass:
        out.append(f"pre-edge background exponent r = {r.background_r:.2f} outside {checks.r_range}")
    return "; ".join(out)


def eels_measure(counts, config: EELSConfig = EELSConfig(), checks: EELSChecks = EELSChecks()) -> pd.DataFrame:
    """Atomic fractions from exspy's model fit of each core loss (with its own low loss) and
    t/λ by the log-ratio method; one row per spectrum, columns ``x_<element>``, ``t_lambda``
    and the fit's ``fit_r`` (its background exponent)."""
    counts = _check_counts(counts)
    clean = np.where(np.isfinite(counts), np.clip(counts, 0, None), 0.0)
    rows = []
    for low, core in zip(clean[:, 0], clean[:, 1]):
        s = eels_signal(core, config.core_loss_axis, config)
        s.add_elements(list(config.elements))
        model = s.create_model(low_loss=eels_signal(low, config.low_loss_axis, config), GOS="hydrogenic",
                               auto_background=True)
        model.fit()
        intensity = np.clip([model[f"{el}_{EELS_ELEMENTS[el]}"].intensity.value for el in config.elements], 0, None)
        total = intensity.sum()
        frac = intensity / total if total > 0 else np.full(len(intensity), np.nan)
        rows.append({**{fraction_field(el): f for el, f in zip(config.elements, frac)},
                     "fit_r": float(model["PowerLaw"].r.value)})
    out = pd.DataFrame(rows, columns=[*(fraction_field(el) for el in config.elements), "fit_r"])
    out["t_lambda"] = log_ratio_thickness(clean[:, 0], config, checks)
    return out


def eels_simulator_check(counts, targets: pd.DataFrame, config: EELSConfig = EELSConfig(),
                         tolerances: EELSTolerances = EELSTolerances(),
                         checks: EELSChecks = EELSChecks()) -> pd.DataFrame:
    """The measured composition and thickness (:func:`eels_measure`) against the targets
    (NaN or missing column = not targeted): ``sim_x_<el>``, ``sim_t_lambda``,
    ``fraction_abs_err`` (the largest over the targeted elements), ``t_lambda_abs_err``,
    ``n_targets``, ``sim_pass``, ``sim_reason``, ``sim_note``."""
    targets = targets.reset_index(drop=True)
    got = eels_measure(counts, config, checks)
    if len(targets) != len(got):
        raise ValidateInputError("targets", f"{len(targets)} rows", f"{len(got)} rows, one per spectrum")
    out = got.add_prefix("sim_")
    fields = [fraction_field(el) for el in config.elements]
    tgt = targets.reindex(columns=[*fields, "t_lambda"]).to_numpy(float)
    given = np.isfinite(tgt[:, :-1])
    err = np.abs(out[[f"sim_{f}" for f in fields]].to_numpy(float) - tgt[:, :-1])
    err = np.where(given & np.isnan(err), np.inf, err)  # no edge fitted at all: as far off as can be
    out["fraction_abs_err"] = np.where(given.any(1), np.nanmax(np.where(given, err, -np.inf), 1), np.nan)
    out["t_lambda_abs_err"] = np.abs(out["sim_t_lambda"] - tgt[:, -1])
    out["n_targets"] = given.sum(1) + np.isfinite(tgt[:, -1])
    reasons = []
    for i in range(len(out)):
        parts = [(f"x_{el} {out.at[i, f'sim_{f}']:.3f} vs {tgt[i, k]:.3f} (±{tolerances.fraction_abs:g})",
                  bool(err[i, k] <= tolerances.fraction_abs))
                 for k, (el, f) in enumerate(zip(config.elements, fields)) if given[i, k]]
        if np.isfinite(tgt[i, -1]):
            parts.append((f"t/λ {out.at[i, 'sim_t_lambda']:.3f} vs {tgt[i, -1]:.3f} (±{tolerances.t_lambda_abs:g})",
                          bool(out.at[i, "t_lambda_abs_err"] <= tolerances.t_lambda_abs)))
        reasons.append(parts)
    out["sim_pass"] = [bool(p) and all(ok for _, ok in p) for p in reasons]
    out["sim_reason"] = ["; ".join(t for t, ok in p if not ok) for p in reasons]
    out["sim_note"] = ["; ".join(t for t, ok in p if ok) for p in reasons]
    return out
