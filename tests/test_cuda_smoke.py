"""The CUDA smoke test: run on the device machine beside `make bench-gpu`
(`pytest -q tests/test_cuda_smoke.py`). Every family trains (its objective draws noise from a
CPU generator and moves it to the GPU) and samples on CUDA; the oracle on CUDA agrees with
the CPU. The same checks run on the CPU everywhere, so the test body itself is exercised;
the CUDA cases are skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                    reason="needs a CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["diffusion", "vae", "normalizing_flow", "gan"])
def test_every_family_trains_and_samples_on_the_device(method, device, tmp_path):
    from genmat.generate import Generator, GeneratorConfig, SamplerConfig
    from genmat.modalities import get_modality
    from genmat.nn import UNetConfig
    from genmat.train import TrainConfig

    modality = get_modality("spinodal", grid=16)
    config = GeneratorConfig(method=method, unet=UNetConfig(base_channels=8, channel_mults=(1, 2), embed_dim=16),
                             sampler=SamplerConfig(steps=4, method="heun"))
    gen = Generator(config, modality.schema, modality.sample_shape, device=device, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, *modality.sample_shape, generator=g) * 2 - 1
    values = torch.rand(16, len(modality.schema), generator=g) * 2 - 1
    mask = torch.ones_like(values)
    result = gen.fit((x, values, mask), TrainConfig(steps=4, batch_size=8, warmup_steps=1, log_every=1),
                     checkpoint_path=tmp_path / "m.ckpt", progress=False)
    assert gen.device.type == device and len(result.losses) == 4
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in result.losses)
    samples = gen.sample(values[:4], mask[:4], seed=1)
    assert samples.shape == (4, *modality.sample_shape) and samples.device.type == "cpu"
    assert torch.isfinite(samples).all()


@pytest.mark.parametrize("device", DEVICES)
def test_the_oracle_on_the_device_agrees_with_the_cpu(device):
    from genmat.sim import CahnHilliardConfig, micrograph_properties, simulate_spinodal

    cfg = CahnHilliardConfig(grid=32, kappa=0.5)
    props = {}
    for where in ("cpu", device):
        c = simulate_spinodal(torch.full((8,), 0.5, dtype=torch.float64), 825.0, 3600.0, cfg, seed=0, device=where)
        props[where] = {k: v.double().cpu() for k, v in micrograph_properties(c).items()}
    # the initial noise is drawn on each device's own generator: compare the batch's statistics
    for key, rtol in (("volume_fraction", 0.1), ("E_GPa", 0.05), ("density_g_cm3", 0.02)):
        assert torch.allclose(props[device][key].mean(), props["cpu"][key].mean(), rtol=rtol), key
