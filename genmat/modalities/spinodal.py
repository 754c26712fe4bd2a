"""Spinodal micrographs: Cahn–Hilliard processing → two-phase microstructure → stiffness,
conductivity and density (PHYSICS.md §1, §3).

Conditions (any subset): processing ``x_B``, ``temperature_K``, ``time_s`` and properties
``E_GPa`` (effective Young's modulus, plane strain, mean of x and y), ``density_g_cm3``
(rule of mixtures) and ``k_W_mK`` (effective thermal conductivity). A sample is the
order parameter c (1, N, N) in about [-1, 1]; phase B (the stiff, SiC-like phase) is c > 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from genmat import sim
from genmat.conditions import ConditionError, ConditionSchema, Field
from genmat.errors import InputError
from genmat.modalities.base import ModalityBase, arrhenius_anneal, configured, sample_grid
from genmat.tasks import DesignTask, Tolerance
from genmat.validate import (
    MicrographChecks,
    NoveltyConfig,
    Tolerances,
    implied_volume_fraction,
    physics_checks,
    reference_s2,
    simulator_check,
)

SIMULATOR_VERSION = "spinodal-ch-1"
PROPERTY_COLUMNS = ("volume_fraction", "length_px", "E_x_GPa", "E_y_GPa")


@dataclass(frozen=True)
class SpinodalConfig:
    grid: int = 32  # pixels per side of a micrograph
    # On a 32-pixel cell these keep 2–6 domains per side (characteristic length 8–21 px) and
    # let every composition in the range decompose by the shortest anneal (τ = 30).
    kappa: float = 0.4  # Cahn–Hilliard gradient coefficient (pixels²)
    tau_ref: float = 30.0  # dimensionless time of the shortest, coolest anneal (750 K, 1800 s)
    noise: float = 0.1  # initial composition fluctuation
    material: sim.TwoPhaseMaterial = field(default_factory=sim.TwoPhaseMaterial)
    checks: MicrographChecks = field(default_factory=MicrographChecks)
    tolerances: Tolerances = field(default_factory=Tolerances)
    n_reference: int = 2  # simulator references per condition for the S2 check
    # Hashin–Shtrikman bounds hold for statistically isotropic composites; a 32×32 periodic
    # cell holds a few domains and is measurably anisotropic (mean |E_x − E_y|/E ≈ 5 %), so
    # simulated cells reach E/E_upper = 1.03 and E/E_lower = 0.90 (512 samples, seed 2).
    # Targets are rejected outside the bounds widened by this relative margin.
    feasibility_margin: float = 0.15
    chunk: int = 256  # samples simulated/measured per batch

    @property
    def ch(self) -> sim.CahnHilliardConfig:
        return sim.CahnHilliardConfig(grid=self.grid, kappa=self.kappa, tau_ref=self.tau_ref, noise=self.noise)


def _schema(material: sim.TwoPhaseMaterial, margin: float) -> ConditionSchema:
    ranges = sim.PROCESSING_RANGES

    def feasible(cond: dict[str, float]) -> None:
        """A modulus must lie inside the Hashin–Shtrikman bounds of the volume fraction
        that the density implies (PHYSICS §3)."""
        if "E_GPa" not in cond or "density_g_cm3" not in cond:
            return
        phi = float(sim.volume_fraction_from_density(cond["density_g_cm3"], material))
        lo, hi = (float(v) for v in sim.youngs_modulus_bounds(phi, material))
        lo, hi = lo * (1 - margin), hi * (1 + margin)
        if not lo <= cond["E_GPa"] <= hi:
            raise ConditionError(
                "E_GPa",
                cond["E_GPa"],
                f"[{lo:.1f}, {hi:.1f}] GPa (Hashin–Shtrikman bounds ±{margin:.0%} for the volume fraction "
                f"{phi:.3f} implied by density_g_cm3 = {cond['density_g_cm3']:.4g})",
            )

    return ConditionSchema(
        fields=(
            Field("x_B", "", *ranges["x_B"], "processing", "composition, atomic fraction of B"),
            Field("temperature_K", "K", *ranges["temperature_K"], "processing", "anneal temperature"),
            Field("time_s", "s", *ranges["time_s"], "processing", "anneal time"),
            Field("E_GPa", "GPa", 90.0, 300.0, "property", "effective Young's modulus (3-D equivalent of the plane-strain stiffness)"),
            Field("density_g_cm3", "g/cm³", 2.80, 3.12, "property", "density, rule of mixtures"),
            Field("k_W_mK", "W/(m·K)", 130.0, 230.0, "property", "effective thermal conductivity"),
        ),
        feasibility=feasible,
    )


_TIGHT = {"E_GPa": Tolerance("rel", 0.02), "k_W_mK": Tolerance("rel", 0.005),
          "density_g_cm3": Tolerance("rel", 0.003), "length_px": Tolerance("rel", 0.05)}


def _micrograph_task(name: str, grid: int, where: str) -> DesignTask:
    """E, k and ρ at the tight tolerances on ``grid``² cells: the fields the micrograph loop's
    simulator check verifies."""
    return DesignTask(name, "spinodal", f"E ±2 %, k ±0.5 % and ρ ±0.3 % at once {where}",
                      ("E_GPa", "k_W_mK", "density_g_cm3"), {k: v for k, v in _TIGHT.items() if k != "length_px"},
                      {"grid": grid}, n_targets=32)


# Design problems (genmat/tasks.py). Process scatter of one recipe over seeds (coefficient of
# variation, 8 recipes × 16 seeds): 32²: E 3.0 %, k 0.41 %, ρ 0.09 %, length 5.5 %;
# 64²: E 1.1 %, k 0.18 %, ρ 0.04 %, length 2.3 % — the tight tolerances sit above the 64² scatter.
DESIGN_TASKS = (
    DesignTask(
        "spinodal-demo", "spinodal",
        "the demo's (E, ρ) point targets at 5 % / 2 % on 32² cells: a lookup problem (a random draw hits ≈ 9 %)",
        ("E_GPa", "density_g_cm3"), {"E_GPa": Tolerance("rel", 0.05), "density_g_cm3": Tolerance("rel", 0.02)},
        {"grid": 32}, n_targets=32),
    DesignTask(
        "spinodal-tight", "spinodal",
        "E ±2 %, k ±0.5 %, ρ ±0.3 % and characteristic length ±5 % at once on 64² cells (a random draw hits ≈ 0.35 %)",
        ("E_GPa", "k_W_mK", "density_g_cm3", "length_px"), _TIGHT, {"grid": 64}, n_targets=32),
    _micrograph_task("spinodal-tight32", 32, "on the micrograph generator's 32² cells (physics guidance's tight "
                     "multi-property task)"),
    _micrograph_task("spinodal-tight64", 64, "on 64² micrographs (the micrograph loop's larger cells: several "
                     "domains per cell, a third of the 32² process scatter)"),
    DesignTask(
        "spinodal-range", "spinodal",
        "mixed point / range / one-sided targets over E, k, ρ and length on 64² cells (tight tolerances on the points)",
        ("E_GPa", "k_W_mK", "density_g_cm3", "length_px"), _TIGHT, {"grid": 64}, n_targets=32,
        kinds=("point", "range", "ge", "le"), kind_weights=(0.4, 0.3, 0.15, 0.15), range_width=0.1),
    DesignTask(
        "spinodal-many", "spinodal", "1000 targets of the tight task (the amortised regime)",
        ("E_GPa", "k_W_mK", "density_g_cm3", "length_px"), _TIGHT, {"grid": 64}, n_targets=1000, seed=2_000_003),
)


class SpinodalModality(ModalityBase):
    name = "spinodal"
    design_tasks = DESIGN_TASKS
    target_fields = ("E_GPa", "density_g_cm3")
    checked_fields = ("E_GPa", "density_g_cm3", "k_W_mK")  # what the simulator check verifies
    hit_metric = "hit_rate"  # fraction of targets whose returned design hits
    relabel_failures = True  # a failed micrograph is a real micrograph of its simulated properties
    # LoopConfig's defaults are this modality's demo, with physics guidance: measured
    # (docs/physics_guidance.md) it lifts the demo loop to 32/32 at iteration 0 (seeds 0, 1)
    loop_defaults: dict = {"physics_guidance": 30.0}
    novelty = NoveltyConfig()  # translation-invariant copy check on the periodic grid
    any_size = True  # the validators measure micrographs of any N × N, not only the grid's
    report_metrics = ("E_mape", "density_mape", "s2_error")  # columns of the loop's reports

    @property
    def tolerance_bands(self) -> dict[str, tuple[str, float]]:
        """Tolerance of each checked field for target-vs-simulated pictures."""
        tol = self.config.tolerances
        return {"E_GPa": ("rel", tol.of("E")), "density_g_cm3": ("rel", tol.of("density")), "k_W_mK": ("rel", tol.of("k"))}

    @property
    def design_tolerances(self) -> dict[str, Tolerance]:
        """Tolerances of point targets in recipe design (``genmat recipes -t E_GPa=180``): the
        simulator check's for E, ρ and k; 10 % for the characteristic length."""
        tol = self.config.tolerances
        return {"E_GPa": Tolerance("rel", tol.of("E")), "density_g_cm3": Tolerance("rel", tol.of("density")),
                "k_W_mK": Tolerance("rel", tol.of("k")), "length_px": Tolerance("rel", 0.10)}

    def __init__(self, config: SpinodalConfig | None = None, **overrides) -> None:
        self.config = configured(config or SpinodalConfig(), overrides, self.name)
        self.sample_shape = (1, self.config.grid, self.config.grid)
        self.schema = _schema(self.config.material, self.config.feasibility_margin)

    # ------------------------------------------------------------------ oracle
    def simulator_settings(self) -> dict:
        return {
            "version": SIMULATOR_VERSION,
            "cahn_hilliard": asdict(self.config.ch),
            "material": asdict(self.config.material),
        }

    def draw_processing(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """Uniform over the processing box."""
        return pd.DataFrame(
            {name: rng.uniform(*sim.PROCESSING_RANGES[name], size=n) for name in sim.PROCESSING_RANGES}
        )

    def perturb(self, processing: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        """Neighbouring processing: Gaussian jitter of ``scale`` × each field's range, clipped."""
        return self.schema.jitter(processing[list(sim.PROCESSING_RANGES)], rng, scale)

    def simulate(self, processing: pd.DataFrame, *, seed: int, progress: bool = False):
        samples = []
        for start in range(0, len(processing), self.config.chunk):
            part = processing.iloc[start : start + self.config.chunk]
            samples.append(
                sim.simulate_spinodal(
                    *(np.array(part[name], dtype=float) for name in sim.PROCESSING_RANGES),
                    self.config.ch, seed=seed + start, progress=progress,
                )
            )
        samples = torch.cat(samples) if samples else torch.empty(0, *self.sample_shape)
        rows = pd.concat([processing[list(sim.PROCESSING_RANGES)].reset_index(drop=True), self.measure(samples)], axis=1)
        return samples, rows

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        parts = []
        for start in range(0, samples.shape[0], self.config.chunk):
            props = sim.micrograph_properties(samples[start : start + self.config.chunk], self.config.material)
            parts.append(
                pd.DataFrame(
                    {
                        "E_GPa": props["E_GPa"].cpu().numpy(),
                        "density_g_cm3": props["density_g_cm3"].cpu().numpy(),
                        "k_W_mK": props["k_W_mK"].cpu().numpy(),
                        **{c: props[c].cpu().numpy() for c in PROPERTY_COLUMNS},
                    }
                )
            )
        if not parts:
            return pd.DataFrame(columns=["E_GPa", "density_g_cm3", "k_W_mK", *PROPERTY_COLUMNS])
        return pd.concat(parts, ignore_index=True)

    # -------------------------------------------------------------- validators
    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        conditions = conditions.reset_index(drop=True)
        phi = implied_volume_fraction(conditions, self.config.material)
        ref = None
        processing = list(sim.PROCESSING_RANGES)
        if set(processing) <= set(conditions.columns) and conditions[processing].notna().all(axis=1).any():
            ref = reference_s2(conditions[processing], self.config.ch, n_ref=self.config.n_reference)
        return physics_checks(samples, expected_volume_fraction=phi, reference_s2=ref, checks=self.config.checks)

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in ("E_GPa", "density_g_cm3", "k_W_mK") if c in targets.columns]
        return simulator_check(samples, targets[cols].reset_index(drop=True), self.config.material, self.config.tolerances)

    def physics_model(self, fidelity: str = "cheap", conditions=None):
        """The oracle's properties as a differentiable function of micrographs (physics
        guidance): ``x -> {field: (B,)}``; it needs no target conditions
        (:func:`genmat.sim.differentiable_properties`: smooth phase map of width 0.05, adjoint
        gradients). "cheap": CG to tol 1e-2 (≈ 8 iterations),
        "full": 1e-4 (≈ 17); both within 1.4 % of the oracle's E (mean +0.6 %)."""
        tol = {"cheap": 1e-2, "full": 1e-4}.get(fidelity)
        if tol is None:
            raise InputError(f"physics model fidelity = {fidelity!r}; allowed: cheap, full")
        material = self.config.material
        return lambda x, index=None: sim.differentiable_properties(x, material, tol=tol)

    penalty_terms = ("double_well", "fraction", "s2")

    def physics_penalty(self, x0_hat: torch.Tensor, x0: torch.Tensor, values: torch.Tensor,
                        mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physics-penalised training: three differentiable terms per sample (B,), each zero
        for x̂0 = x0 up to the smooth phase map's width (0.05):

        - ``double_well``: (⟨f(x̂0)⟩ − ⟨f(x0)⟩)² with the Cahn–Hilliard bulk free energy
          f(c) = ¼(c² − 1)²: a two-phase field keeps its pixels in the wells, a blurred one
          climbs the barrier (f(0) = ¼);
        - ``fraction``: (φ(x̂0) − φ_ρ)² with φ_ρ = (ρ − ρ_A)/(ρ_B − ρ_A) from the sample's
          density condition (rule of mixtures, exact in the oracle), where density is known;
        - ``s2``: the mean squared difference of the radially averaged two-point correlations
          S2(r) of the phase maps of x̂0 and x0 (morphology)."""
        bulk = lambda c: 0.25 * (c.square() - 1).square().flatten(1).mean(1)  # noqa: E731
        chi_hat, chi = sim.smooth_phase(x0_hat, width=0.05), sim.smooth_phase(x0, width=0.05)
        phi_hat = chi_hat.flatten(1).mean(1)
        col = self.schema.names.index("density_g_cm3")
        rho = self.schema.field("density_g_cm3").denormalise(values[:, col])
        m = self.config.material
        phi_rho = (rho - m.rho_A_g_cm3) / (m.rho_B_g_cm3 - m.rho_A_g_cm3)
        return {
            "double_well": (bulk(x0_hat) - bulk(x0)).square(),
            "fraction": mask[:, col] * (phi_hat - phi_rho).square(),
            "s2": (sim.two_point_correlation(chi_hat) - sim.two_point_correlation(chi)).square().mean(1),
        }

    def screening_features(self, samples: torch.Tensor) -> np.ndarray:
        """[φ, interface density] from the phase map: the stiffness of a two-phase
        micrograph is set mostly by its volume fraction, then by how connected the
        phases are (interface per pixel)."""
        phase = sim.phase_map(samples).reshape(samples.shape[0], *samples.shape[-2:])
        phi = phase.mean(dim=(-2, -1))
        interface = 0.5 * (
            (phase != phase.roll(1, -1)).float().mean(dim=(-2, -1))
            + (phase != phase.roll(1, -2)).float().mean(dim=(-2, -1))
        )
        return torch.stack([phi, interface], dim=1).cpu().numpy().astype(np.float64)

    def recipe_coordinates(self, processing: pd.DataFrame) -> np.ndarray:
        """(x_B, ln τ): the anneal enters the Cahn–Hilliard model only through the
        dimensionless time τ = M0 exp(−Q/RT) t (PHYSICS.md §1), so T and t are not separately
        identifiable from a micrograph; composition and τ are."""
        tau = sim.dimensionless_time(np.array(processing["temperature_K"], dtype=float),
                                     np.array(processing["time_s"], dtype=float), self.config.ch)
        return np.stack([processing["x_B"].to_numpy(float), np.log(tau.cpu().numpy())], axis=1)

    def processing_from_coordinates(self, coords: np.ndarray) -> pd.DataFrame:
        """An anneal for (x_B, ln τ): x_B clipped into its range; the temperature at the middle
        of its range and t = τ / M(T), and where that t leaves its range, t at the nearer end
        and the temperature that gives τ with it, T = (Q/R) / ln(M0 t / τ) (clipped: τ beyond
        what the box reaches gets the nearest corner)."""
        ch, (x_lo, x_hi) = self.config.ch, sim.PROCESSING_RANGES["x_B"]
        coords = np.asarray(coords, dtype=float)
        T, t = arrhenius_anneal(np.exp(coords[:, 1]), ch.M0, ch.activation_energy_J_mol / sim.GAS_CONSTANT_J_MOLK,
                                sim.PROCESSING_RANGES["temperature_K"], sim.PROCESSING_RANGES["time_s"])
        return pd.DataFrame({"x_B": np.clip(coords[:, 0], x_lo, x_hi), "temperature_K": T, "time_s": t})

    def task_options(self, tolerances: dict) -> dict:
        """The simulator check's relative tolerances from a task's (E, density, k only)."""
        keys = {"E_GPa": "E_rel", "density_g_cm3": "density_rel", "k_W_mK": "k_rel"}
        bad = [f for f, t in tolerances.items() if f not in keys or t.kind != "rel"]
        if bad:
            raise InputError(f"the spinodal simulator check verifies relative tolerances on {', '.join(keys)}; "
                             f"a task asks for {', '.join(bad)} (genmat recipes --task handles those)",
                             field="task", value=bad, allowed=", ".join(keys))
        return {"tolerances": {keys[f]: float(t.value) for f, t in tolerances.items()}}

    def design_metrics(self, report: pd.DataFrame, designs: pd.DataFrame) -> dict[str, float]:
        """Absolute errors of the returned designs (target units) and the candidates' S2 error."""
        out = {}
        for col, name in (("E_GPa", "E_mae_GPa"), ("density_g_cm3", "density_mae_g_cm3")):
            if f"sim_{col}" in designs and f"target_{col}" in designs:
                out[name] = float((designs[f"sim_{col}"] - designs[f"target_{col}"]).abs().mean())
        if "s2_error" in report and report["s2_error"].notna().any():
            out["s2_error"] = float(report["s2_error"].mean())
        return out

    # ---------------------------------------------------------------- pictures
    def title(self, row, prefix: str = "") -> str:
        e, rho = row.get(prefix + "E_GPa"), row.get(prefix + "density_g_cm3")
        fmt = lambda v, spec: "–" if v is None or not np.isfinite(v) else format(v, spec)  # noqa: E731
        return f"E {fmt(e, '.0f')} GPa, ρ {fmt(rho, '.3f')}"

    def candidate_title(self, row) -> str:
        if row.get("simulated") and row.get("sim_E_GPa") is not None and np.isfinite(row.get("sim_E_GPa")):
            return f"E {row['sim_E_GPa']:.0f} ρ {row['sim_density_g_cm3']:.3f}\n{row.get('verdict', '')}"
        return f"{row.get('verdict', '')}"

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """Micrographs in a grid (``conditions`` is accepted for a common signature; the
        titles carry the targets)."""

        fig, axes = sample_grid(samples.shape[0], ncols, (1.6, 1.75))
        for ax in axes.flat:
            ax.axis("off")
        for ax, img, title in zip(axes.flat, samples[:, 0].cpu().numpy(), titles):
            ax.imshow(img, cmap="cividis", vmin=-1.1, vmax=1.1, interpolation="nearest")
            ax.set_title(title, fontsize=6)
        fig.tight_layout()
        return fig

