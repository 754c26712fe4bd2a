"""Validators of 1-D spectra (XRD, Raman): physics checks and simulator checks.

Conditions use the spectra modalities' field names: ``frac_<phase>`` (phase fractions),
``size_nm`` (crystallite size), ``strain`` (microstrain ε) and ``temperature_K``; any may
be missing (NaN or absent), and each check uses what is given. Spectra are counts
``(B, N)`` on the technique's axis; ``technique`` is a :mod:`genmat.sim` oracle object
(:class:`genmat.sim.XRD` or :class:`genmat.sim.Raman`).

**Physics checks** (no simulator run; the phase library's allowed lines only):

- ``finite``: every point finite;
- ``negative_fraction``: share of points more than 4 σ below the background (SNIP; for
  XRD projected on the smooth background basis so that it cannot follow a dip; σ =
  √background, Poisson) — a measured spectrum is non-negative after background;
- ``unmatched_peaks``: peaks found at ``min_snr`` × σ prominence that lie farther than
  ``peak_tolerance`` + FWHM from every allowed line (the maximum of overlapping lines lies
  between them) of the conditioned phases (phases
  with a fraction above ``present_fraction``; all phases when no fraction is given), at the
  conditioned temperature (or anywhere in the temperature range when it is not given);
- ``spurious_fraction``: net intensity (above 3 σ) farther than ``peak_tolerance`` +
  ``window_fwhm`` × FWHM from every allowed line, over all net intensity.

**Simulator checks** (the oracle's model for the target condition):

- fractions by NNLS on the pure-phase patterns (broadened and shifted for the target's
  size, strain, temperature) plus a free smooth background → ``sim_frac_<phase>``,
  ``fraction_abs_err`` (largest |recovered − target| over the given phases);
- crystallite size back-computed from the fitted widths of up to three strong isolated
  lines (each fitted after removing the background and every other fitted line) whose
  width is sensitive to size (changing the size by the tolerance changes the width by
  more than 10 %; otherwise ``size_measurable`` is False and size is not checked) (Scherrer for XRD, phonon confinement for Raman) → ``sim_size_nm``, ``size_rel_err``;
- R_wp against the simulator's noise-free spectrum of the target condition (background
  refitted) and the Poisson R_exp of the candidate → ``rwp``, ``rexp``, ``rwp_ratio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genmat.sim.spectra import (
    STATE_FIELDS,
    background_basis,
    detect_peaks,
    expected_r,
    fit_line_width,
    fit_phases,
    render_lines,
    snip_background,
    weighted_profile_r,
)

FRACTION_PREFIX = "frac_"


def fraction_field(phase: str) -> str:
    return FRACTION_PREFIX + phase


@dataclass(frozen=True)
class SpectrumChecks:
    """Physics-check settings; ``peak_tolerance`` in axis units (° 2θ, cm⁻¹)."""

    peak_tolerance: float = 0.2
    min_snr: float = 6.0
    window_fwhm: float = 2.5  # allowed window half-width in FWHM (Lorentzian tails need more)
    snip_max_half_width: int = 64  # SNIP window cap in points (curved backgrounds need less)
    fit_window_fwhm: float = 4.0  # half-width, in FWHM, of the window a line width is fitted on
    # Project the SNIP background on the smooth basis (catches dips; needs backgrounds the
    # basis spans, as in XRD — Raman's broad bands and fluorescence bend it, so SNIP alone).
    project_background: bool = True
    max_negative_fraction: float = 0.01
    max_spurious_fraction: float = 0.05
    present_fraction: float = 0.01
    # ranges of the state fields, for conditions that leave them out
    size_range: tuple[float, float] = (5.0, 30.0)
    strain_range: tuple[float, float] = (0.0, 0.003)
    temperature_range: tuple[float, float] = (300.0, 1000.0)


@dataclass(frozen=True)
class SpectrumTolerances:
    """Simulator-check tolerances."""

    fraction_abs: float = 0.05  # largest |recovered − target| phase fraction
    size_rel: float = 0.20  # |size − target| / target
    size_sensitivity: float = 0.10  # lines used for size: width changes > this for a size off by size_rel
    rwp_ratio: float = 2.0  # R_wp ≤ this × R_exp (goodness of fit)


def _column(conditions: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name in conditions:
        return pd.to_numeric(conditions[name], errors="coerce").to_numpy(dtype=float)
    return np.full(n, np.nan)


def _fractions(conditions: pd.DataFrame, phases, n: int) -> np.ndarray:
    """(B, P) conditioned fractions, NaN where not given."""
    return np.stack([_column(conditions, fraction_field(p), n) for p in phases], axis=1)


def condition_state(conditions: pd.DataFrame, n: int, checks: SpectrumChecks, fill: str) -> dict[str, np.ndarray]:
    """size/strain/temperature per row; missing ones filled with the range's ``fill``
    end ("broad": smallest size and largest strain, the widest lines) or middle ("mid")."""
    ranges = {"size_nm": checks.size_range, "strain": checks.strain_range, "temperature_K": checks.temperature_range}
    out = {}
    for name in STATE_FIELDS:
        lo, hi = ranges[name]
        default = {"size_nm": lo, "strain": hi}.get(name, 0.5 * (lo + hi)) if fill == "broad" else 0.5 * (lo + hi)
        v = _column(conditions, name, n)
        out[name] = np.where(np.isfinite(v), v, default)
    return out


def _allowed_lines(technique, phases, conditions: pd.DataFrame, checks: SpectrumChecks):
    """Per row: line interval ends (B, K) lo/hi, FWHM (B, K) and allowed mask (B, K)."""
    n = len(conditions)
    t = _column(conditions, "temperature_K", n)
    t_lo = np.where(np.isfinite(t), t, checks.temperature_range[0])
    t_hi = np.where(np.isfinite(t), t, checks.temperature_range[1])
    c1, phase = technique.line_positions(phases, t_lo)
    c2, _ = technique.line_positions(phases, t_hi)
    lo, hi = np.fmin(c1, c2), np.fmax(c1, c2)
    state = condition_state(conditions, n, checks, fill="broad")
    lines = technique.lines(phases, **state)
    # size-dependent line shifts (Raman confinement) widen the interval to the line's centre
    lo, hi = np.fmin(lo, lines.center), np.fmax(hi, lines.center)
    frac = _fractions(conditions, phases, n)
    given = np.isfinite(frac)
    present = np.where(given, frac > checks.present_fraction, True)
    present[~given.any(1)] = True
    mask = present[:, phase] & (lines.strength > 0) & np.isfinite(lo)
    return lo, hi, lines.fwhm, mask


def _distance(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance (B, K, N) of axis points to the intervals [lo, hi]."""
    return np.maximum(0.0, np.maximum(lo[..., None] - x, x - hi[..., None]))


def spectrum_physics_checks(counts: np.ndarray, technique, phases, conditions: pd.DataFrame,
                            checks: SpectrumChecks = SpectrumChecks()) -> pd.DataFrame:
    """One row per spectrum with the check values, ``physics_pass`` and ``reason``."""
    y = np.atleast_2d(np.asarray(counts, dtype=float))
    conditions = conditions.reset_index(drop=True)
    n, axis = len(y), technique.axis
    finite = np.isfinite(y).all(1)
    y = np.where(np.isfinite(y), y, 0.0)
    lo, hi, fwhm, mask = _allowed_lines(technique, phases, conditions, checks)
    max_fwhm = np.nanmax(np.where(mask, fwhm, np.nan), axis=1)
    max_fwhm = np.where(np.isfinite(max_fwhm), max_fwhm, 10 * axis.step)
    half_width = int(np.clip(math.ceil(1.5 * np.max(max_fwhm) / axis.step), 8, min(axis.n // 8, checks.snip_max_half_width)))
    # SNIP follows every dip down; projecting it on the smooth background basis does not,
    # so a hole below the background shows as negative net counts.
    bg = snip_background(y, half_width)
    if checks.project_background:
        basis = background_basis(axis)
        coef, *_ = np.linalg.lstsq(basis.T, bg.T, rcond=None)
        bg = (basis.T @ coef).T
    sigma = np.sqrt(np.clip(bg, 1.0, None))
    net = y - bg
    negative = (net < -4 * sigma).mean(1)

    x = axis.x
    dist = _distance(x, lo, hi)  # (B, K, N)
    inside = ((dist <= (checks.peak_tolerance + checks.window_fwhm * fwhm)[..., None]) & mask[..., None]).any(1)
    signal = np.clip(net - 3 * sigma, 0.0, None)
    total = signal.sum(1)
    spurious = np.where(total > 0, (signal * ~inside).sum(1) / np.where(total > 0, total, 1.0), 0.0)

    unmatched = np.zeros(n, dtype=int)
    worst = np.full(n, np.nan)
    peaks = detect_peaks(net, sigma, min_snr=checks.min_snr)
    for b, idx in enumerate(peaks):
        if len(idx) == 0:
            continue
        d = _distance(x[idx], lo[b][None], hi[b][None])[0]  # (K, n_peaks)
        d = np.where(mask[b][:, None], d - fwhm[b][:, None], np.inf)  # overlapping lines peak between them
        nearest = d.min(0)
        unmatched[b] = int((nearest > checks.peak_tolerance).sum())
        worst[b] = float(np.clip(nearest, 0, None).max())

    out = pd.DataFrame({
        "finite": finite,
        "negative_fraction": negative,
        "n_peaks": [len(i) for i in peaks],
        "unmatched_peaks": unmatched,
        "peak_offset_max": worst,
        "spurious_fraction": spurious,
    })
    fails = {
        "not finite": ~finite,
        f"negative after background ({checks.max_negative_fraction:.0%} of points allowed)":
            negative > checks.max_negative_fraction,
        f"peak where no allowed line (> {checks.peak_tolerance:g} {axis.unit})": unmatched > 0,
        f"spurious intensity > {checks.max_spurious_fraction:.0%}": spurious > checks.max_spurious_fraction,
    }
    out["physics_pass"] = ~np.any(np.stack(list(fails.values())), axis=0)
    out["physics_reason"] = ["; ".join(k for k, v in fails.items() if v[i]) for i in range(n)]
    return out


def _strong_isolated_lines(lines, fractions, b: int, sensitive: np.ndarray, k_max: int = 3) -> list[int]:
    """Indices of up to k_max size-``sensitive`` lines of spectrum b with the most counts,
    each farther than 2 FWHM from any other line with more than a tenth of its counts."""
    counts = fractions[b, lines.phase] * np.broadcast_to(lines.strength, lines.center.shape)[b]
    order = np.argsort(-counts)
    picked = []
    c, w = lines.center[b], lines.fwhm[b]
    for k in order:
        if counts[k] <= 0 or len(picked) == k_max:
            break
        if not sensitive[b, k]:
            continue
        others = (counts > 0.1 * counts[k]) & (np.arange(len(counts)) != k)
        if np.all(np.abs(c[others] - c[k]) > 2 * (w[others] + w[k]) / 2):
            picked.append(int(k))
    return picked


def spectrum_simulator_check(counts: np.ndarray, technique, phases, targets: pd.DataFrame,
                             tolerances: SpectrumTolerances = SpectrumTolerances(),
                             checks: SpectrumChecks = SpectrumChecks()) -> pd.DataFrame:
    """One row per spectrum: recovered fractions and size, R_wp, ``sim_pass``, ``sim_reason``."""
    y = np.atleast_2d(np.asarray(counts, dtype=float))
    targets = targets.reset_index(drop=True)
    n, axis = len(y), technique.axis
    frac_t = _fractions(targets, phases, n)
    frac_given = np.isfinite(frac_t)
    state = condition_state(targets, n, checks, fill="mid")
    lines = technique.lines(phases, **state)
    basis = background_basis(axis)
    fit = fit_phases(y, lines.patterns(axis, technique.eta), basis)
    frac_hat = fit.fractions
    out = pd.DataFrame({f"sim_{fraction_field(p)}": frac_hat[:, i] for i, p in enumerate(phases)})
    err = np.where(frac_given, np.abs(frac_hat - frac_t), np.nan)
    out["fraction_abs_err"] = np.where(frac_given.any(1), np.nanmax(np.where(frac_given, err, -np.inf), 1), np.nan)

    # Size from the widths of strong isolated lines (fractions: the target's, else the fit's).
    size_t = _column(targets, "size_nm", n)
    strain_t = np.where(np.isfinite(_column(targets, "strain", n)), _column(targets, "strain", n), 0.0)
    use_frac = np.where(frac_given, frac_t, np.nan_to_num(frac_hat))
    x = axis.x
    size_hat = np.full(n, np.nan)
    # A line sizes the crystal only if a size off by the tolerance changes its width by more
    # than ``size_sensitivity`` (Raman confinement fades above ~10 nm, and hot or strained
    # bands are broad anyway); a few per cent of width-fit error is then a small size error.
    wider = technique.lines(phases, **{**state, "size_nm": state["size_nm"] / (1 + tolerances.size_rel)})
    sensitive = np.abs(wider.fwhm / lines.fwhm - 1) > tolerances.size_sensitivity
    measurable = np.zeros(n, dtype=bool)
    for b in range(n):
        sizes = []
        picked = _strong_isolated_lines(lines, use_frac, b, sensitive)
        measurable[b] = bool(picked)
        for k in picked:
            # the line alone: the spectrum minus the background and every other fitted line
            own = fit.weights[b, lines.phase[k]] * render_lines(
                axis, lines.center[b, k], lines.fwhm[b, k], np.broadcast_to(lines.strength, lines.center.shape)[b, k],
                technique.eta)[0]
            alone = y[b] - fit.fit[b] + own
            c, w = fit_line_width(x, alone, lines.center[b, k], checks.fit_window_fwhm * lines.fwhm[b, k] + 3 * axis.step,
                                  technique.eta)
            if np.isfinite(w):
                sizes.append(float(technique.width_to_size(w, c, strain_t[b], phases=phases,
                                                           temperature_K=state["temperature_K"][b])))
        sizes = [s for s in sizes if np.isfinite(s)]
        if sizes:
            size_hat[b] = float(np.median(sizes))
    out["sim_size_nm"] = size_hat
    out["size_measurable"] = measurable
    out["size_rel_err"] = np.where(np.isfinite(size_t), np.abs(size_hat - size_t) / size_t, np.nan)

    # R_wp against the noise-free simulator spectrum of the full target condition.
    full = frac_given.all(1) & np.all([np.isfinite(_column(targets, f, n)) for f in STATE_FIELDS], axis=0)
    rwp = np.full(n, np.nan)
    rexp = expected_r(np.clip(y, 0, None))
    if full.any():
        peaks = lines.spectrum(np.nan_to_num(frac_t), axis, technique.eta)
        w = 1 / np.sqrt(np.clip(y, 1.0, None))
        for b in np.flatnonzero(full):
            coef, *_ = np.linalg.lstsq((basis * w[b]).T, (y[b] - peaks[b]) * w[b], rcond=None)
            rwp[b] = weighted_profile_r(y[b], peaks[b] + coef @ basis)[0]
    out["rwp"], out["rexp"] = rwp, rexp
    out["rwp_ratio"] = rwp / rexp

    fails = {
        f"phase fraction off by > {tolerances.fraction_abs:g}": out["fraction_abs_err"].to_numpy() > tolerances.fraction_abs,
        f"size off by > {tolerances.size_rel:.0%}": (out["size_rel_err"].to_numpy() > tolerances.size_rel)
            | (np.isfinite(size_t) & measurable & ~np.isfinite(size_hat)),
        f"R_wp > {tolerances.rwp_ratio:g} × R_exp": out["rwp_ratio"].to_numpy() > tolerances.rwp_ratio,
    }
    out["sim_pass"] = ~np.any(np.stack(list(fails.values())), axis=0)
    out["sim_reason"] = ["; ".join(k for k, v in fails.items() if v[i]) for i in range(n)]
    for p in phases:
        out[f"target_{fraction_field(p)}"] = frac_t[:, list(phases).index(p)]
    out["target_size_nm"] = size_t
    return out
