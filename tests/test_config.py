"""One configuration system: every settings class is a genmat.config.Config (pydantic),
validated whole, immutable, with errors that name the dotted field, the value and what is
allowed."""

import dataclasses
import importlib
import math
import pkgutil

import pytest

import genmat
from genmat.config import Config, ConfigError
from genmat.errors import InputError
from genmat.generate import GeneratorConfig, SamplerConfig
from genmat.loop.closed_loop import LoopConfig
from genmat.nn import UNetConfig
from genmat.train import TrainConfig

SETTINGS_SUFFIXES = ("Config", "Settings", "Params")
# physics parameters of one oracle, passed as a modality's options (genmat.modalities.base.configured)
PHYSICS_DATACLASSES = {"SpinodalConfig", "GrainModalityConfig", "SpectrumConfig", "CahnHilliardConfig",
                       "GrainConfig", "NoveltyConfig", "XRDConfig", "RamanConfig", "EELSConfig", "EELSModalityConfig"}


def _genmat_classes():
    for info in pkgutil.walk_packages(genmat.__path__, "genmat."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == info.name:
                yield name, obj


def test_every_generator_training_loop_and_step_setting_is_a_config():
    names = {name: cls for name, cls in _genmat_classes()}
    for required in ("UNetConfig", "MLPConfig", "SamplerConfig", "GeneratorConfig", "LatentSettings", "FlowSettings",
                     "GANSettings", "VAESettings", "TrainConfig", "RecipeConfig", "LoopConfig", "TrainParams"):
        assert issubclass(names[required], Config), required
    stray = sorted(n for n, c in names.items() if n.endswith(SETTINGS_SUFFIXES) and dataclasses.is_dataclass(c)
                   and n not in PHYSICS_DATACLASSES)
    assert not stray, f"settings dataclasses outside the configuration system: {stray}"


@pytest.mark.parametrize("cls", [UNetConfig, SamplerConfig, GeneratorConfig, TrainConfig, LoopConfig])
def test_an_unknown_setting_is_refused_naming_the_known_ones(cls):
    with pytest.raises(ConfigError, match="lr_typo is not a known setting; allowed: ") as err:
        cls(lr_typo=1)
    assert err.value.field == "lr_typo"
    assert set(err.value.allowed.split(", ")) == set(cls.model_fields)


def test_a_nested_error_names_the_dotted_field_value_and_range():
    with pytest.raises(ConfigError) as err:
        LoopConfig(generator={"sampler": {"steps": 0}})
    assert (err.value.field, err.value.value, err.value.allowed) == ("generator.sampler.steps", 0, "≥ 1")
    assert str(err.value) == "generator.sampler.steps = 0 is outside the allowed range ≥ 1"
    with pytest.raises(ConfigError, match=r"generator\.unet\.base_chanels is not a known setting; allowed: .*"
                                          r"base_channels"):
        LoopConfig(generator={"unet": {"base_chanels": 8}})
    with pytest.raises(InputError, match=r"^generator\.sampler: sampler method = 'rk9'; allowed: euler") as err:
        LoopConfig(generator={"sampler": {"method": "rk9"}})  # a nested config's own check, behind its path
    assert err.value.field == "generator.sampler.method"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_everywhere(bad):
    for build in (lambda: TrainConfig(lr=bad), lambda: SamplerConfig(guidance=bad),
                  lambda: GeneratorConfig(penalties={"s2": bad}), lambda: LoopConfig(train={"lr": bad}),
                  lambda: LoopConfig(hit_rate_goal=bad)):
        with pytest.raises(ConfigError, match="finite number|outside the allowed range"):
            build()


def test_negative_sizes_are_refused_when_the_config_is_built_not_after_the_oracle_ran():
    with pytest.raises(ConfigError, match="unet.in_channels = -1 is outside the allowed range ≥ 1"):
        GeneratorConfig(unet={"in_channels": -1})
    with pytest.raises(ConfigError, match=r"channel_mults = \(\) is outside the allowed range at least 1 items"):
        UNetConfig(channel_mults=())


def test_configs_are_immutable_and_replace_validates():
    cfg = TrainConfig()
    with pytest.raises(Exception):
        cfg.steps = 3
    assert cfg.replace(steps=3).steps == 3 and cfg.steps == 1500
    with pytest.raises(ConfigError, match="steps = 0"):
        cfg.replace(steps=0)
    g = GeneratorConfig().replace(unet={"base_channels": 8})  # a nested config may be given as a dict
    assert g.unet == UNetConfig(base_channels=8)


def test_to_dict_round_trips_through_plain_values():
    g = GeneratorConfig(method="vae", penalties={}, unet=UNetConfig(channel_mults=(1, 2)),
                        sampler=SamplerConfig(steps=7, physics_max_step=None))
    d = g.to_dict()
    assert d["unet"]["channel_mults"] == (1, 2) and d["sampler"]["physics_max_step"] is None
    assert GeneratorConfig.from_dict(d) == g
    assert GeneratorConfig.from_dict({**d, "unet": {**d["unet"], "channel_mults": [1, 2]}}) == g  # JSON lists
    loop = LoopConfig(n_targets=3)
    assert LoopConfig.model_validate_json(loop.model_dump_json()) == loop
