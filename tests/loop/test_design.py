"""design() on a case with a known answer: a generator that returns, for each target,
the very micrograph whose simulated properties define the target must hit every
target; one that returns a micrograph of another composition must miss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.loop.design import design
from genmat.loop.screening import PropertySurrogate
from genmat.modalities import SpinodalModality


class ReplayGenerator:
    """Stands in for a trained generator: candidates are given micrographs."""

    def __init__(self, samples: torch.Tensor) -> None:
        self.samples = samples

    def sample_conditions(self, conditions, *, n_per_condition=1, **_):
        return self.samples.repeat_interleave(n_per_condition, dim=0)


@pytest.fixture(scope="module")
def world():
    mod = SpinodalModality(grid=32)
    processing = pd.DataFrame({"x_B": [0.40, 0.50, 0.60], "temperature_K": [800.0] * 3, "time_s": [3600.0] * 3})
    samples, rows = mod.simulate(processing, seed=11)
    train_proc = mod.draw_processing(64, np.random.default_rng(0))
    train, train_rows = mod.simulate(train_proc, seed=12)
    surrogate = PropertySurrogate.fit(mod.screening_features(train), train_rows[list(mod.target_fields)].to_numpy(),
                                      mod.target_fields)
    return mod, samples, rows, train, surrogate


def test_exact_micrographs_hit_every_target(world):
    mod, samples, rows, train, surrogate = world
    targets = rows[list(mod.target_fields)]
    result = design(ReplayGenerator(samples), mod, targets, n_candidates=2, n_simulate=1, surrogate=surrogate,
                    training_samples=train)
    assert result.designs["hit"].all(), result.designs[["reason"]]
    assert result.metrics["hit_rate"] == 1.0
    assert result.metrics["simulator_calls"] == 3  # one per target: the rest were screened out
    np.testing.assert_allclose(result.designs["sim_E_GPa"], targets["E_GPa"], rtol=1e-4)
    assert set(result.report["verdict"]) <= {"hit", "unscreened"}


def test_wrong_composition_misses_with_a_reason(world):
    mod, samples, rows, train, surrogate = world
    targets = rows[list(mod.target_fields)]
    shuffled = samples[torch.tensor([2, 0, 1])]  # each target gets another target's micrograph
    result = design(ReplayGenerator(shuffled), mod, targets, n_candidates=1, n_simulate=1, surrogate=surrogate,
                    training_samples=train)
    assert not result.designs["hit"].any()
    assert result.metrics["hit_rate"] == 0.0
    assert all(isinstance(r, str) and r for r in result.designs["reason"])


def test_surrogate_recovers_density_exactly(world):
    mod, samples, rows, train, surrogate = world
    pred = surrogate.predict(mod.screening_features(samples))
    np.testing.assert_allclose(pred[:, 1], rows["density_g_cm3"], rtol=1e-6)  # density is linear in φ
    assert surrogate.rmse[1] < 1e-6


def test_spectra_from_the_oracle_hit_and_fractions_are_measured():
    """XRD: a generator that replays the oracle's spectra of the targets hits (every
    candidate is checked); one that swaps the targets' spectra misses on fractions; a
    target giving only one fraction is checked on that fraction alone."""
    from genmat.modalities import get_modality

    mod = get_modality("xrd")
    targets = pd.DataFrame({"frac_anatase": [0.7, 0.0], "frac_rutile": [0.3, 0.2], "frac_ZnO": [0.0, 0.8],
                            "size_nm": [10.0, 20.0], "strain": [0.001, 0.0], "temperature_K": [400.0, 800.0]})
    samples, _ = mod.simulate(targets, seed=3)
    train, _ = mod.simulate(mod.draw_processing(16, np.random.default_rng(0)), seed=4)
    result = design(ReplayGenerator(samples), mod, targets, n_candidates=2, n_simulate=2, training_samples=train)
    assert result.metrics["candidate_hit_rate"] == 1.0 and result.metrics["hit_rate"] == 1.0
    assert result.metrics["fraction_mae_hits"] < 0.01
    swapped = design(ReplayGenerator(samples.flip(0)), mod, targets, n_candidates=1, n_simulate=1)
    assert swapped.metrics["candidate_hit_rate"] == 0.0  # a ZnO-rich pattern for a ZnO-free target, and back
    assert (swapped.report["verdict"] == "invalid").all()
    assert swapped.report["reason"].str.contains("no allowed line|spurious").all()
    mixed = targets.assign(frac_anatase=[0.3, 0.0], frac_rutile=[0.7, 0.2])  # same phases, other amounts
    miss = design(ReplayGenerator(samples[:1]), mod, mixed.iloc[:1], n_candidates=1, n_simulate=1)
    assert miss.report["verdict"][0] == "miss" and miss.metrics["fraction_mae"] == pytest.approx(0.4 * 2 / 3, abs=0.02)
    partial = design(ReplayGenerator(samples[:1]), mod, targets[["frac_anatase"]].iloc[:1], n_candidates=1,
                     n_simulate=1)
    assert partial.metrics["candidate_hit_rate"] == 1.0
    assert partial.report["sim_frac_anatase"][0] == pytest.approx(0.7, abs=0.02)


def test_a_normalizing_flow_scores_candidates_out_of_distribution(world):
    """The flow's likelihood goes into the report as a score: a candidate that is pure
    noise is far less likely under a flow trained on the data than the data itself."""
    from genmat.generate import FlowSettings, Generator, GeneratorConfig
    from genmat.nn import UNetConfig
    from genmat.train import TrainConfig

    mod, samples, rows, train, surrogate = world
    flow = Generator(GeneratorConfig(method="normalizing_flow", unet=UNetConfig(embed_dim=16),
                                     flow=FlowSettings(levels=2, steps=2, hidden=8)), mod.schema, mod.sample_shape)
    values, mask = mod.schema.encode(pd.DataFrame(index=range(len(train))))
    flow.fit([train, values, mask], TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, log_every=30),
             progress=False)
    noise = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    candidates = torch.cat([samples, noise])
    targets = rows[list(mod.target_fields)]
    result = design(ReplayGenerator(candidates), mod, pd.concat([targets, targets]), n_candidates=1, n_simulate=1,
                    surrogate=surrogate, training_samples=train, ood_flow=flow)
    nll = result.report["flow_nll"].to_numpy()
    assert {"flow_nll", "flow_pvalue", "flow_in_distribution"} <= set(result.report.columns)
    assert nll[3:].min() > nll[:3].max()  # noise is less likely than simulated micrographs
    assert not result.report["flow_in_distribution"][3:].any()


def test_design_step_is_done_only_for_the_same_parameters_model_and_targets(tmp_path, monkeypatch):
    import os

    from genmat.generate import Generator, GeneratorConfig, SamplerConfig
    from genmat.loop.steps import DesignParams, design_step
    from genmat.nn import UNetConfig
    from genmat.train import TrainConfig

    mod = SpinodalModality(grid=16)
    gen = Generator(GeneratorConfig(unet=UNetConfig(base_channels=8, channel_mults=(1, 2), embed_dim=32),
                                    sampler=SamplerConfig(steps=1, method="euler")), mod.schema, mod.sample_shape)
    data = [torch.zeros(4, 1, 16, 16), torch.zeros(4, 6), torch.ones(4, 6)]
    gen.fit(data, TrainConfig(steps=1, batch_size=4, warmup_steps=1), checkpoint_path=tmp_path / "m.ckpt", progress=False)
    pd.DataFrame({"E_GPa": [150.0], "density_g_cm3": [2.95]}).to_parquet(tmp_path / "targets.parquet")
    monkeypatch.chdir(tmp_path)
    p = DesignParams(modality="spinodal", modality_options={"grid": 16}, dataset=tmp_path / "none",
                     checkpoint=Path("m.ckpt"), targets_file=Path("targets.parquet"), out_dir=Path("d"),
                     n_candidates=2, n_simulate=1)
    first = design_step(p, progress=False)
    assert first["candidates"] == 2
    stamp = os.stat(tmp_path / "d" / "metrics.json").st_mtime_ns
    spelled = p.replace(checkpoint=tmp_path / "m.ckpt", targets_file=tmp_path / "targets.parquet",
                        out_dir=tmp_path / "d")
    assert design_step(spelled, progress=False) == first  # the same work, spelled from elsewhere: read back
    assert os.stat(tmp_path / "d" / "metrics.json").st_mtime_ns == stamp
    assert design_step(p.replace(n_candidates=3), progress=False)["candidates"] == 3  # redone
    pd.DataFrame({"E_GPa": [150.0, 200.0], "density_g_cm3": [2.95, 3.0]}).to_parquet(tmp_path / "targets.parquet")
    assert design_step(p.replace(n_candidates=3), progress=False)["targets"] == 2  # new targets: redone


class RecordingGenerator(ReplayGenerator):
    """Replays micrographs and records the sampler and physics misfit design() hands over."""

    config = None

    def sample_conditions(self, conditions, *, n_per_condition=1, sampler=None, physics=None, **_):
        self.sampler, self.physics = sampler, physics
        return super().sample_conditions(conditions, n_per_condition=n_per_condition)


def test_physics_guidance_is_on_with_an_explicit_sampler(world):
    """A regression: ``design(sampler=…, physics_guidance=s)`` (what genmat.design and the CLI
    pass) once kept the sampler's physics_scale of 0, so guidance was silently off."""
    from genmat.generate import SamplerConfig

    mod, samples, rows, train, surrogate = world
    gen = RecordingGenerator(samples)
    design(gen, mod, rows[list(mod.target_fields)], n_candidates=1, n_simulate=1, training_samples=train,
           sampler=SamplerConfig(steps=4, guidance=1.5), physics_guidance=30.0)
    assert gen.sampler.physics_scale == 30.0 and gen.sampler.steps == 4 and gen.sampler.guidance == 1.5
    assert gen.physics is not None
