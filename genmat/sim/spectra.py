"""Line spectra on a fixed axis, shared by the XRD and Raman oracles and their validators
(PHYSICS.md §4–5): profiles, smooth backgrounds, counting noise, and the analysis tools
of the field (SNIP background, NNLS phase fractions, peak finding, profile fits, R_wp).

A spectrum is counts per axis point, shape ``(B, N)`` (numpy, float64). Lines are given
as arrays ``(B, K)`` of centre, FWHM and *integrated* intensity (the line's total counts
summed over the points): broadening spreads a line, it does not change its counts.

**Differentiable forward models.** The line physics (profiles, line positions and widths,
the oracles' ``lines`` and ``expected``) is written once, in torch, behind
:func:`array_function`: numpy in gives numpy out (float64, as before), torch tensors in
give tensors out with gradients in every condition (fractions, size, strain, temperature,
background). :func:`refine_conditions` fits a spectrum's conditions by gradient with it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import curve_fit, nnls
from scipy.signal import find_peaks

from genmat.sim.materials import SimInputError


# ------------------------------------------------------------ numpy or torch, one code
def _first_tensor(values) -> torch.Tensor | None:
    return next((v for v in values if isinstance(v, torch.Tensor)), None)


def as_tensor(v, like: torch.Tensor | None = None) -> torch.Tensor:
    """``v`` as a floating tensor: ``like``'s dtype and device (float64 on CPU without one);
    integer arrays stay integer (indices)."""
    dtype = like.dtype if like is not None else torch.float64
    device = like.device if like is not None else None
    if isinstance(v, torch.Tensor):
        return v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
    a = np.asarray(v)
    if a.dtype.kind in "iub" and not isinstance(v, (float, int)):
        return torch.as_tensor(a if a.flags.writeable else a.copy(), device=device)
    return torch.as_tensor(a.astype(np.float64), device=device).to(dtype)


def to_numpy(out):
    """Tensors (in tuples, lists, dicts and dataclasses) as numpy arrays."""
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, (tuple, list)):
        return type(out)(to_numpy(v) for v in out)
    if isinstance(out, dict):
        return {k: to_numpy(v) for k, v in out.items()}
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.replace(out, **{f.name: to_numpy(getattr(out, f.name)) for f in dataclasses.fields(out)})
    return out


def array_function(fn):
    """Runs a torch implementation on numpy or torch inputs: numbers and numpy arrays become
    tensors (the dtype and device of the first tensor argument, else float64); with no
    tensor among the arguments the results come back as numpy arrays, otherwise as tensors
    that carry gradients."""

    def convert(v, like):
        if isinstance(v, np.ndarray) or (isinstance(v, (float, int, np.number)) and not isinstance(v, bool)):
            return as_tensor(v, like)
        if isinstance(v, (list, tuple)) and v and not any(isinstance(e, str) for e in v):
            a = np.asarray(v)  # a list of numbers (not of phase names)
            return as_tensor(a, like) if a.dtype.kind in "fiu" else v
        return v

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        like = _first_tensor([*args, *kwargs.values()])
        out = fn(*(convert(a, like) for a in args), **{k: convert(v, like) for k, v in kwargs.items()})
        return out if like is not None else to_numpy(out)

    return wrapped


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

    def points(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """The axis points as a tensor (``like``'s dtype and device)."""
        return as_tensor(self.x, like)


# ------------------------------------------------------------------------------ profiles
def pseudo_voigt(x, center, fwhm, eta):
    """Area-normalised pseudo-Voigt η·L + (1 − η)·G with one FWHM for both parts.

    Broadcasts ``x`` against ``center``/``fwhm``; η = 1 is a Lorentzian, η = 0 a Gaussian.
    Only arithmetic and exp, so one body serves numpy (no conversion: profile fits call it
    thousands of times on a few points) and torch (tensors in, differentiable tensor out).
    """
    like = _first_tensor([x, center, fwhm, eta])
    if like is not None:
        x, center, fwhm, eta = (as_tensor(v, like) for v in (x, center, fwhm, eta))
    else:
        x, center, fwhm, eta = (np.asarray(v, dtype=float) for v in (x, center, fwhm, eta))
    xp = torch if like is not None else np
    dx2 = (x - center) ** 2
    hw = fwhm / 2
    # a pure Lorentzian or Gaussian (a fixed scalar η) skips the other part
    pure = float(eta) if eta.ndim == 0 and not getattr(eta, "requires_grad", False) else None
    lorentz = 0.0 if pure == 0.0 else (eta * hw / math.pi) / (dx2 + hw**2)
    if pure == 1.0:
        return lorentz
    g0 = (1 - eta) * math.sqrt(4 * math.log(2) / math.pi) / fwhm  # coefficients on the lines' shape, then one pass
    return lorentz + g0 * xp.exp(dx2 * (-4 * math.log(2) / fwhm**2))


def render_lines(axis: SpectrumAxis, center, fwhm, area, eta: float, chunk: int = 64):
    """Sum of pseudo-Voigt lines ``(B, K)`` on the axis → ``(B, N)`` counts per point.

    ``area`` is each line's total counts: the profile (per axis unit) is sampled at the
    axis points and multiplied by the step, so ``y.sum()`` is the total counts of lines
    well inside the axis. ``area`` ``(B, K, Q)`` gives ``Q`` spectra ``(B, Q, N)`` from one
    pass over the profiles (the pure-phase patterns). numpy (or lists) in, numpy out;
    tensors in, a differentiable tensor out.
    """
    like = _first_tensor([center, fwhm, area])
    center, fwhm = torch.broadcast_tensors(*(torch.atleast_2d(as_tensor(v, like)) for v in (center, fwhm)))
    area = as_tensor(area, like)
    several = area.dim() == 3
    area = area if several else torch.atleast_2d(area)[..., None]
    center, fwhm = (v.expand(area.shape[0], -1) if v.shape[0] == 1 else v for v in (center, fwhm))
    area = area.expand(center.shape[0], center.shape[1], area.shape[2])
    x = axis.points(center)
    parts = []
    for s in range(0, center.shape[0], int(chunk)):
        sl = slice(s, s + int(chunk))
        prof = pseudo_voigt(x[None, None, :], center[sl, :, None], fwhm[sl, :, None], eta)
        parts.append(torch.einsum("bkq,bkn->bqn", area[sl], prof) * axis.step)
    out = torch.cat(parts) if parts else center.new_zeros((0, area.shape[2], axis.n))
    out = out if several else out[:, 0]
    return out if like is not None else to_numpy(out)


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


@array_function
def check_state(size_nm, strain, temperature_K):
    """Broadcast size/strain/temperature to 1-D arrays; SimInputError naming a bad field."""
    size, strain, t = torch.broadcast_tensors(*(torch.atleast_1d(v) for v in (size_nm, strain, temperature_K)))
    for name, v, allowed in (("size_nm", size, "> 0 nm"), ("strain", strain, "≥ 0"), ("temperature_K", t, "> 0 K")):
        v = v.detach()
        ok = v >= 0 if name == "strain" else v > 0
        bad = ~(torch.isfinite(v) & ok)
        if bad.any():
            raise SimInputError(name, float(v[bad][0]), allowed)
    return size, strain, t


# ------------------------------------------------------------------ lines of a phase set
@dataclass
class LineSet:
    """The lines of a set of phases for a batch of conditions (numpy arrays, or tensors
    when the conditions were tensors).

    ``center``/``fwhm`` ``(B, K)`` (they depend on each condition's temperature, size,
    strain); ``strength`` ``(B, K)`` (or ``(K,)``) total counts of the line for a pure phase (fraction 1);
    ``phase`` ``(K,)`` index of the line's phase.
    """

    center: np.ndarray
    fwhm: np.ndarray
    strength: np.ndarray  # (K,) or (B, K) when intensities depend on the condition (Raman)
    phase: np.ndarray
    n_phases: int

    def spectrum(self, fractions, axis: SpectrumAxis, eta: float):
        """Noise-free mixture ``(B, N)`` for phase fractions ``(B, P)``."""
        like = _first_tensor([fractions, self.center, self.fwhm, self.strength])
        fractions = torch.atleast_2d(as_tensor(fractions, like))
        area = fractions[:, as_tensor(self.phase, fractions)] * as_tensor(self.strength, fractions)
        out = render_lines(axis, as_tensor(self.center, fractions), as_tensor(self.fwhm, fractions), area, eta)
        return out if like is not None else to_numpy(out)

    def patterns(self, axis: SpectrumAxis, eta: float):
        """Pure-phase patterns ``(B, P, N)`` (fraction 1 each): the NNLS basis."""
        like = _first_tensor([self.center, self.fwhm, self.strength])
        center = as_tensor(self.center, like)
        onehot = torch.nn.functional.one_hot(as_tensor(self.phase, center), self.n_phases).to(center.dtype)
        area = as_tensor(self.strength, center).expand(center.shape)[..., None] * onehot
        out = render_lines(axis, center, as_tensor(self.fwhm, center), area, eta)
        return out if like is not None else to_numpy(out)


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

    def expected(self, phases, fractions, *, size_nm, strain, temperature_K, background=None):
        """Noise-free counts ``(B, N)``; ``background`` coefficients ``(B, 5)`` or None.
        Differentiable in every argument when any of them is a tensor."""
        like = _first_tensor([fractions, size_nm, strain, temperature_K, background])
        ref = like if like is not None else torch.zeros((), dtype=torch.float64)  # all in torch, one conversion
        lines = self.lines(phases, **{k: as_tensor(v, ref) for k, v in
                                      (("size_nm", size_nm), ("strain", strain), ("temperature_K", temperature_K))})
        y = lines.spectrum(as_tensor(fractions, ref), self.axis, self.eta)
        if background is not None:
            y = y + as_tensor(background, ref) @ as_tensor(background_basis(self.axis), ref)
        return y if like is not None else to_numpy(y)

    def simulate(self, phases, fractions, *, size_nm, strain, temperature_K, rng: np.random.Generator):
        """Measured counts ``(B, N)`` (a random background from the config's prior, Poisson
        noise) and the background coefficients ``(B, 5)`` drawn."""
        fractions = np.atleast_2d(np.asarray(fractions, dtype=float))
        bg = self.config.background.draw(fractions.shape[0], rng)
        y = self.expected(phases, fractions, size_nm=size_nm, strain=strain, temperature_K=temperature_K, background=bg)
        return poisson_counts(y, rng), bg


# -------------------------------------------------------- refinement through the model
STATE_FIELDS = ("size_nm", "strain", "temperature_K")


@dataclass
class Refinement:
    """Conditions of spectra ``(B, …)`` refined by :func:`refine_conditions`."""

    fractions: np.ndarray  # (B, P) NNLS at the refined state, normalised to sum 1
    size_nm: np.ndarray
    strain: np.ndarray
    temperature_K: np.ndarray
    background: np.ndarray  # (B, N) the fitted background curve
    fit: np.ndarray  # (B, N) the full model
    rwp: np.ndarray
    rexp: np.ndarray


def weighted_linear_fit(design: torch.Tensor, y: torch.Tensor, w: torch.Tensor):
    """Weighted least squares of ``y`` ``(M, N)`` on the rows of ``design`` ``(M, Q, N)``
    (columns scaled, a tiny ridge for rank-deficient cases): coefficients ``(M, Q)`` and
    weighted residuals ``(M, N)``. Differentiable in the design (variable projection)."""
    a = design * w[:, None, :]
    gram = a @ a.transpose(1, 2)
    d = gram.diagonal(dim1=1, dim2=2).clamp(min=1e-30).sqrt()
    scaled = gram / (d[:, :, None] * d[:, None, :]) + 1e-9 * torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    coef = torch.linalg.solve(scaled, (a @ (y * w)[:, :, None]).squeeze(-1) / d) / d
    resid = (y - (coef[:, None, :] @ design).squeeze(1)) * w
    return coef, resid


def refine_conditions(oracle: "LineOracle", phases, counts, bounds: dict[str, tuple[float, float]], *,
                      fixed: dict[str, np.ndarray] | None = None, grid: tuple[int, int, int] = (4, 3, 8),
                      keep: int = 3, steps: int = 40, tol: float = 1e-7) -> Refinement:
    """Full-profile refinement of measured spectra (counts ``(B, N)``): phase fractions,
    crystallite size, microstrain and temperature, by gradient through the oracle's
    differentiable forward model (a Rietveld-style fit of the whole profile).

    Variable projection (Golub & Pereyra 1973): for a state θ = (size, strain, T) the
    fractions and the smooth background enter linearly and are solved in closed form by
    least squares with Poisson weights 1/max(y, 1), so only θ is searched, inside
    ``bounds`` (size on a log scale). Line positions make the misfit multimodal in T: χ²
    is evaluated on a ``grid`` of states (size × strain × temperature), the ``keep`` best
    start Levenberg–Marquardt (the residuals' Jacobian by forward-mode differentiation
    through the model; size and strain broaden lines alike, a narrow valley that plain
    gradient descent crawls along), at most ``steps`` steps or until χ² changes by less
    than ``tol``, and the lowest χ² wins. ``fixed`` holds known state fields ``(B,)`` (e.g. a
    measured temperature) constant. The reported fractions are the non-negative least
    squares (:func:`fit_phases`) at the refined state."""
    y = np.atleast_2d(np.asarray(counts, dtype=float))
    fixed = {k: np.broadcast_to(np.asarray(v, dtype=float), (len(y),)).copy() for k, v in (fixed or {}).items()}
    for name in [*bounds, *fixed]:
        if name not in STATE_FIELDS:
            raise SimInputError("refined field", name, ", ".join(STATE_FIELDS))
    free = [f for f in STATE_FIELDS if f not in fixed]
    missing = [f for f in free if f not in bounds]
    if missing:
        raise SimInputError("bounds", ", ".join(missing), "a (low, high) range for every field not fixed")
    b = len(y)
    basis = torch.as_tensor(background_basis(oracle.axis))

    def state(u: torch.Tensor, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {k: torch.as_tensor(v)[rows] for k, v in fixed.items()}
        for i, name in enumerate(free):
            lo, hi = bounds[name]
            s = u[:, i]  # 0…1 across the bounds
            out[name] = lo * (hi / lo) ** s if name == "size_nm" else lo + (hi - lo) * s
        return out

    def residual(u: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        patterns = oracle.lines(phases, **state(u, rows)).patterns(oracle.axis, oracle.eta)
        design = torch.cat([patterns, basis.expand(len(u), *basis.shape)], dim=1)
        yt = torch.as_tensor(y)[rows]
        return weighted_linear_fit(design, yt, 1 / yt.clamp(min=1.0).sqrt())[1]

    # coarse grid (0…1 across each free field's bounds), then Levenberg–Marquardt from the best few
    axes = [(np.arange(n) + 0.5) / n
            for n, f in zip(grid, STATE_FIELDS) if f in free]
    starts = torch.as_tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(free))) \
        if free else torch.zeros(1, 0, dtype=torch.float64)
    n_grid = len(starts)
    with torch.no_grad():
        scores = torch.cat([residual(starts.repeat(len(r), 1), r.repeat_interleave(n_grid)).square().sum(1)
                            for r in torch.arange(b).split(max(1, 256 // n_grid))]).reshape(b, n_grid)
    k = min(keep, n_grid)
    pick = scores.topk(k, dim=1, largest=False).indices  # (B, k)
    rows = torch.arange(b).repeat_interleave(k)
    u = starts[pick.reshape(-1)].clone()
    with torch.no_grad():
        r = residual(u, rows)
    chi2 = r.square().sum(1)
    damping = torch.full_like(chi2, 1e-2)
    done = torch.zeros_like(chi2, dtype=torch.bool)
    for _ in range(steps if free else 0):
        # the Jacobian of the residuals by forward-mode differentiation, one column per field
        jac = torch.stack([torch.func.jvp(lambda v: residual(v, rows), (u,), (torch.eye(len(free), dtype=u.dtype)[i]
                                                                          .expand_as(u),))[1]
                           for i in range(len(free))], dim=-1)  # (M, N, F)
        h = jac.transpose(1, 2) @ jac
        g = (jac.transpose(1, 2) @ r[:, :, None]).squeeze(-1)
        eye = torch.eye(len(free), dtype=u.dtype)
        step = -torch.linalg.solve(h + damping[:, None, None] * (h.diagonal(dim1=1, dim2=2)[:, :, None] * eye + 1e-9 * eye), g)
        trial = (u + step).clamp(0.0, 1.0)  # projected onto the bounds
        with torch.no_grad():
            r_new = residual(trial, rows)
        chi2_new = r_new.square().sum(1)
        better = chi2_new < chi2
        u = torch.where(better[:, None], trial, u)
        r = torch.where(better[:, None], r_new, r)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-6, 1e6)
        # converged: a step that gains less than tol, or no step left to take (damping at its cap)
        done |= (better & ((chi2 - chi2_new) < tol * chi2)) | (damping >= 1e6)
        chi2 = torch.where(better, chi2_new, chi2)
        if bool(done.all()):
            break
    best = chi2.reshape(b, k).argmin(1) + torch.arange(b) * k
    st = {name: v[best].numpy() for name, v in state(u, rows).items()}
    lines = oracle.lines(phases, **st)
    fit = fit_phases(y, lines.patterns(oracle.axis, oracle.eta), background_basis(oracle.axis))
    return Refinement(np.nan_to_num(fit.fractions), st["size_nm"], st["strain"], st["temperature_K"],
                      fit.background, fit.fit, weighted_profile_r(y, fit.fit), expected_r(np.clip(y, 0, None)))
