"""Tests for genmat.sim.morphology against analytic results."""

from __future__ import annotations

import math

import pytest
import torch

from genmat.sim import SimInputError, characteristic_length, phase_map, radial_average, two_point_correlation, volume_fraction


def test_phase_map_and_volume_fraction():
    c = torch.tensor([[[-1.0, 0.5], [0.0, 2.0]]])  # (1, 2, 2)
    ph = phase_map(c)
    torch.testing.assert_close(ph, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))
    torch.testing.assert_close(volume_fraction(ph), torch.tensor([0.5]))
    torch.testing.assert_close(volume_fraction(phase_map(c[:, None], threshold=0.6)), torch.tensor([0.25]))


def test_radial_average_constant_and_origin():
    f = torch.full((2, 16, 16), 3.0, dtype=torch.float64)
    f[1, 0, 0] = 7.0
    out = radial_average(f)
    assert out.shape == (2, 9)
    torch.testing.assert_close(out[0], torch.full((9,), 3.0, dtype=torch.float64))
    assert out[1, 0].item() == 7.0  # shell 0 holds only the origin
    # Shell 1 = distances rounding to 1: the 4 at distance 1 and the 4 at √2 (8 pixels);
    # periodic, so pixel (0, 15) is at distance 1.
    g = torch.zeros(1, 16, 16, dtype=torch.float64)
    g[0, 0, 15] = 4.0
    assert radial_average(g)[0, 1].item() == pytest.approx(4.0 / 8, abs=1e-12)


def test_two_point_correlation_limits_on_random_field():
    gen = torch.Generator().manual_seed(0)
    phase = (torch.rand(8, 1, 64, 64, generator=gen) < 0.3).float()
    phi = volume_fraction(phase)
    s2 = two_point_correlation(phase)
    assert s2.shape == (8, 33)
    torch.testing.assert_close(s2[:, 0], phi, atol=1e-6, rtol=0)  # S2(0) = φ
    # Uncorrelated pixels: S2(r ≥ 1) = φ² up to sampling noise (~1e-3 per shell here).
    torch.testing.assert_close(s2[:, -1], phi**2, atol=0.01, rtol=0)
    torch.testing.assert_close(s2[:, 1:].mean(dim=1), phi**2, atol=0.003, rtol=0)


@pytest.mark.parametrize("wavelength", [4, 8, 16, 32])
def test_characteristic_length_of_sinusoid(wavelength):
    n = 64
    x = torch.arange(n, dtype=torch.float64)
    along_x = torch.cos(2 * math.pi * x / wavelength)[None, :].expand(n, n)
    along_y = torch.sin(2 * math.pi * x / wavelength)[:, None].expand(n, n) + 0.3  # offset is removed
    c = torch.stack((along_x, along_y))[:, None]  # (2, 1, n, n)
    torch.testing.assert_close(characteristic_length(c), torch.full((2,), float(wavelength), dtype=torch.float64))


def test_characteristic_length_uniform_is_inf():
    assert torch.isinf(characteristic_length(torch.zeros(1, 8, 8))).all()


@pytest.mark.parametrize("shape", [(2, 8, 6), (8, 8), (2, 3, 8, 8)])
def test_bad_shapes_name_field(shape):
    with pytest.raises(SimInputError, match=r"field.*\(B, 1, N, N\)"):
        radial_average(torch.zeros(shape))
    with pytest.raises(ValueError, match="phase"):
        two_point_correlation(torch.zeros(shape))
