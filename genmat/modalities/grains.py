"""Grain micrographs: cooling rate and hold → polycrystal → grain size and yield strength
(PHYSICS.md §2; the oracle is :mod:`genmat.sim.grains`).

Conditions (any subset): processing ``cooling_rate_K_s`` (0.1–10 K/s), hold
``temperature_K`` (923–1173 K) and hold ``time_s`` (0–3600 s); properties ``grain_size_um``
(mean lineal intercept, ASTM E112) and ``yield_strength_MPa`` (Hall–Petch, ferritic steel).
A sample is the in-plane orientation field (2, N, N) = (cos 2θ, sin 2θ) on 2 µm pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from genmat.conditions import ConditionError, ConditionSchema, Field
from genmat.modalities.base import ModalityBase, arrhenius_anneal, configured, sample_grid
from genmat.sim import grains as sim_grains
from genmat.sim.cahn_hilliard import GAS_CONSTANT_J_MOLK
from genmat.tasks import Tolerance
from genmat.validate import NoveltyConfig
from genmat.validate.grains import GrainChecks, GrainTolerances, grain_physics_checks, grain_simulator_check

SIMULATOR_VERSION = "grains-potts-1"
EXTRA_COLUMNS = ("astm_G", "n_grains", "mean_area_um2", "area_cv")
RANGES = sim_grains.GRAIN_PROCESSING_RANGES


@dataclass(frozen=True)
class GrainModalityConfig:
    grid: int = 64  # pixels per side (2 µm pixels: 8–100 grains per cell as cooled)
    physics: sim_grains.GrainConfig = field(default_factory=sim_grains.GrainConfig)
    checks: GrainChecks = field(default_factory=GrainChecks)
    tolerances: GrainTolerances = field(default_factory=GrainTolerances)
    # a yield strength must be Hall–Petch's for the grain size asked with it, within this margin
    feasibility_margin: float = 0.05
    chunk: int = 128  # samples simulated per batch


def _schema(config: GrainModalityConfig) -> ConditionSchema:
    hp = config.physics

    def feasible(cond: dict[str, float]) -> None:
        if "grain_size_um" not in cond or "yield_strength_MPa" not in cond:
            return
        expect = float(sim_grains.hall_petch(cond["grain_size_um"], hp))
        if abs(cond["yield_strength_MPa"] / expect - 1) > config.feasibility_margin:
            raise ConditionError(
                "yield_strength_MPa", cond["yield_strength_MPa"],
                f"{expect:.0f} MPa ±{config.feasibility_margin:.0%} (Hall–Petch σ0 + k_y/√d for grain_size_um = "
                f"{cond['grain_size_um']:.4g})")

    return ConditionSchema(
        fields=(
            Field("cooling_rate_K_s", "K/s", *RANGES["cooling_rate_K_s"], "processing", "cooling rate through the "
                  "transformation (sets the nucleus density)"),
            Field("temperature_K", "K", *RANGES["temperature_K"], "processing", "hold temperature (grain growth)"),
            Field("time_s", "s", *RANGES["time_s"], "processing", "hold time"),
            Field("grain_size_um", "µm", 5.0, 60.0, "property", "mean lineal intercept (ASTM E112)"),
            Field("yield_strength_MPa", "MPa", 160.0, 420.0, "property", "Hall–Petch yield strength"),
        ),
        feasibility=feasible,
    )


class GrainModality(ModalityBase):
    name = "grains"
    target_fields = ("yield_strength_MPa",)  # what a user asks of a steel; the grain size follows
    checked_fields = ("grain_size_um", "yield_strength_MPa")
    novelty = NoveltyConfig()
    # sharp two-channel orientation maps need more training than the spinodal demo's 150 + 300:
    # measured (docs/grains.md), 150/300/300 steps gave 0–19 % valid maps, 600 per iteration 47 → 78 → 90 %
    loop_defaults: dict = {"first_train_steps": 600, "next_train_steps": 600}
    report_metrics = ("size_mape", "strength_mape")  # from the simulator check's declared properties

    def __init__(self, config: GrainModalityConfig | None = None, **overrides) -> None:
        config = configured(config or GrainModalityConfig(), overrides, self.name)
        self.config = replace(config, physics=replace(config.physics, grid=int(config.grid)))
        self.sample_shape = (2, self.config.grid, self.config.grid)
        self.schema = _schema(self.config)

    @property
    def design_tolerances(self) -> dict[str, Tolerance]:
        tol = self.config.tolerances
        return {"grain_size_um": Tolerance("rel", tol.size_rel), "yield_strength_MPa": Tolerance("rel", tol.strength_rel)}

    @property
    def tolerance_bands(self) -> dict[str, tuple[str, float]]:
        tol = self.config.tolerances
        return {"grain_size_um": ("rel", tol.size_rel), "yield_strength_MPa": ("rel", tol.strength_rel)}

    # ------------------------------------------------------------------ oracle
    def simulator_settings(self) -> dict:
        return {"version": SIMULATOR_VERSION, "grains": asdict(self.config.physics)}

    def draw_processing(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """Cooling rate log-uniform (a decade is a decade to the microstructure), hold
        temperature and time uniform."""
        lo, hi = RANGES["cooling_rate_K_s"]
        return pd.DataFrame({
            "cooling_rate_K_s": np.exp(rng.uniform(math.log(lo), math.log(hi), size=n)),
            "temperature_K": rng.uniform(*RANGES["temperature_K"], size=n),
            "time_s": rng.uniform(*RANGES["time_s"], size=n),
        })

    def perturb(self, processing: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        """Neighbouring processing: Gaussian jitter of ``scale`` × each range (the cooling rate
        in log space), clipped."""
        hold = self.schema.jitter(processing[["temperature_K", "time_s"]], rng, scale)
        lo, hi = RANGES["cooling_rate_K_s"]
        log_rate = np.log(processing["cooling_rate_K_s"].to_numpy(float))
        log_rate = log_rate + rng.normal(0.0, scale, len(hold)) * math.log(hi / lo)
        return hold.assign(cooling_rate_K_s=np.clip(np.exp(log_rate), lo, hi))[list(RANGES)]

    def simulate(self, processing: pd.DataFrame, *, seed: int, progress: bool = False):
        parts = []
        for start in range(0, len(processing), self.config.chunk):
            part = processing.iloc[start:start + self.config.chunk]
            parts.append(sim_grains.simulate_grains(*(part[c].to_numpy(float) for c in RANGES), self.config.physics,
                                                    seed=seed + start, progress=progress))
        samples = torch.cat(parts) if parts else torch.empty(0, *self.sample_shape)
        rows = pd.concat([processing[list(RANGES)].reset_index(drop=True), self.measure(samples)], axis=1)
        return samples, rows

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        m = sim_grains.measure_grains(samples, self.config.physics)
        return pd.DataFrame({c: m[c] for c in ("grain_size_um", "yield_strength_MPa", *EXTRA_COLUMNS)})

    def recipe_coordinates(self, processing: pd.DataFrame) -> np.ndarray:
        """(ln Ṫ, ln(1 + MCS)): the cooling rate sets the nuclei, and the hold enters only
        through its Monte Carlo steps MCS(T, t), so T and t are not separately identifiable
        from a grain map; the cooling rate and the hold's MCS are."""
        mcs = sim_grains.monte_carlo_steps(processing["temperature_K"].to_numpy(float),
                                           processing["time_s"].to_numpy(float), self.config.physics)
        return np.stack([np.log(processing["cooling_rate_K_s"].to_numpy(float)), np.log1p(mcs)], axis=1)

    def processing_from_coordinates(self, coords: np.ndarray) -> pd.DataFrame:
        """A recipe for (ln Ṫ, ln(1 + MCS)): the cooling rate clipped into its range, and a hold
        doing those Monte Carlo steps (:func:`genmat.modalities.base.arrhenius_anneal`)."""
        hp = self.config.physics
        coords = np.asarray(coords, dtype=float)
        q_r = hp.activation_energy_J_mol / GAS_CONSTANT_J_MOLK
        T, t = arrhenius_anneal(np.expm1(np.maximum(coords[:, 1], 0.0)), hp.mcs_per_s_ref * math.exp(q_r / hp.T_ref_K),
                                q_r, RANGES["temperature_K"], RANGES["time_s"])
        return pd.DataFrame({"cooling_rate_K_s": np.clip(np.exp(coords[:, 0]), *RANGES["cooling_rate_K_s"]),
                             "temperature_K": T, "time_s": t})

    # -------------------------------------------------------------- validators
    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        return grain_physics_checks(samples, conditions, self.config.physics, self.config.checks)

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        return grain_simulator_check(samples, targets, self.config.physics, self.config.tolerances)

    # ---------------------------------------------------------------- pictures
    def title(self, row, prefix: str = "") -> str:
        d, s = row.get(prefix + "grain_size_um"), row.get(prefix + "yield_strength_MPa")
        fmt = lambda v, spec: "–" if v is None or not np.isfinite(v) else format(v, spec)  # noqa: E731
        return f"d {fmt(d, '.1f')} µm, σy {fmt(s, '.0f')} MPa"

    def candidate_title(self, row) -> str:
        if row.get("simulated") and row.get("sim_grain_size_um") is not None:
            return f"{self.title(row, 'sim_')}\n{row.get('verdict', '')}"
        return f"{row.get('verdict', '')}"

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """Orientation maps (hue = θ, as an EBSD map) with the measured boundaries in black."""
        fig, axes = sample_grid(samples.shape[0], ncols, (1.6, 1.75))
        for ax in axes.flat:
            ax.axis("off")
        for ax, x, title in zip(axes.flat, samples.detach().cpu().numpy(), titles):
            ax.imshow(orientation_rgb(x, self.config.physics.boundary_deg), interpolation="nearest")
            ax.set_title(title, fontsize=6)
        fig.tight_layout()
        return fig


def orientation_rgb(field: np.ndarray, boundary_deg: float = 7.5) -> np.ndarray:
    """(N, N, 3) picture of a (2, N, N) orientation field: hue θ/π, saturation |u| (clipped),
    and black where the measurement puts a grain boundary."""
    from matplotlib.colors import hsv_to_rgb

    u = np.asarray(field, dtype=float)
    theta = (np.arctan2(u[1], u[0]) / 2) % math.pi
    norm = np.clip(np.sqrt((u ** 2).sum(0)), 0, 1)
    rgb = hsv_to_rgb(np.stack([theta / math.pi, 0.75 * norm, np.full_like(norm, 0.95)], axis=-1))
    labels = sim_grains.segment(u, boundary_deg)
    edge = (labels != np.roll(labels, -1, 0)) | (labels != np.roll(labels, -1, 1))
    rgb[edge] = 0.0
    return rgb
