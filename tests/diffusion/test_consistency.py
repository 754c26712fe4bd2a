"""Consistency distillation on a case with a known answer: two modes (flat lines at ±1).
The teacher needs many steps — one Euler step lands between the modes; the distilled
student lands on a mode in one step, with both modes represented, close to the teacher's
50-step ODE solution from the same noise."""

from __future__ import annotations

import pytest
import torch

from genmat.generate import Generator, GeneratorConfig, SamplerConfig
from genmat.nn import UNetConfig
from genmat.train import TrainConfig
from tests.diffusion.conftest import SCHEMA


def test_distilled_student_samples_both_modes_in_one_step(tmp_path, two_mode_teacher):
    teacher, data = two_mode_teacher
    student, _ = teacher.distill(data, TrainConfig(steps=400, batch_size=64, lr=1e-3, warmup_steps=10, log_every=200),
                                 checkpoint_path=tmp_path / "student.ckpt", progress=False)
    assert student.config.sampler.method == "consistency"
    noise = torch.randn(1024, 1, 8, generator=torch.Generator().manual_seed(5))
    v = torch.zeros(1024, 1)
    ode = teacher.sample_from(noise, v, v, SamplerConfig(steps=50, method="heun"))
    euler = teacher.sample_from(noise, v, v, SamplerConfig(steps=1, method="euler"))
    one = student.sample_from(noise, v, v, SamplerConfig(steps=1, method="consistency"))
    level = one.mean(dim=(1, 2))
    assert euler.mean(dim=(1, 2)).abs().mean() < 0.5
    assert level.abs().mean() > 0.8 and 0.3 < (level > 0).float().mean() < 0.7
    assert (one - ode).abs().mean() < 0.5 * (euler - ode).abs().mean()
    two = student.sample(v, v, sampler=SamplerConfig(steps=2, method="consistency"), seed=1)
    assert two.mean(dim=(1, 2)).abs().mean() > 0.7
    again = Generator.from_checkpoint(tmp_path / "student.ckpt")  # the student's sampler comes back with it
    assert again.config.sampler == student.config.sampler
    torch.testing.assert_close(again.sample(v[:4], v[:4], seed=2), student.sample(v[:4], v[:4], seed=2))


def test_distillation_needs_a_diffusion_teacher():
    vae = Generator(GeneratorConfig(method="vae", unet=UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1,))),
                    SCHEMA, (1, 8))
    with pytest.raises(ValueError, match="diffusion teacher"):
        vae.distill([torch.zeros(4, 1, 8), torch.zeros(4, 1), torch.zeros(4, 1)], TrainConfig(steps=1))
