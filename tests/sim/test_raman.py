"""Tests for genmat.sim.raman: band positions, widths and intensities of the Raman oracle
against literature values and analytic laws (PHYSICS.md §5), and NNLS phase fractions."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from genmat.sim.materials import SimInputError
from genmat.sim.raman import Raman, RamanConfig, check_phases
from genmat.sim.spectra import SpectrumAxis, background_basis, fit_line_width, fit_phases, render_lines
from genmat.sim.xrd import XRD

ROOM = 298.15
FINE = SpectrumAxis(80.0, 1700.0, 8192, "Raman shift (cm⁻¹)")
# Literature: Si optic phonon (Paillard et al. 1999 confinement fit; Hart et al. 1970 dω/dT).
SI_SHIFT, SI_A, SI_GAMMA, SI_LATTICE_NM, SI_DW_DT = 520.7, 52.3, 1.586, 0.543, -0.022


@pytest.fixture(scope="module")
def fine():
    return Raman(RamanConfig(axis=FINE))


def band_fit(raman: Raman, phase: str, near: float, *, size_nm, strain=0.0, temperature_K=ROOM):
    """(centre, FWHM, model FWHM, model centre) of the band of a pure phase nearest ``near``."""
    lines = raman.lines([phase], size_nm=size_nm, strain=strain, temperature_K=temperature_K)
    y = lines.spectrum([[1.0]], raman.axis, raman.eta)[0]
    k = int(np.argmin(np.abs(lines.center[0] - near)))
    c, w = fit_line_width(raman.axis.x, y, lines.center[0, k], 2.0 * lines.fwhm[0, k], raman.eta)
    return c, w, lines.fwhm[0, k], lines.center[0, k]


def peak_position(x: np.ndarray, y: np.ndarray, near: float, half_window: float = 10.0) -> float:
    """Maximum of y within near ± half_window, refined by a parabola through 3 points."""
    idx = np.flatnonzero(np.abs(x - near) <= half_window)
    i = idx[np.argmax(y[idx])]
    assert idx[0] < i < idx[-1], "maximum on the window's edge: no band there"
    y0, y1, y2 = y[i - 1 : i + 2]
    return float(x[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) * (x[1] - x[0]))


# ----------------------------------------------------------------------------- interface
def test_interface_mirrors_xrd():
    r = Raman()
    assert (r.name, r.family) == ("raman", "raman")
    assert r.axis == SpectrumAxis(80.0, 1700.0, 1024, "Raman shift (cm⁻¹)") and r.eta == 1.0
    for method in ("check_phases", "line_positions", "lines", "width_to_size", "expected", "simulate"):
        xrd_params = list(inspect.signature(getattr(XRD, method)).parameters.values())
        raman_params = list(inspect.signature(getattr(Raman, method)).parameters.values())
        assert [(p.name, p.kind) for p in raman_params[: len(xrd_params)]] == [(p.name, p.kind) for p in xrd_params]
        assert all(p.default is not inspect.Parameter.empty for p in raman_params[len(xrd_params):])


# ------------------------------------------------------------------------------ positions
@pytest.mark.parametrize("phase, shift", [
    ("Si", 520.7), ("anatase", 144.0), ("rutile", 447.0), ("rutile", 612.0), ("ZnO", 438.0),
    ("diamond", 1332.0), ("hematite", 225.0), ("hematite", 293.0), ("graphite", 1580.0),
])
def test_band_maxima_at_literature_shifts(fine, phase, shift):
    y = fine.expected([phase], [[1.0]], size_nm=1000.0, strain=0.0, temperature_K=ROOM)[0]
    assert peak_position(FINE.x, y, shift) == pytest.approx(shift, abs=1.0)


def test_line_positions_are_bulk_positions(fine):
    centers, index = fine.line_positions(["anatase", "Si"], [ROOM, 600.0])
    assert centers.shape == (2, len(index)) and set(index) == {0, 1}
    bulk = fine.lines(["anatase", "Si"], size_nm=1e6, strain=0.0, temperature_K=[ROOM, 600.0]).center
    np.testing.assert_allclose(centers, bulk, atol=1e-6)


# -------------------------------------------------------------------------------- widths
@pytest.mark.parametrize("phase, near, size", [("Si", 520.7, 5.0), ("Si", 520.7, 20.0), ("diamond", 1332.0, 8.0),
                                               ("anatase", 144.0, 10.0), ("ZnO", 438.0, 15.0)])
def test_fitted_lorentzian_fwhm_is_model_width(fine, phase, near, size):
    c, w, model_w, model_c = band_fit(fine, phase, near, size_nm=size, strain=0.001)
    assert w == pytest.approx(model_w, rel=0.02)
    assert c == pytest.approx(model_c, abs=0.1)


@pytest.mark.parametrize("strain, temperature", [(0.0, ROOM), (0.002, 700.0)])
def test_width_to_size_inverts_lines(strain, temperature):
    r = Raman()
    sizes = np.array([5.0, 10.0, 20.0])
    lines = r.lines(["Si"], size_nm=sizes, strain=strain, temperature_K=temperature)
    k = int(np.argmin(np.abs(lines.center[0] - SI_SHIFT)))
    got = r.width_to_size(lines.fwhm[:, k], lines.center[:, k], strain, phases=["Si"], temperature_K=temperature)
    np.testing.assert_allclose(got, sizes, rtol=0.02)
    # a width at or below the bulk width leaves nothing for confinement
    bulk = r.lines(["Si"], size_nm=1e9, strain=strain, temperature_K=temperature).fwhm[0, k]
    assert np.isnan(r.width_to_size(bulk - 0.5, SI_SHIFT, strain, phases=["Si"], temperature_K=temperature))


def test_width_to_size_from_fitted_width(fine):
    for size in (5.0, 10.0, 20.0):
        c, w, _, _ = band_fit(fine, "Si", SI_SHIFT, size_nm=size)
        assert float(fine.width_to_size(w, c, 0.0, phases=["Si"])) == pytest.approx(size, rel=0.02)


# --------------------------------------------------------------------------- confinement
def test_si_confinement_shift_follows_paillard_fit(fine):
    expected = -SI_A * (SI_LATTICE_NM / 5.0) ** SI_GAMMA  # ≈ −1.55 cm⁻¹
    c5, *_ = band_fit(fine, "Si", SI_SHIFT, size_nm=5.0)
    c_bulk, *_ = band_fit(fine, "Si", SI_SHIFT, size_nm=1e6)
    assert c5 - c_bulk == pytest.approx(expected, abs=0.1)
    assert c_bulk == pytest.approx(SI_SHIFT, abs=0.1)


def test_confinement_grows_monotonically_as_size_shrinks():
    sizes = np.array([100.0, 50.0, 20.0, 10.0, 5.0, 3.0, 2.0])
    lines = Raman().lines(["Si", "anatase"], size_nm=sizes, strain=0.0, temperature_K=ROOM)
    si = int(np.argmin(np.abs(lines.center[0] - SI_SHIFT)))
    ana = int(np.argmin(np.abs(lines.center[0] - 144.0)))
    assert (np.diff(lines.center[:, si]) < 0).all()  # Si softens
    assert (np.diff(lines.center[:, ana]) > 0).all()  # anatase Eg(144) hardens
    assert (np.diff(lines.fwhm[:, si]) > 0).all() and (np.diff(lines.fwhm[:, ana]) > 0).all()


# --------------------------------------------------------------------------- temperature
def test_si_temperature_shift(fine):
    c_room, *_ = band_fit(fine, "Si", SI_SHIFT, size_nm=1000.0, temperature_K=ROOM)
    c_hot, *_ = band_fit(fine, "Si", SI_SHIFT, size_nm=1000.0, temperature_K=ROOM + 500.0)
    assert c_hot - c_room == pytest.approx(SI_DW_DT * 500.0, abs=0.1)


def test_stokes_intensity_follows_bose_factor():
    r = Raman()
    s = r.lines(["anatase"], size_nm=20.0, strain=0.0, temperature_K=[ROOM, 800.0]).strength[:, 0]
    n = lambda t: 1 / (math.exp(1.438777 * 144.0 / t) - 1)  # noqa: E731
    assert s[1] / s[0] == pytest.approx((n(800.0) + 1) / (n(ROOM) + 1), rel=1e-9)


# ------------------------------------------------------------------------------ graphite
@pytest.mark.parametrize("size", [2.0, 5.0, 10.0, 30.0, 100.0])
def test_graphite_d_to_g_follows_tuinstra_koenig(size):
    lines = Raman().lines(["graphite"], size_nm=size, strain=0.0, temperature_K=ROOM)
    d = int(np.argmin(np.abs(lines.center[0] - 1350.0)))
    g = int(np.argmin(np.abs(lines.center[0] - 1580.0)))
    assert lines.strength[0, d] / lines.strength[0, g] == pytest.approx(4.4 / size, rel=0.01)


# ------------------------------------------------------------------------- band areas
@pytest.mark.parametrize("phase, near", [("Si", 520.7), ("anatase", 144.0), ("diamond", 1332.0)])
def test_band_counts_do_not_depend_on_size(fine, phase, near):
    sizes = np.array([3.0, 5.0, 10.0, 30.0, 1000.0])
    lines = fine.lines([phase], size_nm=sizes, strain=0.0, temperature_K=ROOM)
    k = int(np.argmin(np.abs(lines.center[0] - near)))
    strength = lines.strength[:, k]
    np.testing.assert_allclose(strength, strength[-1], rtol=1e-12)
    # Rendered counts on the axis + the Lorentzian tails beyond it (analytic) = strength.
    y = render_lines(FINE, lines.center[:, k : k + 1], lines.fwhm[:, k : k + 1], strength[:, None], 1.0)
    c, hw = lines.center[:, k], lines.fwhm[:, k] / 2
    lo, hi = FINE.start - FINE.step / 2, FINE.stop + FINE.step / 2
    inside = (np.arctan((hi - c) / hw) - np.arctan((lo - c) / hw)) / np.pi
    np.testing.assert_allclose(y.sum(1) / inside, strength, rtol=0.01)


# ----------------------------------------------------------------------- phase fractions
PHASES = ("anatase", "rutile", "ZnO")
FRACTIONS = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.34, 0.33, 0.33]])
STATE = {"size_nm": np.array([5.0, 12.0, 20.0, 30.0]), "strain": np.array([0.0, 0.001, 0.002, 0.003]),
         "temperature_K": np.array([300.0, 500.0, 800.0, 1000.0])}


def test_nnls_recovers_fractions_noise_free():
    r = Raman()
    bg = r.config.background.draw(len(FRACTIONS), np.random.default_rng(0))
    y = r.expected(PHASES, FRACTIONS, background=bg, **STATE)
    fit = fit_phases(y, r.lines(PHASES, **STATE).patterns(r.axis, r.eta), background_basis(r.axis))
    np.testing.assert_allclose(fit.fractions, FRACTIONS, atol=0.01)


def test_nnls_recovers_fractions_with_counting_noise():
    r = Raman()
    y, bg = r.simulate(PHASES, FRACTIONS, rng=np.random.default_rng(1), **STATE)
    assert y.shape == (len(FRACTIONS), r.axis.n) and bg.shape == (len(FRACTIONS), 5)
    assert (y >= 0).all() and np.array_equal(y, np.round(y))
    fit = fit_phases(y, r.lines(PHASES, **STATE).patterns(r.axis, r.eta), background_basis(r.axis))
    np.testing.assert_allclose(fit.fractions, FRACTIONS, atol=0.03)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("phases, kwargs, field", [
    (["unobtainium"], {}, "phases"),
    (["alpha_Fe"], {}, "phases"),
    (["anatase", "NaCl"], {}, "phases"),
    (["anatase", "anatase"], {}, "phases"),
    ([], {}, "phases"),
    (["Si"], {"size_nm": 0.0}, "size_nm"),
    (["Si"], {"size_nm": -3.0}, "size_nm"),
    (["Si"], {"strain": -0.001}, "strain"),
    (["Si"], {"temperature_K": 0.0}, "temperature_K"),
])
def test_bad_input_names_the_field(phases, kwargs, field):
    state = {"size_nm": 10.0, "strain": 0.0, "temperature_K": ROOM, **kwargs}
    with pytest.raises(SimInputError, match=field) as err:
        Raman().lines(phases, **state)
    assert err.value.field == field


@pytest.mark.parametrize("name", ["alpha_Fe", "gamma_Fe", "Cu", "Al", "NaCl"])
def test_raman_inactive_phases_are_rejected(name):
    with pytest.raises(SimInputError, match="Raman-active") as err:
        check_phases([name])
    assert (err.value.field, err.value.value) == ("phases", name)
