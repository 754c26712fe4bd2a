import pytest
import torch

from genmat.nn import ConditionEmbedding, UNet, UNetConfig


@pytest.mark.parametrize("dims,shape", [(1, (2, 1, 64)), (2, (2, 1, 16, 16))])
def test_one_unet_for_1d_and_2d(dims, shape):
    net = UNet(UNetConfig(spatial_dims=dims, base_channels=8, channel_mults=(1, 2), n_condition_fields=2))
    out = net(torch.randn(shape), torch.rand(2), torch.zeros(2, 2), torch.ones(2, 2))
    assert out.shape == shape


def test_circular_padding_is_translation_equivariant():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2)))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([0.3])
    shifted = net(torch.roll(x, (4, 6), (2, 3)), t)
    torch.testing.assert_close(shifted, torch.roll(net(x, t), (4, 6), (2, 3)), rtol=1e-4, atol=1e-5)


def test_condition_embedding_separates_nearby_values_and_masks():
    torch.manual_seed(0)
    emb = ConditionEmbedding(2, 64)
    a = emb(torch.tensor([[0.50, 0.0]]), torch.tensor([[1.0, 1.0]]))
    b = emb(torch.tensor([[0.52, 0.0]]), torch.tensor([[1.0, 1.0]]))
    missing = emb(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    given_zero = emb(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    scale = a.norm().item()
    assert (a - b).norm().item() > 0.01 * scale
    assert (missing - given_zero).norm().item() > 0.01 * scale


def test_bad_config_and_shapes_raise():
    with pytest.raises(ValueError, match="spatial_dims"):
        UNetConfig(spatial_dims=3)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2, 2)))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 1, 18, 18), torch.rand(1))


def test_subset_masks_make_every_subset_size_equally_common_and_keep_unconditional_rows():
    import torch

    from genmat.nn.embeddings import drop_fields

    g = torch.Generator().manual_seed(0)
    mask = torch.ones(60_000, 6)
    mask[:10_000, 5] = 0  # rows where one field was never given
    out = drop_fields(mask, 0.1, g, scheme="subsets")
    assert (out <= mask).all()  # never adds a field
    kept = out[10_000:].sum(1)
    assert (kept == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)  # CFG's unconditional branch
    sizes = torch.bincount(kept.long(), minlength=7)[1:].float() / (kept > 0).sum()
    torch.testing.assert_close(sizes, torch.full((6,), 1 / 6), atol=0.01, rtol=0)  # k uniform on 1..6
    only_two = ((out[10_000:, 3] == 1) & (out[10_000:, 4] == 1) & (kept == 2)).float().mean().item()
    assert only_two == pytest.approx(0.9 / 6 / 15, rel=0.25)  # one particular 2-of-6 subset: ≈ 1 %
    independent = drop_fields(mask[10_000:], 0.1, g, scheme="independent")
    two = ((independent[:, 3] == 1) & (independent[:, 4] == 1) & (independent.sum(1) == 2)).float().mean().item()
    assert two < 1e-3  # what the old scheme gave the design's (E, ρ) mask
    with pytest.raises(ValueError, match="allowed: subsets, independent"):
        drop_fields(mask, 0.1, g, scheme="bernoulli")
