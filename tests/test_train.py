"""The one training loop's per-player parameter groups (used by the GAN): each group's
learning-rate scale and Adam betas are honoured and kept in the checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from genmat.train import TrainConfig, load_checkpoint, train


class TwoPlayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.frozen = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))

    def param_groups(self) -> list[dict]:
        return [{"params": [self.a], "lr_scale": 1.0, "betas": (0.0, 0.99)},
                {"params": [self.b], "lr_scale": 2.0, "betas": (0.0, 0.99)},
                {"params": [self.frozen], "lr_scale": 0.0}]


def test_each_group_moves_at_its_own_learning_rate(tmp_path):
    model = TwoPlayers()
    loss = lambda m, batch, gen: -(m.a + m.b + m.frozen).sum()  # noqa: E731 - constant gradient −1 on each
    cfg = TrainConfig(steps=1, batch_size=1, lr=0.1, warmup_steps=1, ema_decay=0.0, grad_clip=0.0)
    _, _ = train(model, loss, [torch.zeros(4, 1)], cfg, model_args={}, checkpoint_path=tmp_path / "m.ckpt",
                 progress=False)
    # Adam's first step moves every parameter by lr (its update is g / |g|) — times the group's scale
    assert abs(model.a.item() - 0.1) < 1e-6
    assert abs(model.b.item() - 0.2) < 1e-6
    assert model.frozen.item() == 0.0
    groups = load_checkpoint(tmp_path / "m.ckpt")["optimizer"]["param_groups"]
    assert [g["betas"] for g in groups[:2]] == [(0.0, 0.99), (0.0, 0.99)] and groups[2]["betas"] == (0.9, 0.999)
