"""The settings of a generator: which family (``method``), its network and its sampler."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field, model_validator

from genmat.config import Config
from genmat.diffusion.paths import KINDS
from genmat.diffusion.precond import PREDICTIONS
from genmat.diffusion.samplers import SAMPLERS
from genmat.errors import InputError
from genmat.nn import UNetConfig
from genmat.nn.embeddings import MASK_SCHEMES
from genmat.vae import VAESettings

Beta = Annotated[float, Field(ge=0, lt=1)]  # an Adam beta

METHOD_NAMES = ("diffusion", "vae", "latent_diffusion", "normalizing_flow", "gan")


class SamplerConfig(Config):
    steps: int = Field(20, ge=1)  # solver steps (Heun: 2·steps − 1 network evaluations)
    method: str = "heun"  # "euler" | "heun" | "ddim" | "ddpm" | "dpmpp_2m"
    # Classifier-free guidance scale w (1 = plain conditional). Measured on the demo (iteration-0
    # model, 12 held-out targets, 16 candidates each): w = 1.0 / 1.5 / 2.0 gave hit rates
    # 100 % / 92 % / 42 % — larger w pushes the volume fraction past extreme targets.
    guidance: float = Field(1.0, ge=0)
    eta: float = Field(0.0, ge=0, le=1)  # DDIM stochasticity
    # Classifier guidance from a noise-aware PropertyRegressor (Generator.sample(regressor=...)):
    # scale s (0 = off) and the likelihood width τ in normalised field units.
    classifier_scale: float = Field(0.0, ge=0)
    classifier_tau: float = Field(0.1, gt=0)
    # Physics guidance through the modality's differentiable physics model
    # (Generator.sample(physics=...)): scale s (0 = off), applied while
    # physics_t_min <= t <= physics_t_max, each correction's RMS capped at physics_max_step
    # (data units). Measured (docs/physics_guidance.md): guiding the last steps too (t_min 0)
    # or without the cap leaves pixels outside the wells and high-frequency artefacts that the
    # physics checks reject; with t_min 0.1 and the cap 0.2 the unguided last steps clean up.
    physics_scale: float = Field(0.0, ge=0)
    physics_t_max: float = Field(1.0, le=1)
    physics_t_min: float = Field(0.1, ge=0)
    physics_max_step: Optional[float] = Field(0.2, gt=0)

    @model_validator(mode="after")
    def _check(self):
        if self.method not in SAMPLERS:
            raise InputError(f"sampler method = {self.method!r}; allowed: {', '.join(SAMPLERS)}", field="method",
                             value=self.method, allowed=", ".join(SAMPLERS))
        if not self.physics_t_min < self.physics_t_max:
            raise InputError(f"sampler physics_t_min = {self.physics_t_min}, physics_t_max = {self.physics_t_max}: "
                             "the allowed range is 0 <= physics_t_min < physics_t_max <= 1", field="physics_t_min",
                             value=self.physics_t_min, allowed=f"[0, physics_t_max = {self.physics_t_max})")
        return self


class LatentSettings(Config):
    """Latent diffusion: the share of training steps spent on the autoencoder (stage 1)
    and the latent U-Net's levels (the latent is already 2^(L−1) times smaller)."""

    vae_fraction: float = Field(0.5, gt=0, lt=1)
    channel_mults: tuple[int, ...] = (1, 2)


class FlowSettings(Config):
    """Normalizing flow: ``levels`` squeeze stages of ``steps`` affine couplings with
    ``hidden`` channels; samples are drawn at ``temperature`` (z ~ N(0, T² I))."""

    levels: int = Field(2, ge=1)
    steps: int = Field(4, ge=1)
    hidden: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)


class GANSettings(Config):
    """Conditional GAN: the generator's spatial latent channels, the R1 penalty γ on real
    samples, the weight of the matching-aware term (real samples with shuffled conditions
    count as fake), the discriminator's learning-rate scale (two-time-scale update) and
    both players' Adam betas."""

    latent_channels: int = Field(4, ge=1)
    r1_gamma: float = Field(1.0, ge=0)
    mismatch: float = Field(1.0, ge=0)
    d_lr_scale: float = Field(2.0, gt=0)
    betas: tuple[Beta, Beta] = (0.0, 0.99)


class GeneratorConfig(Config):
    # "diffusion": the U-Net denoiser on a noise path (rectified flow / VP, any prediction);
    # "vae": a conditional VAE of the same blocks (``unet`` sizes it, ``vae`` sets its ELBO);
    # "latent_diffusion": that VAE first, then diffusion on its latents (``latent``);
    # "normalizing_flow": a conditional RealNVP-style flow with an exact likelihood (``flow``);
    # "gan": a conditional GAN, the VAE decoder against a projection discriminator (``gan``).
    method: str = "diffusion"
    unet: UNetConfig = Field(default_factory=UNetConfig)
    path: str = "rectified_flow"  # "rectified_flow" | "vp_linear" | "vp_cosine"
    prediction: str = "velocity"  # "velocity" | "eps" | "x0" | "v"
    sigma_data: float = 0.9  # std of the training data (spinodal order parameter ≈ ±1)
    cond_dropout: float = Field(0.1, ge=0, le=1)  # drop probability for classifier-free guidance (per field, or of all fields)
    # which condition subsets training shows (genmat.nn.embeddings.drop_fields): "subsets" draws the
    # number of given fields uniformly, so "only E and density" is as common as "everything";
    # "independent" drops each field with cond_dropout (rare small subsets)
    cond_masks: str = "subsets"
    t_sampling: str = "uniform"
    # physics-penalised training (diffusion only): weight per term of the modality's
    # physics_penalty (spinodal: "double_well", "fraction", "s2"), applied to x̂0 where
    # t <= penalty_t_max (genmat.diffusion.DenoisingLoss); {} trains on the data alone
    penalties: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    penalty_t_max: float = Field(0.3, gt=0, le=1)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    vae: VAESettings = Field(default_factory=VAESettings)
    latent: LatentSettings = Field(default_factory=LatentSettings)
    flow: FlowSettings = Field(default_factory=FlowSettings)
    gan: GANSettings = Field(default_factory=GANSettings)

    @model_validator(mode="after")
    def _check(self):
        if self.method not in METHOD_NAMES:
            raise InputError(f"generator method = {self.method!r}; allowed: {', '.join(METHOD_NAMES)}",
                             field="method", value=self.method, allowed=", ".join(METHOD_NAMES))
        if self.path not in KINDS:
            raise InputError(f"generator path = {self.path!r}; allowed: {', '.join(KINDS)}",
                             field="path", value=self.path, allowed=", ".join(KINDS))
        if self.cond_masks not in MASK_SCHEMES:
            raise InputError(f"generator cond_masks = {self.cond_masks!r}; allowed: {', '.join(MASK_SCHEMES)}",
                             field="cond_masks", value=self.cond_masks, allowed=", ".join(MASK_SCHEMES))
        if self.prediction not in PREDICTIONS:
            raise InputError(f"generator prediction = {self.prediction!r}; allowed: {', '.join(PREDICTIONS)}",
                             field="prediction", value=self.prediction, allowed=", ".join(PREDICTIONS))
        if self.penalties and self.method != "diffusion":
            raise InputError(f"generator penalties {self.penalties} need method 'diffusion' (got {self.method!r}): "
                             "they score the denoised estimate x̂0 of a noisy sample")
        return self
