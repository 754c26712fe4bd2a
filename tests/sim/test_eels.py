"""The EELS oracle against independent results: exspy's own log-ratio thickness and
Fourier-log deconvolution recover the thickness and the single-scattering plasmon the
forward model was given; the Poisson zero-loss fraction e^(−t/λ); edges at the onsets of
exspy's element database; plural scattering conserves the core-loss signal."""

from __future__ import annotations

import numpy as np
import pytest

from genmat.sim.eels import EELS_ELEMENTS, EELSConfig, _plasmon, edge_onsets, eels_signal, low_loss, simulate_eels
from genmat.sim.materials import SimInputError

CFG = EELSConfig()
T = np.array([0.3, 0.8, 1.4])


def _signal(data, axis):
    return eels_signal(data, axis, CFG)


def test_zero_loss_fraction_is_poisson_and_exspy_log_ratio_recovers_the_thickness():
    ll = low_loss(T, CFG)
    z = low_loss(T, CFG, zero_loss_only=True)
    np.testing.assert_allclose(z.sum(1) / ll.sum(1), np.exp(-T), rtol=1e-3)  # I_0 / I_total = e^(−t/λ)
    thickness = _signal(ll, CFG.low_loss_axis).estimate_thickness(threshold=3.0).data
    np.testing.assert_allclose(thickness, T, rtol=5e-3)


def test_exspy_fourier_log_deconvolution_recovers_the_single_plasmon():
    ll = low_loss(T, CFG)
    z = low_loss(T, CFG, zero_loss_only=True)
    ssd = _signal(ll, CFG.low_loss_axis).fourier_log_deconvolution(_signal(z, CFG.low_loss_axis)).data
    x = CFG.low_loss_axis.x
    p = _plasmon(CFG, np.clip(x, 0, None))  # unit area per eV
    window = (x > 5) & (x < 150)
    for i, t in enumerate(T):
        got = ssd[i] / z[i].sum() / CFG.dispersion_eV
        assert np.abs(got[window] - t * p[window]).max() <= 0.02 * t * p[window].max()


def test_each_element_shows_its_edge_at_the_database_onset():
    onsets = edge_onsets()
    assert onsets == {"C": 284.0, "N": 401.0, "Ti": 456.0, "O": 532.0, "Fe": 708.0}  # Egerton's tables too
    x = CFG.core_loss_axis.x
    rng = np.random.default_rng(0)
    for i, el in enumerate(CFG.elements):
        frac = np.zeros((1, len(CFG.elements)))
        frac[0, i] = 1.0
        _, _, clean = simulate_eels(frac, np.array([0.2]), CFG, rng=rng, noise=False)
        slope = np.diff(clean[0, 1])
        near = np.abs(x[1:] - onsets[el]) < 20
        jump = x[1:][near][np.argmax(slope[near])]
        assert abs(jump - onsets[el]) <= 3.0, (el, jump)  # the steepest rise within 3 eV of the onset


def test_plural_scattering_moves_but_keeps_the_core_loss_signal():
    """Convolving with the low loss (unit area per electron) redistributes the edge to higher
    losses; summed over a window wide enough to hold the plural tail, the edge's counts per
    zero-loss electron do not depend on t/λ beyond the atoms it adds (∝ t/λ)."""
    rng = np.random.default_rng(1)
    frac = np.zeros((2, len(CFG.elements)))
    frac[:, CFG.elements.index("C")] = 1.0
    t = np.array([0.2, 1.0])
    _, r, with_c = simulate_eels(frac, t, CFG, rng=rng, noise=False)
    frac[:] = 0
    rng = np.random.default_rng(1)  # the same background exponents
    _, r2, without = simulate_eels(frac, t, CFG, rng=rng, noise=False)
    assert np.array_equal(r, r2)
    edge = (with_c - without)[:, 1].sum(1) / CFG.core_exposure  # = edge_strength · t · Σσ (atoms × cross section)
    np.testing.assert_allclose(edge / t, edge[0] / t[0], rtol=0.03)


def test_bad_input_names_the_field():
    rng = np.random.default_rng(0)
    with pytest.raises(SimInputError, match="t_lambda"):
        low_loss(np.array([-0.1]))
    with pytest.raises(SimInputError, match="fractions"):
        simulate_eels(np.ones((2, 3)), np.ones(2), rng=rng)
    with pytest.raises(SimInputError, match="element"):
        edge_onsets(("Zz",))
    assert set(EELS_ELEMENTS) == set(CFG.elements)
