"""Physics-penalised training: the loss adds exactly the weighted, windowed penalty, the
spinodal terms have their analytic values, and the settings are checked up front."""

import pytest
import torch

from genmat.diffusion import Denoiser, DenoisingLoss, NoisePath
from genmat.generate import Generator, GeneratorConfig
from genmat.modalities.spinodal import SpinodalModality
from genmat.nn import UNet, UNetConfig
from genmat.sim import TwoPhaseMaterial


def _model():
    torch.manual_seed(0)
    net = UNet(UNetConfig(spatial_dims=1, base_channels=8, channel_mults=(1, 2), n_condition_fields=2))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return Denoiser(net, NoisePath("rectified_flow"), "velocity")


def test_the_loss_adds_the_weighted_penalty_where_t_is_below_the_window():
    model = _model()
    x0, values, mask = torch.randn(16, 1, 8), torch.rand(16, 2), torch.ones(16, 2)
    seen = {}

    def penalty(x0_hat, x0_, values_, mask_):
        seen["x0_hat"], seen["mask"] = x0_hat.detach(), mask_
        return {"mean": (x0_hat.flatten(1).mean(1) - 0.5).square(), "unused": torch.ones(len(x0_hat))}

    plain = DenoisingLoss(cond_dropout=0.5)(model, (x0, values, mask), torch.Generator().manual_seed(3))
    penalised = DenoisingLoss(cond_dropout=0.5, penalty=penalty, penalty_weights={"mean": 4.0}, penalty_t_max=0.5)
    total = penalised(model, (x0, values, mask), torch.Generator().manual_seed(3))
    # the same draws: recompute t and x̂0 as the loss did
    g = torch.Generator().manual_seed(3)
    t = DenoisingLoss().sample_t(16, "cpu", g)
    expected = 4.0 * (((seen["x0_hat"].flatten(1).mean(1) - 0.5).square()) * (t <= 0.5)).mean()
    assert 0 < (t <= 0.5).sum() < 16
    torch.testing.assert_close(total - plain, expected, rtol=1e-5, atol=1e-7)
    assert torch.equal(seen["mask"], mask)  # the sample's own mask, not the dropped one


def test_unknown_terms_and_weights_without_a_function_are_errors():
    model = _model()
    batch = (torch.randn(4, 1, 8), torch.rand(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="without a penalty function"):
        DenoisingLoss(penalty_weights={"fraction": 1.0})
    loss = DenoisingLoss(penalty=lambda *a: {"s2": torch.zeros(4)}, penalty_weights={"fraction": 1.0})
    with pytest.raises(ValueError, match="allowed: s2"):
        loss(model, batch)


@pytest.mark.parametrize("bad", [{"fraction": -1.0}, {"fraction": float("nan")}])
def test_generator_config_refuses_bad_weights(bad):
    with pytest.raises(ValueError, match="penalties"):
        GeneratorConfig(penalties=bad)


def test_penalties_need_diffusion_and_a_penalty_function():
    with pytest.raises(ValueError, match="need method 'diffusion'"):
        GeneratorConfig(method="vae", penalties={"fraction": 1.0})
    mod = SpinodalModality(grid=16)
    gen = Generator(GeneratorConfig(unet=UNetConfig(base_channels=8, channel_mults=(1, 2)),
                                    penalties={"fraction": 1.0}), mod.schema, mod.sample_shape, device="cpu")
    data = (torch.randn(4, 1, 16, 16), torch.zeros(4, len(mod.schema)), torch.ones(4, len(mod.schema)))
    from genmat.train import TrainConfig

    with pytest.raises(ValueError, match="physics_penalty"):
        gen.fit(data, TrainConfig(steps=1, batch_size=4), progress=False)
    gen.fit(data, TrainConfig(steps=2, batch_size=4), progress=False, penalty=mod.physics_penalty)
    assert gen.step == 2
    assert GeneratorConfig.from_dict(gen.config.to_dict()).penalties == {"fraction": 1.0}


def _laminate(n=32, phi=0.25):
    """A two-phase laminate at the wells: c = +1 (phase B) on a fraction phi of the columns."""
    c = -torch.ones(1, 1, n, n, dtype=torch.float64)
    c[..., : int(phi * n)] = 1.0
    return c


def test_spinodal_terms_have_their_analytic_values():
    mod = SpinodalModality(grid=32)
    m: TwoPhaseMaterial = mod.config.material
    x0 = _laminate(phi=0.25)
    names = mod.schema.names
    rho = m.rho_A_g_cm3 + 0.25 * (m.rho_B_g_cm3 - m.rho_A_g_cm3)
    values = torch.zeros(1, len(names), dtype=torch.float64)
    values[0, names.index("density_g_cm3")] = mod.schema.field("density_g_cm3").normalise(rho)
    mask = torch.ones_like(values)
    exact = mod.physics_penalty(x0, x0, values, mask)
    assert set(exact) == set(mod.penalty_terms)
    for name, term in exact.items():
        assert term.shape == (1,)
        assert term.item() == pytest.approx(0.0, abs=1e-12), name  # x̂0 = x0 on the wells: nothing to pay
    # a blurred estimate halfway up the barrier: f(±½) = ¼(¼ − 1)² = 9/64 per pixel, f(±1) = 0
    half = mod.physics_penalty(0.5 * x0, x0, values, mask)
    assert half["double_well"].item() == pytest.approx((9 / 64) ** 2, rel=1e-9)
    assert half["fraction"].item() == pytest.approx(0.0, abs=1e-12)  # same phases, same fraction
    # all phase B against a density that says φ = 0.25: (1 − 0.25)²; masked out when density is not given
    ones = torch.ones_like(x0)
    assert mod.physics_penalty(ones, x0, values, mask)["fraction"].item() == pytest.approx(0.75**2, rel=1e-6)
    unknown = mask.clone()
    unknown[0, names.index("density_g_cm3")] = 0
    assert mod.physics_penalty(ones, x0, values, unknown)["fraction"].item() == 0.0
    # S2 of a uniform field is φ² = 1 at every r; the laminate's S2 is its own: the term is their mean square gap
    from genmat.sim import two_point_correlation

    s2_gap = (two_point_correlation((x0 > 0).double()) - 1.0).square().mean().item()
    assert mod.physics_penalty(ones, x0, values, mask)["s2"].item() == pytest.approx(s2_gap, rel=1e-6)


def test_spinodal_penalty_gradients_match_finite_differences():
    mod = SpinodalModality(grid=16)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tanh(3 * torch.randn(2, 1, 16, 16, generator=g, dtype=torch.float64))
    x_hat = (0.7 * x0 + 0.1 * torch.randn(x0.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    values = torch.rand(2, len(mod.schema), generator=g, dtype=torch.float64) * 2 - 1
    mask = torch.ones_like(values)
    total = lambda x: sum(t.sum() for t in mod.physics_penalty(x, x0, values, mask).values())  # noqa: E731
    total(x_hat).backward()
    direction = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    h = 1e-6
    fd = (total(x_hat.detach() + h * direction) - total(x_hat.detach() - h * direction)) / (2 * h)
    assert (x_hat.grad * direction).sum().item() == pytest.approx(fd.item(), rel=1e-5)
