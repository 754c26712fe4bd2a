"""Reflow on a case with a known answer: two modes (flat lines at −1 and +1). A flow
trained on them, sampled with one Euler step, lands between the modes (the one-step
velocity points at their mean); after reflow its paths are straight, and one step lands
on a mode, as the 50-step solution does."""

from __future__ import annotations

import pytest
import torch

from genmat.generate import Generator, GeneratorConfig, SamplerConfig
from genmat.nn import UNetConfig
from genmat.train import TrainConfig
from tests.diffusion.conftest import SCHEMA


def _one_step_vs_ode(gen: Generator) -> tuple[float, float]:
    noise = torch.randn(1024, 1, 8, generator=torch.Generator().manual_seed(5))
    v, m = torch.zeros(1024, 1), torch.zeros(1024, 1)
    one = gen.sample_from(noise, v, m, SamplerConfig(steps=1, method="euler"))
    ode = gen.sample_from(noise, v, m, SamplerConfig(steps=50, method="heun"))
    return (one - ode).abs().mean().item(), one.mean(dim=(1, 2)).abs().mean().item()


def test_reflow_straightens_the_flow_so_one_step_reaches_the_modes(two_mode_teacher):
    gen, data = two_mode_teacher
    gap, level = _one_step_vs_ode(gen)
    assert gap > 0.5 and level < 0.5  # one step: between the modes
    gen.reflow(data, TrainConfig(steps=400, batch_size=64, lr=1e-3, warmup_steps=10, log_every=200),
               n_pairs=1024, steps=30, progress=False)
    gap_after, level_after = _one_step_vs_ode(gen)
    assert gap_after < 0.25 * gap and level_after > 0.85  # one step: on a mode


def test_reflow_refuses_other_generators():
    gen = Generator(GeneratorConfig(path="vp_cosine", prediction="eps",
                                    unet=UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1,))),
                    SCHEMA, (1, 8))
    with pytest.raises(ValueError, match="rectified-flow"):
        gen.reflow([torch.zeros(4, 1, 8), torch.zeros(4, 1), torch.zeros(4, 1)], TrainConfig(steps=1))
