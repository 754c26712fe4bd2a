"""The noise-aware property regressor: it learns E[c | x_t] at every noise level, ranks
finished samples (pre-screening), and its gradient steers an unconditional generator to
a requested property (classifier guidance) — on flat lines whose level is the property."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionSchema, Field
from genmat.generate import Generator, GeneratorConfig, SamplerConfig
from genmat.nn import UNetConfig
from genmat.regressor import PropertyRegressor
from genmat.train import TrainConfig

SCHEMA = ConditionSchema(fields=(Field("level", "", -1.0, 1.0, "property"),))
UNET = UNetConfig(spatial_dims=1, base_channels=16, channel_mults=(1, 2), embed_dim=32, padding_mode="replicate")


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    level = torch.rand(512, 1, generator=g) * 2 - 1
    x = level[:, :, None].expand(512, 1, 8) + 0.05 * torch.randn(512, 1, 8, generator=g)
    reg = PropertyRegressor(SCHEMA, (1, 8), UNET)
    reg.fit([x, level, torch.ones_like(level)], TrainConfig(steps=400, batch_size=64, lr=3e-3, warmup_steps=10,
                                                            log_every=200), progress=False)
    return x, level, reg


def test_regressor_predicts_clean_and_noisy_levels(toy):
    x, level, reg = toy
    frame = reg.predict_frame(x[:64])
    assert (frame["level"] - level[:64, 0].numpy()).abs().mean() < 0.05
    # at t = 0.5 on rectified flow, x_t = 0.5 x + 0.5 ε: E[level | x_t] is still close to the level
    noisy = 0.5 * x[:64] + 0.5 * torch.randn(64, 1, 8, generator=torch.Generator().manual_seed(1))
    assert (reg.predict(noisy, 0.5)[:, 0] - level[:64, 0]).abs().mean() < 0.25


def test_classifier_guidance_steers_an_unconditional_generator(toy, tmp_path):
    x, level, reg = toy
    gen = Generator(GeneratorConfig(unet=UNET, cond_dropout=0.0), SCHEMA, (1, 8))
    gen.fit([x, level, torch.zeros_like(level)], TrainConfig(steps=400, batch_size=64, lr=3e-3, warmup_steps=10,
                                                             log_every=200), progress=False)
    want = torch.full((256, 1), 0.8)  # normalised level 0.8 (the field's range is [-1, 1])
    none = torch.zeros(256, 1)
    plain = gen.sample(want, none, sampler=SamplerConfig(steps=20), seed=0)
    guided = gen.sample(want, torch.ones(256, 1), sampler=SamplerConfig(steps=20, guidance=0.0, classifier_scale=1.0,
                                                                        classifier_tau=0.05),
                        seed=0, regressor=reg)  # guidance = 0: the generator itself ignores the condition
    assert plain.mean(dim=(1, 2)).std() > 0.4  # unguided: levels all over [-1, 1]
    assert guided.mean(dim=(1, 2)).mean().item() == pytest.approx(0.8, abs=0.1)
    assert guided.mean(dim=(1, 2)).std() < 0.2
    # the checkpoint rebuilds the same regressor
    reg.fit([x, level, torch.ones_like(level)], TrainConfig(steps=1, batch_size=8), checkpoint_path=tmp_path / "r.ckpt",
            progress=False)
    again = PropertyRegressor.from_checkpoint(tmp_path / "r.ckpt")
    torch.testing.assert_close(again.predict(x[:4]), reg.predict(x[:4]))
