"""Physics guidance on cases with a known answer: an exact denoiser of a two-point
distribution, a trained two-mode teacher, and the differentiable target misfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmat.diffusion import NoisePath, PhysicsGuidance, sample
from genmat.diffusion.samplers import network_evaluations
from genmat.generate import SamplerConfig
from genmat.tasks import TargetSet, Tolerance

D = 8


def exact_two_point(path: NoisePath):
    """E[x0 | x_t] for x0 = ±1 (a flat D-vector) with equal weight: tanh(α (x·1)/σ²) · 1."""

    def predict(x, t):
        a, s = (v.reshape(-1, 1, 1).to(x.dtype) for v in path.alpha_sigma(t))
        x0 = torch.tanh(a * x.sum(dim=(1, 2), keepdim=True) / s.square().clamp(min=1e-8)).expand_as(x)
        return x0, (x - a * x0) / s.clamp(min=1e-8)

    return predict


def plus_mode_misfit(x0):  # a "property" (the mean) asked to be +1, tolerance 0.5
    return 0.5 * ((x0.mean(dim=(1, 2)) - 1.0) / 0.5).square()


@pytest.mark.parametrize("method", ["euler", "heun", "ddim", "dpmpp_2m"])
@pytest.mark.parametrize("kind", ["rectified_flow", "vp_cosine"])
def test_guidance_selects_the_mode_the_physics_asks_for(method, kind):
    """Unguided, half the samples land on each mode; the posterior given the misfit puts
    1 − e⁻⁸ of its mass on +1. Guided (scale 30, the scale the micrographs use), samples land
    on +1 and stay on a mode (|x| = 1); the share grows with the scale (85 % at 3)."""
    path = NoisePath(kind)
    predict = exact_two_point(path)
    noise = torch.randn(400, 1, D, generator=torch.Generator().manual_seed(0))
    plain = sample(predict, path, noise, steps=16, method=method)
    assert 0.35 < float((plain.mean(dim=(1, 2)) > 0).float().mean()) < 0.65
    guided_predict = PhysicsGuidance(predict, path, plus_mode_misfit, scale=30.0)
    guided = sample(guided_predict, path, noise, steps=16, method=method)
    means = guided.mean(dim=(1, 2))
    assert float((means > 0).float().mean()) > 0.98
    assert float((guided.abs() - 1).abs().median()) < 0.05
    calls = 16 if method == "dpmpp_2m" else network_evaluations(method, 16)
    assert guided_predict.evaluations == 400 * calls


def test_scale_zero_and_schedule_leave_the_sampler_alone():
    path = NoisePath("rectified_flow")
    predict = exact_two_point(path)
    noise = torch.randn(64, 1, D, generator=torch.Generator().manual_seed(1))
    plain = sample(predict, path, noise, steps=8, method="euler")
    off = PhysicsGuidance(predict, path, plus_mode_misfit, scale=0.0)
    assert torch.equal(sample(off, path, noise, steps=8, method="euler"), plain)
    late = PhysicsGuidance(predict, path, plus_mode_misfit, scale=1.0, t_max=0.3, t_min=0.2)
    sample(late, path, noise, steps=8, method="euler")
    assert late.evaluations == 64  # t = 0.25 only, of the grid 1, 0.875, …, 0.125


def test_generator_samples_with_physics_guidance(two_mode_teacher):
    """Through Generator.sample (classifier-free guidance included): the trained teacher's
    samples go to the mode the misfit asks for; rows tell the misfit which samples it sees."""
    teacher, _ = two_mode_teacher
    n = 128
    values, mask = torch.zeros(n, 1), torch.zeros(n, 1)
    seen = []

    def misfit(x0, rows):
        seen.append((rows.start, rows.stop))
        want = torch.where(torch.arange(rows.start, rows.stop) < n // 2, 1.0, -1.0)
        return 0.5 * ((x0.mean(dim=(1, 2)) - want) / 0.5).square()

    sampler = SamplerConfig(steps=10, method="heun", guidance=1.5, physics_scale=30.0, physics_max_step=None)
    x = teacher.sample(values, mask, sampler=sampler, physics=misfit, batch_size=64)
    m = x.mean(dim=(1, 2))
    assert float((m[: n // 2] > 0).float().mean()) > 0.95 and float((m[n // 2:] < 0).float().mean()) > 0.95
    assert {s for s in seen} == {(0, 64), (64, 128)}
    plain = teacher.sample(values, mask, sampler=SamplerConfig(steps=10, method="heun"), physics=misfit)
    assert 0.3 < float((plain.mean(dim=(1, 2)) > 0).float().mean()) < 0.7  # scale 0: misfit unused


def test_soft_loss_in_tolerance_units():
    tol = {"E_GPa": Tolerance("rel", 0.05), "k_W_mK": Tolerance("rel", 0.01)}
    ts = TargetSet.parse_many([["E_GPa=100"], ["E_GPa in [90, 110]", "k_W_mK>=150"]], tol)
    y = {"E_GPa": torch.tensor([110.0, 100.0, 115.0]), "k_W_mK": torch.tensor([0.0, 140.0, 160.0])}
    loss = ts.soft_loss(y, np.array([0, 1, 1]))
    # point: (110 − 100)/5 = 2 → 2; range: inside → 0, k 10 below 150 in units of max(0, 1.5) → 0.5·(10/1.5)²;
    # third: E 5 above 110, unit max(10, 5) = 10 → 0.125; k inside → 0
    assert loss.tolist() == pytest.approx([2.0, 0.5 * (10 / 1.5) ** 2, 0.125])
    y["E_GPa"].requires_grad_(True)
    (g,) = torch.autograd.grad(ts.soft_loss(y, np.array([0, 1, 1])).sum(), y["E_GPa"])
    assert g.tolist() == pytest.approx([2 / 5, 0.0, 5 / 100])
