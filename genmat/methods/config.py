"""The settings of a generator: which family (``method``), its network and its sampler."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

from genmat.diffusion.paths import KINDS
from genmat.diffusion.precond import PREDICTIONS
from genmat.diffusion.samplers import SAMPLERS
from genmat.errors import InputError
from genmat.nn import UNetConfig
from genmat.nn.embeddings import MASK_SCHEMES
from genmat.vae import VAESettings

METHOD_NAMES = ("diffusion", "vae", "latent_diffusion", "normalizing_flow", "gan")


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 20  # solver steps (Heun: 2·steps − 1 network evaluations)
    method: str = "heun"  # "euler" | "heun" | "ddim" | "ddpm" | "dpmpp_2m"
    # Classifier-free guidance scale w (1 = plain conditional). Measured on the demo (iteration-0
    # model, 12 held-out targets, 16 candidates each): w = 1.0 / 1.5 / 2.0 gave hit rates
    # 100 % / 92 % / 42 % — larger w pushes the volume fraction past extreme targets.
    guidance: float = 1.0
    eta: float = 0.0  # DDIM stochasticity
    # Classifier guidance from a noise-aware PropertyRegressor (Generator.sample(regressor=...)):
    # scale s (0 = off) and the likelihood width τ in normalised field units.
    classifier_scale: float = 0.0
    classifier_tau: float = 0.1
    # Physics guidance through the modality's differentiable physics model
    # (Generator.sample(physics=...)): scale s (0 = off), applied while
    # physics_t_min <= t <= physics_t_max, each correction's RMS capped at physics_max_step
    # (data units). Measured (docs/physics_guidance.md): guiding the last steps too (t_min 0)
    # or without the cap leaves pixels outside the wells and high-frequency artefacts that the
    # physics checks reject; with t_min 0.1 and the cap 0.2 the unguided last steps clean up.
    physics_scale: float = 0.0
    physics_t_max: float = 1.0
    physics_t_min: float = 0.1
    physics_max_step: float | None = 0.2

    def __post_init__(self) -> None:
        if self.method not in SAMPLERS:
            raise InputError(f"sampler method = {self.method!r}; allowed: {', '.join(SAMPLERS)}")
        if int(self.steps) < 1:
            raise InputError(f"sampler steps = {self.steps} is outside the allowed range [1, ∞)")
        if self.guidance < 0 or self.classifier_scale < 0 or self.physics_scale < 0:
            raise InputError(f"sampler guidance = {self.guidance}, classifier_scale = {self.classifier_scale}, "
                             f"physics_scale = {self.physics_scale}: the allowed range is [0, ∞)")
        if not 0 <= self.physics_t_min < self.physics_t_max <= 1:
            raise InputError(f"sampler physics_t_min = {self.physics_t_min}, physics_t_max = {self.physics_t_max}: "
                             "the allowed range is 0 <= physics_t_min < physics_t_max <= 1")
        if self.physics_max_step is not None and not self.physics_max_step > 0:
            raise InputError(f"sampler physics_max_step = {self.physics_max_step} is outside the allowed range (0, ∞)")
        if not 0 <= self.eta <= 1:
            raise InputError(f"sampler eta = {self.eta} is outside the allowed range [0, 1]")
        if not self.classifier_tau > 0:
            raise InputError(f"sampler classifier_tau = {self.classifier_tau} is outside the allowed range (0, ∞)")


@dataclass(frozen=True)
class LatentSettings:
    """Latent diffusion: the share of training steps spent on the autoencoder (stage 1)
    and the latent U-Net's levels (the latent is already 2^(L−1) times smaller)."""

    vae_fraction: float = 0.5
    channel_mults: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if not 0 < self.vae_fraction < 1:
            raise InputError(f"latent.vae_fraction = {self.vae_fraction} is outside the allowed range (0, 1)")
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))


@dataclass(frozen=True)
class FlowSettings:
    """Normalizing flow: ``levels`` squeeze stages of ``steps`` affine couplings with
    ``hidden`` channels; samples are drawn at ``temperature`` (z ~ N(0, T² I))."""

    levels: int = 2
    steps: int = 4
    hidden: int = 32
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.levels < 1 or self.steps < 1 or self.hidden < 1 or not self.temperature > 0:
            raise InputError("flow: levels, steps, hidden must be ≥ 1 and temperature > 0")


@dataclass(frozen=True)
class GANSettings:
    """Conditional GAN: the generator's spatial latent channels, the R1 penalty γ on real
    samples, the weight of the matching-aware term (real samples with shuffled conditions
    count as fake), the discriminator's learning-rate scale (two-time-scale update) and
    both players' Adam betas."""

    latent_channels: int = 4
    r1_gamma: float = 1.0
    mismatch: float = 1.0
    d_lr_scale: float = 2.0
    betas: tuple[float, float] = (0.0, 0.99)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.latent_channels < 1 or self.r1_gamma < 0 or self.mismatch < 0 or not self.d_lr_scale > 0:
            raise InputError("gan: latent_channels ≥ 1, r1_gamma ≥ 0, mismatch ≥ 0 and d_lr_scale > 0 are required")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InputError(f"gan.betas = {self.betas} is outside the allowed range: two values in [0, 1)")


@dataclass(frozen=True)
class GeneratorConfig:
    # "diffusion": the U-Net denoiser on a noise path (rectified flow / VP, any prediction);
    # "vae": a conditional VAE of the same blocks (``unet`` sizes it, ``vae`` sets its ELBO);
    # "latent_diffusion": that VAE first, then diffusion on its latents (``latent``);
    # "normalizing_flow": a conditional RealNVP-style flow with an exact likelihood (``flow``);
    # "gan": a conditional GAN, the VAE decoder against a projection discriminator (``gan``).
    method: str = "diffusion"
    unet: UNetConfig = field(default_factory=UNetConfig)
    path: str = "rectified_flow"  # "rectified_flow" | "vp_linear" | "vp_cosine"
    prediction: str = "velocity"  # "velocity" | "eps" | "x0" | "v"
    sigma_data: float = 0.9  # std of the training data (spinodal order parameter ≈ ±1)
    cond_dropout: float = 0.1  # drop probability for classifier-free guidance (per field, or of all fields)
    # which condition subsets training shows (genmat.nn.embeddings.drop_fields): "subsets" draws the
    # number of given fields uniformly, so "only E and density" is as common as "everything";
    # "independent" drops each field with cond_dropout (rare small subsets)
    cond_masks: str = "subsets"
    t_sampling: str = "uniform"
    # physics-penalised training (diffusion only): weight per term of the modality's
    # physics_penalty (spinodal: "double_well", "fraction", "s2"), applied to x̂0 where
    # t <= penalty_t_max (genmat.diffusion.DenoisingLoss); {} trains on the data alone
    penalties: dict[str, float] = field(default_factory=dict)
    penalty_t_max: float = 0.3
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    vae: VAESettings = field(default_factory=VAESettings)
    latent: LatentSettings = field(default_factory=LatentSettings)
    flow: FlowSettings = field(default_factory=FlowSettings)
    gan: GANSettings = field(default_factory=GANSettings)

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise InputError(f"generator method = {self.method!r}; allowed: {', '.join(METHOD_NAMES)}")
        if self.path not in KINDS:
            raise InputError(f"generator path = {self.path!r}; allowed: {', '.join(KINDS)}")
        if self.cond_masks not in MASK_SCHEMES:
            raise InputError(f"generator cond_masks = {self.cond_masks!r}; allowed: {', '.join(MASK_SCHEMES)}")
        if self.prediction not in PREDICTIONS:
            raise InputError(f"generator prediction = {self.prediction!r}; allowed: {', '.join(PREDICTIONS)}")
        object.__setattr__(self, "penalties", {str(k): float(v) for k, v in dict(self.penalties).items()})
        for name, weight in self.penalties.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise InputError(f"generator penalties[{name!r}] = {weight} is outside the allowed range [0, ∞)")
        if self.penalties and self.method != "diffusion":
            raise InputError(f"generator penalties {self.penalties} need method 'diffusion' (got {self.method!r}): "
                             "they score the denoised estimate x̂0 of a noisy sample")
        if not 0 < self.penalty_t_max <= 1:
            raise InputError(f"generator penalty_t_max = {self.penalty_t_max} is outside the allowed range (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "GeneratorConfig":
        d = dict(d)
        unet = d.pop("unet", {})
        unet = UNetConfig(**{**unet, "channel_mults": tuple(unet.get("channel_mults", (1, 2, 2)))})
        return cls(unet=unet, sampler=SamplerConfig(**d.pop("sampler", {})), vae=VAESettings(**d.pop("vae", {})),
                   latent=LatentSettings(**d.pop("latent", {})), flow=FlowSettings(**d.pop("flow", {})),
                   gan=GANSettings(**d.pop("gan", {})), **d)
