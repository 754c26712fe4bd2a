"""Tests for genmat.sim.cahn_hilliard against analytic results.

Stated tolerances: mean conserved to 1e-6 (float32) / 1e-12 (float64); linear growth
rate within 1 % of k²(1 − 3c̄² − κk²); lever rule |φ − x_B| < 0.04 after the longest
anneal (64×64; Gibbs–Thomson shifts and finite domains make it inexact); coarsening
exponent of L(τ) in 0.28–0.38 (Lifshitz–Slyozov, 1/3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genmat.sim import (
    PROCESSING_RANGES,
    CahnHilliardConfig,
    SimInputError,
    characteristic_length,
    coarsening_series,
    dimensionless_time,
    evolve,
    phase_map,
    simulate_spinodal,
    volume_fraction,
)

R = 8.314462618




def test_dimensionless_time_anchor_and_arrhenius():
    cfg = CahnHilliardConfig()
    assert dimensionless_time(750.0, 1800.0, cfg).item() == pytest.approx(60.0, rel=1e-12)
    # τ = M0 exp(−Q/RT) t, so τ(T, t) = 60 · (t / 1800) · exp(−Q/R (1/T − 1/750)).
    T = torch.tensor([750.0, 800.0, 900.0])
    t = torch.tensor([3600.0, 1800.0, 5400.0])
    expected = 60.0 * (t.double() / 1800.0) * torch.exp(-60e3 / R * (1 / T.double() - 1 / 750.0))
    torch.testing.assert_close(dimensionless_time(T, t, cfg), expected, rtol=1e-12, atol=0)
    assert 880.0 < dimensionless_time(900.0, 5400.0).item() < 910.0  # top of the range ≈ 900
    other = CahnHilliardConfig(tau_ref=30.0, T_ref_K=800.0, t_ref_s=100.0)
    assert dimensionless_time(800.0, 100.0, other).item() == pytest.approx(30.0, rel=1e-12)


def test_linear_growth_rate_matches_theory():
    # Small sinusoidal perturbation of a uniform state grows as exp(ω τ),
    # ω = k² (1 − 3 c̄² − κ k²) (linearised Cahn–Hilliard).
    n, c_bar, kappa, tau = 32, 0.2, 1.0, 4.0
    modes = (2, 3, 5)
    x = torch.arange(n, dtype=torch.float64)
    k = torch.tensor([2 * math.pi * m / n for m in modes], dtype=torch.float64)
    c0 = c_bar + 1e-6 * torch.cos(k[:, None, None] * x[None, None, :]).expand(len(modes), n, n)
    # The scheme is first order in Δτ (error ≈ 0.4 % here at Δτ = 0.01 without the
    # stabiliser, which adds an O(Δτ A k²) lag of its own).
    cfg = CahnHilliardConfig(kappa=kappa, stabiliser=0.0)
    c = evolve(c0, torch.full((len(modes),), tau), cfg, n_steps=400)
    spec = torch.fft.rfft2(c - c_bar)
    growth = torch.stack([spec[i, 0, m].abs() for i, m in enumerate(modes)]) / (n * n / 2) / 1e-6
    omega = k**2 * (1 - 3 * c_bar**2 - kappa * k**2)
    torch.testing.assert_close(growth, torch.exp(omega * tau), rtol=0.01, atol=0)


def test_mean_conserved_and_output_shape():
    cfg = CahnHilliardConfig(grid=32)
    x_b = [0.3, 0.45, 0.7]
    c = simulate_spinodal(x_b, [750.0, 825.0, 900.0], 5400.0, cfg, seed=1, device="cpu")
    assert c.shape == (3, 1, 32, 32) and c.dtype == torch.float32
    torch.testing.assert_close(c.mean(dim=(1, 2, 3)).double(), 2 * torch.tensor(x_b, dtype=torch.float64) - 1,
                               atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(0)
    c0 = 0.1 * torch.rand(2, 32, 32, generator=g, dtype=torch.float64) - 0.02
    c1 = evolve(c0, torch.tensor([50.0, 200.0]), cfg)
    torch.testing.assert_close(c1.mean(dim=(1, 2)), c0.mean(dim=(1, 2)), atol=1e-12, rtol=0)


def test_lever_rule_after_long_anneal():
    x_b = torch.tensor([0.35, 0.5, 0.65]).repeat_interleave(4)
    c = simulate_spinodal(x_b, 900.0, 5400.0, CahnHilliardConfig(grid=64), seed=3, device="cpu")
    phi = volume_fraction(phase_map(c))
    # Lever rule with equilibrium phases c = ±1: φ = (1 + c̄)/2 = x_B.
    assert (phi - x_b).abs().max().item() < 0.04
    assert c.min().item() < -0.9 and c.max().item() > 0.9  # decomposed into both phases


def test_same_seed_same_output_and_generator():
    cfg = CahnHilliardConfig(grid=16)
    a = simulate_spinodal(0.5, 800.0, 2000.0, cfg, seed=7, device="cpu")
    b = simulate_spinodal(0.5, 800.0, 2000.0, cfg, seed=7, device="cpu")
    c = simulate_spinodal(0.5, 800.0, 2000.0, cfg, seed=8, device="cpu")
    d = simulate_spinodal(0.5, 800.0, 2000.0, cfg, generator=torch.Generator().manual_seed(7), device="cpu")
    assert torch.equal(a, b) and torch.equal(a, d)
    assert not torch.equal(a, c)


def test_coarsening_exponent_is_one_third():
    # Late-stage L(τ) ∝ τ^(1/3) (Lifshitz–Slyozov; Huse 1986). Critical quench (c̄ = 0),
    # 192² grid so L ≲ N/4 up to τ = 2000; fit on log–log over τ ∈ [200, 2000].
    n = 192
    g = torch.Generator().manual_seed(0)
    c0 = 0.05 * (2 * torch.rand(2, n, n, generator=g) - 1)
    taus = np.geomspace(200.0, 2000.0, 8)
    frames = coarsening_series(c0, torch.tensor(taus), CahnHilliardConfig(grid=n))
    assert frames.shape == (8, 2, n, n)
    lengths = np.array([characteristic_length(f).mean().item() for f in frames])
    assert lengths[-1] < n / 4
    exponent = np.polyfit(np.log(taus), np.log(lengths), 1)[0]
    assert 0.28 <= exponent <= 0.38


def test_processing_ranges_constant():
    assert PROCESSING_RANGES == {"x_B": (0.30, 0.70), "temperature_K": (750.0, 900.0), "time_s": (1800.0, 5400.0)}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x_B": 0.8}, r"x_B.*\[0\.3, 0\.7\]"),
        ({"x_B": [0.5, 0.2]}, r"x_B.*\[0\.3, 0\.7\]"),
        ({"temperature_K": 1000.0}, r"temperature_K.*\[750\.0, 900\.0\] K"),
        ({"time_s": -1.0}, r"time_s.*\[1800\.0, 5400\.0\] s"),
        ({"x_B": [[0.5]]}, r"x_B.*\(B,\)"),
        ({"x_B": [0.4, 0.5], "temperature_K": [800.0, 810.0, 820.0]}, r"broadcast"),
    ],
)
def test_simulate_spinodal_bad_inputs(kwargs, match):
    args = {"x_B": 0.5, "temperature_K": 800.0, "time_s": 2000.0, **kwargs}
    with pytest.raises(SimInputError, match=match):
        simulate_spinodal(**args, config=CahnHilliardConfig(grid=8), seed=0, device="cpu")


def test_other_bad_inputs():
    with pytest.raises(ValueError, match=r"time_s.*>= 0"):
        dimensionless_time(800.0, -5.0)
    with pytest.raises(ValueError, match=r"c0.*\(B, N, N\)"):
        evolve(torch.zeros(2, 1, 8, 8), torch.ones(2))
    with pytest.raises(ValueError, match=r"tau.*\(2,\)"):
        evolve(torch.zeros(2, 8, 8), torch.ones(3))
    with pytest.raises(ValueError, match=r"grid.*>= 8"):
        CahnHilliardConfig(grid=4)
    with pytest.raises(ValueError, match=r"dt_max.*> 0"):
        CahnHilliardConfig(dt_max=0.0)
    # Outside the processing ranges is allowed on request, physical limits still hold.
    c = simulate_spinodal(0.2, 700.0, 100.0, CahnHilliardConfig(grid=8), seed=0, device="cpu", check_ranges=False)
    assert c.shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"x_B.*\(0, 1\)"):
        simulate_spinodal(1.2, 700.0, 100.0, CahnHilliardConfig(grid=8), seed=0, device="cpu", check_ranges=False)
