import pytest
import torch

from genmat.diffusion import Denoiser, DenoisingLoss, NoisePath, classifier_free
from genmat.diffusion.losses import drop_fields
from genmat.nn import UNet, UNetConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = UNet(UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1, 2), n_condition_fields=3))
    for p in net.parameters():  # a non-trivial net (the head is zero-initialised)
        torch.nn.init.normal_(p, std=0.1)
    return Denoiser(net, NoisePath("vp_cosine"), "eps").eval()


def test_cfg_scale_one_equals_conditional(model):
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 1, 16, generator=g), torch.rand(4, generator=g)
    v, m = torch.rand(4, 3, generator=g) * 2 - 1, torch.tensor([[1.0, 0, 1]] * 4)
    x0_c, eps_c = model.predict(x, t, v * m, m)
    x0_w, eps_w = classifier_free(model, v, m, 1.0)(x, t)
    torch.testing.assert_close(x0_w, x0_c)
    # the batched two-branch path with w = 1 (forced) gives the same answer
    x0_b, _ = classifier_free(model, v, m, 1.0 + 1e-12)(x, t)
    torch.testing.assert_close(x0_b, x0_c, rtol=1e-4, atol=1e-4)


def test_cfg_extrapolates_linearly(model):
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 1, 16, generator=g), torch.rand(2, generator=g)
    v, m = torch.rand(2, 3, generator=g), torch.ones(2, 3)
    cond = model.predict(x, t, v, m)[0]
    uncond = model.predict(x, t, torch.zeros_like(v), torch.zeros_like(m))[0]
    guided = classifier_free(model, v, m, 3.0)(x, t)[0]
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), rtol=1e-4, atol=1e-4)


def test_fields_dropped_independently():
    g = torch.Generator().manual_seed(0)
    kept = drop_fields(torch.ones(20_000, 3), 0.1, g)
    assert kept.mean(0).tolist() == pytest.approx([0.9] * 3, abs=0.01)
    # independence: both of two fields dropped ≈ 0.01
    assert ((kept[:, 0] == 0) & (kept[:, 1] == 0)).float().mean().item() == pytest.approx(0.01, abs=0.004)


def test_loss_is_zero_for_the_exact_target():
    class Oracle(torch.nn.Module):  # returns the true target by peeking at a stash
        def forward(self, x, t, values=None, mask=None):
            return self.out

    model = Denoiser(Oracle(), NoisePath("rectified_flow"), "velocity")
    loss = DenoisingLoss(cond_dropout=0.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x0 = torch.randn(8, 1, 4)
    t = loss.sample_t(8, "cpu", g1)
    eps = torch.randn(x0.shape, generator=g1)
    model.net.out = model.target(x0, eps, t)  # velocity = ε − x0
    torch.testing.assert_close(model.net.out, eps - x0)
    assert loss(model, (x0, torch.zeros(8, 1), torch.zeros(8, 1)), g2).item() == pytest.approx(0.0, abs=1e-10)


def test_loss_rejects_bad_settings():
    with pytest.raises(ValueError, match="cond_dropout"):
        DenoisingLoss(cond_dropout=1.5)
