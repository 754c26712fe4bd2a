"""A teacher with a known answer, shared by the few-step tests (reflow, distillation):
a rectified flow trained on two modes, flat lines at −1 and +1 (unconditional)."""

from __future__ import annotations

import copy

import pytest
import torch

from genmat.conditions import ConditionSchema, Field
from genmat.generate import Generator, GeneratorConfig
from genmat.nn import UNetConfig
from genmat.train import TrainConfig

SCHEMA = ConditionSchema(fields=(Field("c", "", -1.0, 1.0, "processing"),))


@pytest.fixture(scope="session")
def _two_mode_teacher():
    g = torch.Generator().manual_seed(0)
    sign = torch.where(torch.rand(512, generator=g) < 0.5, -1.0, 1.0)
    data = [sign[:, None, None].expand(512, 1, 8).clone(), torch.zeros(512, 1), torch.zeros(512, 1)]
    cfg = GeneratorConfig(unet=UNetConfig(spatial_dims=1, base_channels=16, channel_mults=(1, 2), embed_dim=32,
                                          padding_mode="replicate"), cond_dropout=0.0)
    teacher = Generator(cfg, SCHEMA, (1, 8))
    teacher.fit(data, TrainConfig(steps=400, batch_size=64, lr=3e-3, warmup_steps=10, log_every=200), progress=False)
    return teacher, data


@pytest.fixture
def two_mode_teacher(_two_mode_teacher):
    """(a fresh copy of the trained teacher, its data)."""
    teacher, data = _two_mode_teacher
    return copy.deepcopy(teacher), data
