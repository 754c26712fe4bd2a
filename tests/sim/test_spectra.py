"""Tests for genmat.sim.spectra: profiles, rendering, backgrounds and the analysis tools
(SNIP, NNLS phase fits, R-factors, peak finding, line-width fits), checked against
analytic results (PHYSICS.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import erf

from genmat.sim.spectra import (
    SpectrumAxis,
    background_basis,
    detect_peaks,
    expected_r,
    fit_line_width,
    fit_phases,
    poisson_counts,
    pseudo_voigt,
    render_lines,
    snip_background,
    weighted_profile_r,
)


def pv_fraction_inside(lo: float, hi: float, center: float, fwhm: float, eta: float) -> float:
    """Analytic share of an area-normalised pseudo-Voigt's area on [lo, hi]."""
    hw = fwhm / 2
    lorentz = (math.atan((hi - center) / hw) - math.atan((lo - center) / hw)) / math.pi
    k = 2 * math.sqrt(math.log(2)) / fwhm  # Gaussian: exp(−(k dx)²)
    gauss = 0.5 * (erf(k * (hi - center)) - erf(k * (lo - center)))
    return eta * lorentz + (1 - eta) * gauss


# ------------------------------------------------------------------------------ profiles
@pytest.mark.parametrize("eta", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("fwhm", [0.5, 2.0])
def test_pseudo_voigt_is_area_normalised(eta, fwhm):
    x = np.linspace(-200.0, 200.0, 400_001)  # step 0.001: trapezoid error ≪ 1e-7
    y = pseudo_voigt(x, 0.3, fwhm, eta)
    assert (y >= 0).all()
    # The Lorentzian part has heavy tails: its share outside ±200 is removed analytically.
    expected = pv_fraction_inside(-200.0, 200.0, 0.3, fwhm, eta)
    if eta > 0:
        assert 1 - expected > 1e-4 * eta  # the allowance matters (a Lorentzian is not confined)
    assert np.trapezoid(y, x) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("center, fwhm", [(0.0, 1.0), (28.47, 0.137), (500.0, 12.0)])
def test_pseudo_voigt_fwhm_is_the_parameter(eta, center, fwhm):
    peak = float(pseudo_voigt(np.array(center), center, fwhm, eta))
    half = lambda x: float(pseudo_voigt(np.array(x), center, fwhm, eta)) - peak / 2  # noqa: E731
    right = brentq(half, center, center + 10 * fwhm, xtol=1e-12 * fwhm)
    left = brentq(half, center - 10 * fwhm, center, xtol=1e-12 * fwhm)
    assert right - left == pytest.approx(fwhm, rel=1e-9)
    assert 0.5 * (right + left) == pytest.approx(center, abs=1e-9 * fwhm)
    # The maximum is at the centre (the profile is symmetric and unimodal).
    x = center + fwhm * np.linspace(-3, 3, 6001)
    assert x[np.argmax(pseudo_voigt(x, center, fwhm, eta))] == pytest.approx(center, abs=1e-3 * fwhm)


def test_pseudo_voigt_limits_are_lorentzian_and_gaussian():
    x = np.linspace(-5, 5, 101)
    g = np.sqrt(4 * np.log(2) / np.pi) / 2.0 * np.exp(-4 * np.log(2) * x**2 / 4.0)  # FWHM 2
    lor = 1.0 / (np.pi * (x**2 + 1.0))  # HWHM 1
    np.testing.assert_allclose(pseudo_voigt(x, 0.0, 2.0, 0.0), g, rtol=1e-12)
    np.testing.assert_allclose(pseudo_voigt(x, 0.0, 2.0, 1.0), lor, rtol=1e-12)


# ------------------------------------------------------------------------------ rendering
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_render_lines_conserves_counts_independent_of_width(eta):
    axis = SpectrumAxis(0.0, 100.0, 2001)  # step 0.05
    fwhm = np.array([4, 20, 100, 400]) * axis.step  # 0.2 … 20 axis units
    center = np.full((1, 4), 50.0)
    area = np.full((1, 4), 1.0e4)
    y = render_lines(axis, center, fwhm[None], area, eta)
    assert y.shape == (1, axis.n)
    # one line at a time: total counts = area × (share of the profile on the axis)
    for k, w in enumerate(fwhm):
        yk = render_lines(axis, [[50.0]], [[w]], [[1.0e4]], eta)[0]
        inside = pv_fraction_inside(axis.start - axis.step / 2, axis.stop + axis.step / 2, 50.0, w, eta)
        assert yk.sum() == pytest.approx(1.0e4 * inside, rel=1e-3), (k, w)
        if eta == 0.0:  # a Gaussian is fully on the axis: the counts are the area itself
            assert yk.sum() == pytest.approx(1.0e4, rel=1e-6)
    # lines add
    singles = sum(render_lines(axis, [[50.0]], [[w]], [[1.0e4]], eta)[0] for w in fwhm)
    np.testing.assert_allclose(y[0], singles, rtol=1e-12)


def test_render_lines_batches_and_zero_area():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    center = np.array([[30.0, 60.0], [40.0, 70.0], [50.0, 80.0]])
    fwhm = np.array([[0.3, 0.5], [0.4, 0.2], [1.0, 0.6]])
    area = np.array([[1000.0, 0.0], [500.0, 2000.0], [0.0, 0.0]])
    y = render_lines(axis, center, fwhm, area, 0.5, chunk=2)  # chunk smaller than the batch
    assert y.shape == (3, axis.n)
    for b in range(3):
        yb = render_lines(axis, center[b : b + 1], fwhm[b : b + 1], area[b : b + 1], 0.5)
        np.testing.assert_allclose(y[b], yb[0], rtol=1e-12)
    assert np.all(y[2] == 0)
    # the maximum of an isolated line is at its centre, within one axis step
    assert axis.x[np.argmax(y[0])] == pytest.approx(30.0, abs=axis.step)


def test_spectrum_axis_and_basis():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    assert axis.x[0] == 10.0 and axis.x[-1] == 90.0 and axis.step == pytest.approx(80 / 1023)
    basis = background_basis(axis)
    assert basis.shape == (5, axis.n)
    u = np.linspace(0, 1, axis.n)
    np.testing.assert_allclose(basis[1], 2 * u - 1, atol=1e-12)
    np.testing.assert_allclose(basis[4], np.exp(-u / 0.12), rtol=1e-12)
    with pytest.raises(ValueError, match="axis"):
        SpectrumAxis(5.0, 5.0, 100)


# ---------------------------------------------------------------------------- background
def test_snip_recovers_smooth_background_under_peaks():
    axis = SpectrumAxis(0.0, 1023.0, 1024)  # unit step: widths below are in points
    bg = np.array([300.0, 50.0, 0.0, 0.0, 800.0]) @ background_basis(axis)  # linear + exponential
    center = np.array([150.0, 300.0, 520.0, 700.0, 880.0])
    fwhm = np.array([5.0, 10.0, 20.0, 8.0, 15.0])  # ≤ 20 points
    area = np.array([8e3, 2e4, 3e4, 5e3, 1.5e4])  # peak heights 400–1900 over a 300–1100 background
    y = bg + render_lines(axis, center, fwhm, area, 0.0)[0]
    est = snip_background(y, half_width=int(2 * fwhm.max()))[0]
    rel = est / bg - 1
    near = np.abs(axis.x[:, None] - center) <= 3 * fwhm  # (N, K)
    away = ~near.any(1)
    assert np.abs(rel[away]).max() < 0.01
    assert np.abs(rel).max() < 0.03  # even under the peaks the estimate stays close
    # and the background of a spectrum without peaks is left as it is
    np.testing.assert_allclose(snip_background(bg, 40)[0], bg, rtol=1e-3)


def test_poisson_counts_are_counts():
    rng = np.random.default_rng(3)
    mu = np.array([[0.0, 0.5, 10.0, 1e4, -1.0]])
    y = poisson_counts(np.repeat(mu, 2000, 0), rng)
    assert y.dtype == np.float64 and (y >= 0).all() and (y == np.round(y)).all()
    assert (y[:, 0] == 0).all() and (y[:, 4] == 0).all()  # negative expectation clipped to 0
    np.testing.assert_allclose(y.mean(0)[1:4], mu[0, 1:4], rtol=0.03)


# -------------------------------------------------------------------------------- R-factors
def test_rwp_zero_for_identical_and_known_value():
    y = np.array([[100.0, 400.0, 900.0]])
    assert weighted_profile_r(y, y)[0] == 0.0
    # R_wp² = Σ (o − c)²/o / Σ o: here (100/100 + 0 + 0)/1400
    assert weighted_profile_r(y, y + [[10.0, 0, 0]])[0] == pytest.approx(math.sqrt(1 / 1400), rel=1e-12)
    assert expected_r(y)[0] == pytest.approx(math.sqrt(3 / 1400), rel=1e-12)


def test_rwp_of_poisson_draws_matches_rexp():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    mu = 150.0 + 40.0 * background_basis(axis)[1] + render_lines(
        axis, [[28.5, 47.3, 56.1, 69.1]], [[0.2, 0.25, 0.3, 0.35]], [[3000.0, 2000.0, 1200.0, 400.0]], 0.5
    )[0]
    rng = np.random.default_rng(11)
    obs = poisson_counts(np.broadcast_to(mu, (200, axis.n)), rng)
    rwp = weighted_profile_r(obs, mu[None])
    rexp = expected_r(obs)
    assert rwp.shape == rexp.shape == (200,)
    assert np.mean(rwp / rexp) == pytest.approx(1.0, abs=0.10)
    assert np.mean(rwp) == pytest.approx(np.mean(rexp), rel=0.10)
    # Poisson alone: R_exp ≈ √(N / Σ μ)
    assert np.mean(rexp) == pytest.approx(math.sqrt(axis.n / mu.sum()), rel=0.02)


# ------------------------------------------------------------------------------ line fits
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("center, fwhm", [(44.71, 0.25), (56.17, 0.9), (30.02, 2.0)])
def test_fit_line_width_recovers_centre_and_fwhm(eta, center, fwhm):
    axis = SpectrumAxis(10.0, 90.0, 4001)  # step 0.02
    x = axis.x
    y = 5000.0 * pseudo_voigt(x, center, fwhm, eta) + 200.0 + 3.0 * (x - 50.0)  # linear background
    c, w = fit_line_width(x, y, center + 0.3 * fwhm, 3 * fwhm, eta)  # start a bit off centre
    assert c == pytest.approx(center, abs=0.01 * fwhm)
    assert w == pytest.approx(fwhm, rel=0.01)


def test_fit_line_width_nan_on_too_few_points():
    x = np.linspace(0, 10, 101)
    y = pseudo_voigt(x, 5.0, 1.0, 0.5)
    c, w = fit_line_width(x, y, 5.0, 0.2, 0.5)  # 5 points in the window
    assert math.isnan(c) and math.isnan(w)


# ---------------------------------------------------------------------------- peak finding
@pytest.mark.parametrize("seed", range(5))
def test_detect_peaks_finds_exactly_the_lines(seed):
    """Two lines on a flat background with Poisson noise: exactly two peaks at the lines,
    none from the noise, at the default SNR threshold (σ = the true Poisson σ)."""
    axis = SpectrumAxis(10.0, 90.0, 1024)
    bg = np.full(axis.n, 100.0)
    centers = np.array([35.0, 60.0])
    mu = bg + render_lines(axis, centers[None], [[0.3, 0.5]], [[3000.0, 2000.0]], 0.5)[0]
    y = poisson_counts(mu, np.random.default_rng(seed))
    idx = detect_peaks(y - bg, np.sqrt(mu))[0]
    found = axis.x[idx]
    assert len(found) == 2, f"peaks at {np.round(found, 2)}"
    np.testing.assert_allclose(np.sort(found), centers, atol=2 * axis.step)


def test_detect_peaks_ignores_pure_noise():
    """A flat Poisson background has no lines: at the default 5σ threshold noise peaks are
    rare (≤ 1 % of 1024-point spectra; a threshold on the σ of the smoothed counts instead
    of one point's gives several per spectrum)."""
    mu = np.full((500, 1024), 100.0)
    y = poisson_counts(mu, np.random.default_rng(21))
    n_found = np.array([len(i) for i in detect_peaks(y - mu, np.sqrt(mu))])
    assert (n_found > 0).mean() <= 0.01, f"noise peaks in {(n_found > 0).sum()} of 500 spectra"
    assert n_found.max() <= 1


def test_detect_peaks_noise_free_and_batch():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    centers = np.array([[20.0, 40.0, 41.5, 70.0], [30.0, 50.0, 80.0, 85.0]])
    net = render_lines(axis, centers, np.full((2, 4), 0.3), np.full((2, 4), 1000.0), 0.5)
    found = detect_peaks(net, np.full((2, axis.n), 1.0))
    assert len(found) == 2
    for b in range(2):
        np.testing.assert_allclose(axis.x[found[b]], centers[b], atol=axis.step)


# ------------------------------------------------------------------------------ phase fits
def _three_patterns(axis: SpectrumAxis) -> np.ndarray:
    c = [[28.0, 47.0, 56.0], [25.3, 37.8, 48.0], [31.8, 34.4, 36.3]]
    a = [[4000.0, 2500.0, 1500.0], [5000.0, 1000.0, 1400.0], [3300.0, 2500.0, 6500.0]]
    return np.stack([render_lines(axis, [ci], [[0.3, 0.35, 0.4]], [ai], 0.5)[0] for ci, ai in zip(c, a)])


def test_fit_phases_recovers_fractions_with_background():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    patterns = _three_patterns(axis)
    basis = background_basis(axis)
    frac = np.array([[0.2, 0.5, 0.3], [0.7, 0.0, 0.3], [0.05, 0.15, 0.8]])
    coef = np.array([[150.0, 30.0, -10.0, 5.0, 200.0]] * 3)  # signed background coefficients
    y = frac @ patterns + coef @ basis
    fit = fit_phases(y, patterns, basis)
    np.testing.assert_allclose(fit.weights, frac, atol=1e-6)
    np.testing.assert_allclose(fit.fractions, frac, atol=1e-6)
    np.testing.assert_allclose(fit.background, coef @ basis, rtol=1e-6)
    np.testing.assert_allclose(fit.fit, y, rtol=1e-6)
    assert (fit.weights >= 0).all()


def test_fit_phases_per_spectrum_basis_matches_single_calls():
    axis = SpectrumAxis(10.0, 90.0, 1024)
    base = _three_patterns(axis)
    rng = np.random.default_rng(5)
    # a different (shifted) library per spectrum, as for different temperatures
    per = np.stack([np.roll(base, s, axis=1) for s in (0, 3, -4)])  # (B, P, N)
    frac = rng.dirichlet(np.ones(3), size=3)
    basis = background_basis(axis)
    mu = np.einsum("bp,bpn->bn", frac, per) + 120.0 * basis[0] + 300.0 * basis[4]
    y = poisson_counts(mu, rng)
    batch = fit_phases(y, per, basis)
    assert batch.weights.shape == (3, 3) and batch.fit.shape == (3, axis.n)
    for b in range(3):
        one = fit_phases(y[b : b + 1], per[b], basis)
        np.testing.assert_allclose(batch.weights[b], one.weights[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(batch.background[b], one.background[0], rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(batch.fit[b], one.fit[0], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(batch.fractions, frac, atol=0.03)


def test_fit_phases_background_only_spectrum():
    axis = SpectrumAxis(10.0, 90.0, 256)
    patterns = _three_patterns(axis)
    fit = fit_phases(np.full((1, axis.n), 100.0), patterns, background_basis(axis))
    np.testing.assert_allclose(fit.weights, 0.0, atol=1e-6)
    np.testing.assert_allclose(fit.background[0], 100.0, rtol=1e-6)
