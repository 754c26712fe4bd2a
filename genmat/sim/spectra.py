"""Line spectra on a fixed axis, shared by the XRD and Raman oracles and their validators
(PHYSICS.md §4–5): profiles, smooth backgrounds, counting noise, and the analysis tools
of the field (SNIP background, NNLS phase fractions, peak finding, profile fits, R_wp).

A spectrum is counts per axis point, shape ``(B, N)`` (numpy, float64). Lines are given
as arrays ``(B, K)`` of centre, FWHM and *integrated* intensity (the line's total counts
summed over the points): broadening spreads a line, it does not change its counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit, nnls
from scipy.signal import find_peaks

from genmat.sim.materials import SimInputError


@dataclass(frozen=True)
class SpectrumAxis:
    """A uniform axis: ``n`` points from ``start`` to ``stop`` (degrees 2θ or cm⁻¹)."""

    start: float
    stop: float
    n: int
    unit: str = ""

    def __post_init__(self) -> None:
        if not (self.stop > self.start and self.n >= 16):
            raise SimInputError("axis", (self.start, self.stop, self.n), "start < stop and n ≥ 16")

    @property
    def x(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.n)

    @property
    def step(self) -> float:
        return (self.stop - self.start) / (self.n - 1)


# ------------------------------------------------------------------------------ profiles
def pseudo_voigt(x: np.ndarray, center: np.ndarray, fwhm: np.ndarray, eta: float | np.ndarray) -> np.ndarray:
    """Area-normalised pseudo-Voigt η·L + (1 − η)·G with one FWHM for both parts.

    Broadcasts ``x`` against ``center``/``fwhm``; η = 1 is a Lorentzian, η = 0 a Gaussian.
    """
    dx = x - center
    hw = fwhm / 2
    lorentz = hw / (np.pi * (dx**2 + hw**2))
    gauss = math.sqrt(4 * math.log(2) / math.pi) / fwhm * np.exp(-4 * math.log(2) * dx**2 / fwhm**2)
    return eta * lorentz + (1 - eta) * gauss


def render_lines(
    axis: SpectrumAxis, center: np.ndarray, fwhm: np.ndarray, area: np.ndarray, eta: float, chunk: int = 64
) -> np.ndarray:
    """Sum of pseudo-Voigt lines ``(B, K)`` on the axis → ``(B, N)`` counts per point.

    ``area`` is each line's total counts: the profile (per axis unit) is sampled at the
    axis points and multiplied by the step, so ``y.sum()`` is the total counts of lines
    well inside the axis.
    """
    center, fwhm, area = np.broadcast_arrays(*(np.atleast_2d(np.asarray(v, dtype=float)) for v in (center, fwhm, area)))
    x = axis.x
    out = np.empty((center.shape[0], axis.n))
    for s in range(0, center.shape[0], chunk):
        sl = slice(s, s + chunk)
        prof = pseudo_voigt(x[None, None, :], center[sl, :, None], fwhm[sl, :, None], eta)
        out[sl] = np.einsum("bk,bkn->bn", area[sl], prof) * axis.step
    return out


# --------------------------------------------------------------------------- backgrounds
def background_basis(axis: SpectrumAxis, decay: float = 0.12) -> np.ndarray:
    """Smooth background basis ``(M, N)``: Chebyshev T0–T3 over the axis and a decaying
    exponential exp(−u/decay) (u = 0…1 along the axis; air scatter at low angle in XRD,
    the tail of fluorescence in Raman)."""
    u = np.linspace(0.0, 1.0, axis.n)
    t = 2 * u - 1
    return np.stack([np.ones_like(t), t, 2 * t**2 - 1, 4 * t**3 - 3 * t, np.exp(-u / decay)])


def poisson_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Counting noise: one Poisson draw per point (expected counts ≥ 0)."""
    return rng.poisson(np.clip(expected, 0.0, None)).astype(np.float64)


def snip_background(y: np.ndarray, half_width: int) -> np.ndarray:
    """SNIP background (Ryan et al. 1988) of spectra ``(B, N)``: peak clipping with windows
    1…``half_width`` points on the log-log-square-root transformed counts, so peaks up to
    about 2·``half_width`` points wide are removed and the smooth part is kept."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    v = np.log(np.log(np.sqrt(np.clip(y, 0, None) + 1) + 1) + 1)
    n = v.shape[1]
    for p in range(1, half_width + 1):
        if 2 * p >= n:
            break
        mean = 0.5 * (v[:, : n - 2 * p] + v[:, 2 * p :])
        v[:, p : n - p] = np.minimum(v[:, p : n - p], mean)
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


# ------------------------------------------------------------------------------ analysis
@dataclass
class PhaseFit:
    weights: np.ndarray  # (B, P) non-negative amounts of each basis pattern
    background: np.ndarray  # (B, N)
    fit: np.ndarray  # (B, N) basis · weights + background

    @property
    def fractions(self) -> np.ndarray:
        """Weights normalised to sum to 1 per spectrum (NaN where all are zero)."""
        total = self.weights.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.weights / total, np.nan)


def fit_phases(y: np.ndarray, patterns: np.ndarray, background: np.ndarray | None = None, *, weighted: bool = True) -> PhaseFit:
    """Non-negative least squares of spectra on phase patterns plus a free smooth background.

    ``y`` ``(B, N)``; ``patterns`` ``(P, N)`` or ``(B, P, N)`` (one library per spectrum, e.g.
    broadened for its own condition); ``background`` ``(M, N)`` basis whose coefficients may
    have either sign (it enters NNLS as +basis and −basis). With ``weighted`` the rows are
    weighted by 1/√max(y, 1), the Poisson weights of R_wp.
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    patterns = np.asarray(patterns, dtype=float)
    if patterns.ndim == 2:
        patterns = patterns[None]
    patterns = np.broadcast_to(patterns, (y.shape[0], *patterns.shape[1:]))
    n_p = patterns.shape[1]
    bg = np.zeros((0, y.shape[1])) if background is None else np.asarray(background, dtype=float)
    weights = np.zeros((y.shape[0], n_p))
    bg_curve = np.zeros_like(y)
    fit = np.zeros_like(y)
    for b in range(y.shape[0]):
        design = np.concatenate([patterns[b], bg, -bg]).T  # (N, P + 2M)
        w = 1 / np.sqrt(np.clip(y[b], 1.0, None)) if weighted else np.ones(y.shape[1])
        scale = np.linalg.norm(design * w[:, None], axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls(design * w[:, None] / scale, y[b] * w, maxiter=50 * design.shape[1])
        coef /= scale
        weights[b] = coef[:n_p]
        m = bg.shape[0]
        bg_curve[b] = (coef[n_p : n_p + m] - coef[n_p + m :]) @ bg if m else 0.0
        fit[b] = coef[:n_p] @ patterns[b] + bg_curve[b]
    return PhaseFit(weights, bg_curve, fit)


def weighted_profile_r(y_obs: np.ndarray, y_calc: np.ndarray) -> np.ndarray:
    """R_wp = sqrt(Σ w (y_obs − y_calc)² / Σ w y_obs²), w = 1/y_obs (counts below 1 count as 1)."""
    y_obs, y_calc = np.atleast_2d(y_obs), np.atleast_2d(y_calc)
    w = 1 / np.clip(y_obs, 1.0, None)
    return np.sqrt((w * (y_obs - y_calc) ** 2).sum(1) / (w * y_obs**2).sum(1))


def expected_r(y_obs: np.ndarray) -> np.ndarray:
    """R_exp = sqrt(N / Σ w y_obs²): the R_wp that Poisson noise alone gives."""
    y_obs = np.atleast_2d(y_obs)
    w = 1 / np.clip(y_obs, 1.0, None)
    return np.sqrt(y_obs.shape[1] / (w * y_obs**2).sum(1))


def detect_peaks(net: np.ndarray, noise: np.ndarray, *, min_snr: float = 5.0, min_distance: int = 2) -> list[np.ndarray]:
    """Peak indices per spectrum: local maxima of the background-subtracted ``net`` counts
    (smoothed over 3 points) whose prominence exceeds ``min_snr`` × the local noise σ of
    one point."""
    net = np.atleast_2d(net)
    noise = np.broadcast_to(np.atleast_2d(noise), net.shape)
    kernel = np.array([0.25, 0.5, 0.25])
    out = []
    for b in range(net.shape[0]):
        smooth = np.convolve(net[b], kernel, mode="same")
        idx, props = find_peaks(smooth, prominence=0.0, distance=min_distance)
        keep = props["prominences"] > min_snr * noise[b, idx]
        out.append(idx[keep])
    return out


def fit_line_width(x: np.ndarray, y: np.ndarray, center: float, half_window: float, eta: float) -> tuple[float, float]:
    """(centre, FWHM) of one line by a least-squares pseudo-Voigt fit (η fixed) with a linear
    local background, on ``center ± half_window``. NaNs if the fit fails."""
    sel = np.abs(x - center) <= half_window
    xs, ys = x[sel], y[sel]
    if sel.sum() < 6 or not np.isfinite(ys).all():
        return float("nan"), float("nan")
    step = float(xs[1] - xs[0])
    peak = float(ys.max() - ys.min())

    def model(x_, c, w, a, b0, b1):
        return a * pseudo_voigt(x_, c, np.abs(w) + 1e-9, eta) + b0 + b1 * (x_ - center)

    guess_w = max(2 * step, half_window / 3)
    p0 = [float(xs[np.argmax(ys)]), guess_w, peak * guess_w, float(ys.min()), 0.0]
    try:
        popt, _ = curve_fit(model, xs, ys, p0=p0, maxfev=4000)
    except (RuntimeError, ValueError):
        return float("nan"), float("nan")
    c, w = float(popt[0]), abs(float(popt[1]))
    if not (abs(c - center) <= half_window and 0 < w < 4 * half_window):
        return float("nan"), float("nan")
    return c, w


def check_state(size_nm, strain, temperature_K):
    """Broadcast size/strain/temperature to 1-D arrays; SimInputError naming a bad field."""
    size, strain, t = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (size_nm, strain, temperature_K)))
    for name, v, ok, allowed in (
        ("size_nm", size, size > 0, "> 0 nm"),
        ("strain", strain, strain >= 0, "≥ 0"),
        ("temperature_K", t, t > 0, "> 0 K"),
    ):
        bad = ~(np.isfinite(v) & ok)
        if bad.any():
            raise SimInputError(name, float(v[bad][0]), allowed)
    return size, strain, t


# ------------------------------------------------------------------ lines of a phase set
@dataclass
class LineSet:
    """The lines of a set of phases for a batch of conditions.

    ``center``/``fwhm`` ``(B, K)`` (they depend on each condition's temperature, size,
    strain); ``strength`` ``(B, K)`` (or ``(K,)``) total counts of the line for a pure phase (fraction 1);
    ``phase`` ``(K,)`` index of the line's phase.
    """

    center: np.ndarray
    fwhm: np.ndarray
    strength: np.ndarray  # (K,) or (B, K) when intensities depend on the condition (Raman)
    phase: np.ndarray
    n_phases: int

    def spectrum(self, fractions: np.ndarray, axis: SpectrumAxis, eta: float) -> np.ndarray:
        """Noise-free mixture ``(B, N)`` for phase fractions ``(B, P)``."""
        fractions = np.atleast_2d(np.asarray(fractions, dtype=float))
        return render_lines(axis, self.center, self.fwhm, fractions[:, self.phase] * self.strength, eta)

    def patterns(self, axis: SpectrumAxis, eta: float) -> np.ndarray:
        """Pure-phase patterns ``(B, P, N)`` (fraction 1 each): the NNLS basis."""
        eye = np.eye(self.n_phases)
        out = np.stack([self.spectrum(np.broadcast_to(eye[p], (self.center.shape[0], self.n_phases)), axis, eta)
                        for p in range(self.n_phases)], axis=1)
        return out


@dataclass(frozen=True)
class BackgroundPrior:
    """Random smooth backgrounds: coefficients of :func:`background_basis` drawn as
    level · (1, s1, s2, s3, d) with level ~ U(level), s_i ~ U(±shape[i]), d ~ U(decay).
    |s1| + |s2| + |s3| < 1 keeps the background positive."""

    level: tuple[float, float] = (100.0, 250.0)
    shape: tuple[float, float, float] = (0.3, 0.2, 0.1)
    decay: tuple[float, float] = (0.5, 2.5)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        level = rng.uniform(*self.level, size=n)
        s = rng.uniform(-1, 1, size=(n, 3)) * np.asarray(self.shape)
        d = rng.uniform(*self.decay, size=n)
        return level[:, None] * np.column_stack([np.ones(n), s, d])


class LineOracle:
    """What the XRD and Raman oracles share: a config with ``axis``, ``eta`` and a
    ``background`` prior, and the noise-free and measured spectra built from the
    subclass's :meth:`lines`. Subclasses set ``name`` and implement ``lines``,
    ``line_positions``, ``check_phases`` and ``width_to_size``."""

    name = ""

    def __init__(self, config) -> None:
        self.config = config

    @property
    def axis(self) -> SpectrumAxis:
        return self.config.axis

    @property
    def eta(self) -> float:
        return self.config.eta

    def lines(self, phases, *, size_nm, strain, temperature_K) -> LineSet:
        raise NotImplementedError

    def expected(self, phases, fractions, *, size_nm, strain, temperature_K, background=None) -> np.ndarray:
        """Noise-free counts ``(B, N)``; ``background`` coefficients ``(B, 5)`` or None."""
        lines = self.lines(phases, size_nm=size_nm, strain=strain, temperature_K=temperature_K)
        y = lines.spectrum(fractions, self.axis, self.eta)
        if background is not None:
            y = y + np.asarray(background) @ background_basis(self.axis)
        return y

    def simulate(self, phases, fractions, *, size_nm, strain, temperature_K, rng: np.random.Generator):
        """Measured counts ``(B, N)`` (a random background from the config's prior, Poisson
        noise) and the background coefficients ``(B, 5)`` drawn."""
        fractions = np.atleast_2d(np.asarray(fractions, dtype=float))
        bg = self.config.background.draw(fractions.shape[0], rng)
        y = self.expected(phases, fractions, size_nm=size_nm, strain=strain, temperature_K=temperature_K, background=bg)
        return poisson_counts(y, rng), bg
