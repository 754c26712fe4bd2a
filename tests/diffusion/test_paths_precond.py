"""Noise paths and the preconditioning wrapper against their closed forms."""

import math

import pytest
import torch

from genmat.diffusion import PREDICTIONS, Denoiser, NoisePath
from genmat.diffusion.paths import append_dims

T = torch.linspace(0.01, 0.99, 25, dtype=torch.float64)


def test_rectified_flow_is_linear_interpolation():
    alpha, sigma = NoisePath("rectified_flow").alpha_sigma(T)
    torch.testing.assert_close(alpha.double(), 1 - T, rtol=0, atol=1e-6)
    torch.testing.assert_close(sigma.double(), T, rtol=0, atol=1e-6)


def test_vp_linear_matches_ddpm_discrete_schedule():
    # Ho et al. 2020: β_i linear from 1e-4 to 0.02 over T = 1000, ᾱ_i = Π (1 − β_j).
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    i = torch.tensor([99, 249, 499, 749])
    continuous = NoisePath("vp_linear").alpha_bar((i + 1).double() / 1000)
    torch.testing.assert_close(continuous, alpha_bar[i], rtol=2e-2, atol=1e-4)


def test_vp_cosine_closed_form():
    s = 0.008
    f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    a_min = math.sqrt(1e-5)  # α = √(f/f(0)) mapped affinely onto [√min_alpha_bar, 1]
    expected = torch.tensor([(a_min + (1 - a_min) * math.sqrt(f(float(t)) / f(0.0))) ** 2 for t in T],
                            dtype=torch.float64)
    torch.testing.assert_close(NoisePath("vp_cosine").alpha_bar(T), expected, rtol=1e-9, atol=1e-12)
    pure = torch.tensor([f(float(t)) / f(0.0) for t in T], dtype=torch.float64)
    torch.testing.assert_close(NoisePath("vp_cosine").alpha_bar(T), pure, rtol=0, atol=2e-3)  # Nichol & Dhariwal


@pytest.mark.parametrize("kind", ["rectified_flow", "vp_linear", "vp_cosine"])
def test_derivatives_match_finite_differences(kind):
    path, h = NoisePath(kind), 1e-4
    t = torch.linspace(0.05, 0.9, 9, dtype=torch.float64)
    (a_p, s_p), (a_m, s_m) = path.alpha_sigma(t + h), path.alpha_sigma(t - h)
    da, ds = path.derivatives(t)
    torch.testing.assert_close(da.double(), ((a_p - a_m) / (2 * h)).double(), rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(ds.double(), ((s_p - s_m) / (2 * h)).double(), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("kind", ["rectified_flow", "vp_linear", "vp_cosine"])
def test_forward_marginal_moments(kind):
    # x_t = α x0 + σ ε with x0 = 0.7 fixed: mean α·0.7, variance σ².
    path = NoisePath(kind)
    g = torch.Generator().manual_seed(0)
    t = torch.full((200_000,), 0.4)
    alpha, sigma = path.alpha_sigma(t[:1])
    x_t = alpha * 0.7 + sigma * torch.randn(200_000, generator=g)
    assert x_t.mean().item() == pytest.approx(0.7 * alpha.item(), abs=0.01)
    assert x_t.var().item() == pytest.approx(sigma.item() ** 2, rel=0.02)


class _Identity(torch.nn.Module):
    def forward(self, x, t, values=None, mask=None):
        return x


@pytest.mark.parametrize("kind", ["rectified_flow", "vp_linear", "vp_cosine"])
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("shape", [(4, 1, 16), (4, 2, 8, 8)])
def test_target_inverts_to_x0_and_eps(kind, prediction, shape):
    model = Denoiser(_Identity(), NoisePath(kind), prediction)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    t = torch.tensor([0.05, 0.3, 0.6, 0.95])
    alpha, sigma = (append_dims(v, len(shape)) for v in model.path.alpha_sigma(t))
    x_t = alpha * x0 + sigma * eps
    x0_hat, eps_hat = model.to_x0_eps(model.target(x0, eps, t), x_t, t)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-3, atol=2e-3)


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="allowed"):
        NoisePath("vp_quadratic")
    with pytest.raises(ValueError, match="allowed"):
        Denoiser(_Identity(), NoisePath(), "score")
