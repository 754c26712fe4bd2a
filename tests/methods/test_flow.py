"""The normalizing flow: exact invertibility, a log-determinant equal to the brute-force
Jacobian's, the entropy of Gaussian data learnt to within a few hundredths of a nat,
samples that follow the condition, and the likelihood as an out-of-distribution score."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionSchema, Field
from genmat.generate import FlowSettings, Generator, GeneratorConfig, SamplerConfig
from genmat.methods import ood_scores
from genmat.nn import UNetConfig
from genmat.nn.flow_nets import ConditionalFlow, squeeze, unsqueeze
from genmat.train import TrainConfig


@pytest.mark.parametrize("shape,dims", [((2, 1, 8, 8), 2), ((2, 1, 16), 1)])
def test_flow_is_invertible_with_the_exact_log_determinant(shape, dims):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(unsqueeze(squeeze(x)), x)
    flow = ConditionalFlow(UNetConfig(spatial_dims=dims, n_condition_fields=2, embed_dim=16), levels=2, steps=2,
                           hidden=8)
    torch.manual_seed(1)
    for p in flow.parameters():  # away from the identity it starts at
        torch.nn.init.normal_(p, std=0.1)
    v, m = torch.randn(2, 2), torch.ones(2, 2)
    z, logdet = flow(x, v, m)
    torch.testing.assert_close(flow.inverse(z, v, m), x, atol=1e-5, rtol=0)
    jac = torch.autograd.functional.jacobian(lambda a: flow(a.reshape(1, *shape[1:]), v[:1], m[:1])[0].reshape(-1),
                                             x[:1].reshape(-1))
    assert torch.slogdet(jac)[1].item() == pytest.approx(logdet[0].item(), abs=1e-4)


SCHEMA = ConditionSchema(fields=(Field("level", "", -1.0, 1.0, "processing"),))
UNET = UNetConfig(spatial_dims=1, base_channels=8, embed_dim=16, padding_mode="replicate", groups=4)


def _flow(tmp_path=None):
    return Generator(GeneratorConfig(method="normalizing_flow", unet=UNET, flow=FlowSettings(levels=2, steps=4, hidden=16),
                                     sampler=SamplerConfig(steps=1)), SCHEMA, (1, 16))


def test_flow_learns_the_entropy_of_gaussian_data_and_scores_outliers(tmp_path):
    g = torch.Generator().manual_seed(0)
    mu, s = 0.5, 0.3
    x = mu + s * torch.randn(2048, 1, 16, generator=g)
    none = torch.zeros(2048, 1)
    gen = _flow()
    gen.fit([x, none, none], TrainConfig(steps=600, batch_size=128, lr=3e-3, warmup_steps=10, log_every=200),
            checkpoint_path=tmp_path / "flow.ckpt", progress=False)
    from genmat.methods.flow import nll_per_value

    held_out = mu + s * torch.randn(512, 1, 16, generator=g)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s**2)  # nats per value of N(μ, s²)
    assert nll_per_value(gen.model, held_out).mean() == pytest.approx(entropy, abs=0.05)
    samples = gen.sample(torch.zeros(4096, 1), torch.zeros(4096, 1), seed=1)
    assert samples.mean().item() == pytest.approx(mu, abs=0.03) and samples.std().item() == pytest.approx(s, rel=0.1)
    far = held_out + 1.0
    scores = ood_scores(gen.model, torch.cat([held_out[:256], far[:256]]), held_out[256:])
    assert scores["flow_pvalue"][:256].mean() == pytest.approx(0.5, abs=0.1)  # in distribution: uniform p-values
    assert scores["flow_pvalue"][256:].max() < 0.01 and not scores["flow_in_distribution"][256:].any()
    again = Generator.from_checkpoint(tmp_path / "flow.ckpt")
    torch.testing.assert_close(again.sample(torch.zeros(4, 1), torch.zeros(4, 1), seed=2),
                               gen.sample(torch.zeros(4, 1), torch.zeros(4, 1), seed=2))


def test_conditional_flow_follows_its_condition():
    g = torch.Generator().manual_seed(1)
    c = torch.rand(1024, 1, generator=g) * 2 - 1
    x = c[:, :, None].expand(1024, 1, 16) + 0.05 * torch.randn(1024, 1, 16, generator=g)
    gen = _flow()
    gen.fit([x, c, torch.ones_like(c)], TrainConfig(steps=600, batch_size=128, lr=3e-3, warmup_steps=10,
                                                     log_every=200), progress=False)
    out = gen.sample_conditions(pd.DataFrame({"level": [0.8, -0.8]}), n_per_condition=64, seed=0)
    assert out[:64].mean().item() == pytest.approx(0.8, abs=0.15)
    assert out[64:].mean().item() == pytest.approx(-0.8, abs=0.15)
