"""Samplers on Gaussian data, where the exact denoiser is known in closed form.

For x0 ~ N(μ, s²) (per dimension) and x_t = α x0 + σ ε:
    E[x0 | x_t] = μ + α s² (x_t − α μ) / (α² s² + σ²)
so a correct sampler driven by this denoiser must return samples with mean μ
and variance s².
"""

import pytest
import torch

from genmat.diffusion import NoisePath, sample
from genmat.diffusion.paths import append_dims
from genmat.diffusion.samplers import ddim_step

MU, S = 1.5, 0.5


def exact_gaussian(path: NoisePath, mu=MU, s=S):
    def predict(x, t):
        alpha, sigma = (append_dims(v, x.dim()).double() for v in path.alpha_sigma(t))
        x = x.double()
        x0 = mu + alpha * s**2 * (x - alpha * mu) / (alpha**2 * s**2 + sigma**2)
        eps = (x - alpha * x0) / sigma.clamp(min=1e-8)
        return x0.float(), eps.float()

    return predict


CASES = [
    ("rectified_flow", "euler", 100),
    ("rectified_flow", "heun", 20),
    ("rectified_flow", "ddim", 100),
    ("vp_cosine", "ddim", 50),
    ("vp_linear", "heun", 30),
    ("vp_linear", "ddpm", 250),
    ("vp_cosine", "ddpm", 250),
    ("rectified_flow", "dpmpp_2m", 20),
    ("vp_linear", "dpmpp_2m", 20),
    ("vp_cosine", "dpmpp_2m", 20),
]


@pytest.mark.parametrize("kind,method,steps", CASES)
def test_sampler_recovers_gaussian_moments(kind, method, steps):
    path = NoisePath(kind)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(20_000, 1, 4, generator=g)
    x = sample(exact_gaussian(path), path, noise, steps=steps, method=method, generator=g)
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S, rel=0.04)


def test_ddim_eta0_is_deterministic_and_invertible():
    path = NoisePath("vp_cosine")
    predict = exact_gaussian(path)
    g = torch.Generator().manual_seed(3)
    x0 = MU + S * torch.randn(512, 1, 8, generator=g)
    ts = torch.linspace(1e-3, 0.98, 801)  # start just off t = 0, where ε is undefined
    x = x0.clone()
    for t, s in zip(ts[:-1], ts[1:]):  # data -> noise (DDIM inversion)
        x = ddim_step(path, predict, x, t, s)
    latent = x.clone()
    for t, s in zip(ts.flip(0)[:-1], ts.flip(0)[1:]):  # noise -> data
        x = ddim_step(path, predict, x, t, s)
    torch.testing.assert_close(x, x0, rtol=0, atol=0.02 * S)  # first-order: error ∝ 1/steps
    again = latent.clone()
    for t, s in zip(ts.flip(0)[:-1], ts.flip(0)[1:]):
        again = ddim_step(path, predict, again, t, s)
    assert torch.equal(again, x)


def test_sampler_rejects_bad_arguments():
    path = NoisePath()
    with pytest.raises(ValueError, match="allowed"):
        sample(exact_gaussian(path), path, torch.randn(2, 1, 4), method="rk45")
    with pytest.raises(ValueError, match="steps"):
        sample(exact_gaussian(path), path, torch.randn(2, 1, 4), steps=0)


def test_dpm_solver_2m_is_second_order_and_ddim_first():
    """Against a fine Heun solution of the same ODE: doubling the steps divides the
    DPM-Solver++(2M) error by about 4 and the DDIM (first-order) error by about 2."""
    from genmat.diffusion.samplers import dpmpp_2m, log_snr_grid

    path = NoisePath("vp_cosine")
    predict = exact_gaussian(path)
    noise = torch.randn(2000, 1, 4, generator=torch.Generator().manual_seed(1))
    ref = sample(predict, path, noise, steps=4000, method="heun")
    err_2m, err_ddim = [], []
    for steps in (32, 64):
        ts = log_snr_grid(path, steps)
        x_start = noise * path.alpha_sigma(ts[:1])[1]
        err_2m.append((dpmpp_2m(path, predict, x_start, ts) - ref).abs().max().item())
        y = x_start
        for t, s in zip(ts[:-1], ts[1:]):
            y = ddim_step(path, predict, y, t, s)
        err_ddim.append((y - ref).abs().max().item())
    assert err_2m[0] / err_2m[1] > 3.2
    assert 1.6 < err_ddim[0] / err_ddim[1] < 2.5
    assert err_2m[1] < 0.1 * err_ddim[1]


def test_log_snr_grid_is_uniform_in_log_snr():
    from genmat.diffusion.samplers import log_snr_grid

    path = NoisePath("vp_linear")
    ts = log_snr_grid(path, 10)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and (ts[:-1] > ts[1:]).all()
    a, s = (v.double() for v in path.alpha_sigma(ts[:-1].double()))
    lam = (a / s).log()  # from λ(t = 1) ≈ −5.0 (VP linear does not reach α = 0) to λ = 6
    step = (6.0 - lam[0].item()) / 10
    torch.testing.assert_close(lam[1:] - lam[:-1], torch.full((9,), step, dtype=torch.float64), atol=0.02, rtol=0)


def test_classifier_guidance_samples_the_exact_posterior():
    """Prior x ~ N(0, I_d), measurement y = mean(x) + N(0, τ²). With the exact denoiser and
    the exact noisy likelihood p(y | x_t) = N(y; a·E[x|x_t], τ² + a·Cov[x|x_t]·a), guidance
    at s = 1 must sample the posterior: mean(x) ~ N(k y, k τ²) with k = (1/d) / (1/d + τ²)."""
    from genmat.diffusion import classifier_guided

    d, tau, y = 4, 0.2, 1.0
    for kind in ("rectified_flow", "vp_cosine"):
        path = NoisePath(kind)
        predict = exact_gaussian(path, mu=0.0, s=1.0)

        def grad_log_lik(x, t):
            alpha, sigma = (append_dims(v, x.dim()).double() for v in path.alpha_sigma(t))
            v = alpha**2 + sigma**2
            mean = (alpha / v) * x.double().mean(dim=(1, 2), keepdim=True)  # a·E[x|x_t]
            var = tau**2 + (sigma**2 / v) / d  # τ² + a·Cov·a
            return ((y - mean) / var * (alpha / v) / d).expand_as(x).float()

        noise = torch.randn(20_000, 1, d, generator=torch.Generator().manual_seed(4))
        x = sample(classifier_guided(predict, path, grad_log_lik, 1.0, alpha_min=1e-6), path, noise, steps=200,
                   method="heun")
        k = (1 / d) / (1 / d + tau**2)
        m = x.mean(dim=(1, 2))
        assert m.mean().item() == pytest.approx(k * y, abs=0.02), kind
        assert m.var().item() == pytest.approx(k * tau**2, rel=0.1), kind
        unguided = sample(classifier_guided(predict, path, grad_log_lik, 0.0), path, noise, steps=50, method="heun")
        assert unguided.mean(dim=(1, 2)).mean().abs().item() < 0.02


def test_cosine_path_has_its_derivatives_up_to_t_1_and_heun_is_second_order():
    """ᾱ(1) > 0 must not freeze the path: dα/dt ≠ 0 up to t = 1 (it matches a finite
    difference in float64), and on the cosine path Euler is first order (doubling the steps
    halves the error) and Heun second order (divides it by 4), against a fine Heun solution."""
    path = NoisePath("vp_cosine")
    t = torch.tensor([0.5, 0.999, 1.0], dtype=torch.float64)
    d_alpha, d_sigma = path.derivatives(t)
    h = 1e-7
    fd = (path.alpha_bar(t).sqrt() - path.alpha_bar(t - h).sqrt()) / h
    torch.testing.assert_close(d_alpha.double(), fd, rtol=1e-4, atol=0)
    assert float(d_alpha[-1]) < -1.0 and float(d_sigma[-1]) > 0
    assert float(path.alpha_bar(torch.tensor(1.0))) == pytest.approx(path.min_alpha_bar, rel=1e-6)
    predict = exact_gaussian(path)
    noise = torch.randn(2000, 1, 4, generator=torch.Generator().manual_seed(1))
    ref = sample(predict, path, noise, steps=4000, method="heun")
    for method, ratio in (("euler", 2.0), ("heun", 4.0)):
        errs = [(sample(predict, path, noise, steps=n, method=method) - ref).abs().max().item() for n in (16, 32, 64)]
        assert errs[0] / errs[1] == pytest.approx(ratio, rel=0.15) and errs[1] / errs[2] == pytest.approx(ratio, rel=0.15)
