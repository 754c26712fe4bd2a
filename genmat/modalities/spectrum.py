"""1-D spectra: XRD patterns and Raman spectra of phase mixtures (PHYSICS.md §4–5).

Conditions (any subset): the phase fractions ``frac_<phase>`` (a simplex: each in [0, 1],
summing to 1 when all are given; weight fractions, see :mod:`genmat.sim.xrd`), the
crystallite size ``size_nm``, the microstrain ``strain`` and the temperature
``temperature_K``. The oracle is :class:`genmat.sim.XRD` or :class:`genmat.sim.Raman`
on a fixed axis; one modality class serves both, registered as ``xrd`` and ``raman``.

A sample is ``(1, N)``: the variance-stabilised counts x = √counts / ``sqrt_scale`` − 1
(Poisson noise has the same σ = 1/(2·sqrt_scale) everywhere in x), so the generator sees
a spectrum at every intensity with the same noise level. :meth:`counts` inverts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from genmat import sim
from genmat.conditions import ConditionSchema, Field
from genmat.errors import InputError
from genmat.modalities.base import ModalityBase, draw_simplex, jitter_simplex, sample_grid, simplex_feasibility
from genmat.validate import NoveltyConfig
from genmat.tasks import Tolerance
from genmat.validate.spectrum import (
    STATE_FIELDS,
    SpectrumChecks,
    SpectrumTolerances,
    condition_state,
    fraction_field,
    spectrum_physics_checks,
    spectrum_simulator_check,
)

SIMULATOR_VERSION = "line-spectra-1"
TECHNIQUES = {"xrd": "XRD", "raman": "Raman"}  # oracle classes in genmat.sim
DEFAULT_PHASES = ("anatase", "rutile", "ZnO")  # TiO2–ZnO photocatalysts: XRD- and Raman-active
# Per-technique settings: peak tolerance in axis units; Lorentzian (Raman) tails need wider
# allowed windows, narrower width-fit windows and a smaller SNIP window on curved
# fluorescence; phonon confinement sizes a crystal only below ~15 nm.
TECHNIQUE_DEFAULTS = {
    "xrd": {"size_range": (5.0, 30.0), "checks": {"peak_tolerance": 0.2, "window_fwhm": 2.5,
                                                  "snip_max_half_width": 64, "fit_window_fwhm": 4.0}},
    "raman": {"size_range": (3.0, 15.0), "checks": {"peak_tolerance": 5.0, "window_fwhm": 10.0,
                                                    "snip_max_half_width": 24, "fit_window_fwhm": 1.5,
                                                    "project_background": False}},
}


@dataclass(frozen=True)
class SpectrumConfig:
    technique: str = "xrd"
    phases: tuple[str, ...] = DEFAULT_PHASES
    size_range: tuple[float, float] | None = None  # nm; None: the technique's default
    strain_range: tuple[float, float] = (0.0, 0.003)
    temperature_range: tuple[float, float] = (300.0, 1000.0)  # K
    absent_probability: float = 0.25  # chance that a phase is absent from a drawn mixture
    sum_tolerance: float = 0.01  # |Σ fractions − 1| allowed in a condition
    sqrt_scale: float = 25.0  # x = √counts / sqrt_scale − 1
    tolerances: SpectrumTolerances = field(default_factory=SpectrumTolerances)
    # Two simulated spectra of one condition differ by their Poisson noise only (novelty ≈ 0.2
    # in units of the training scale); a memorised training spectrum (noise included) is ≈ 0.
    copy_threshold: float = 0.05
    chunk: int = 256
    guidance_profile: bool = True  # physics guidance also penalises what the allowed phases cannot explain

    @property
    def checks(self) -> SpectrumChecks:
        return SpectrumChecks(**TECHNIQUE_DEFAULTS[self.technique]["checks"], size_range=self.size_range,
                              strain_range=self.strain_range, temperature_range=self.temperature_range)


def _schema(config: SpectrumConfig) -> ConditionSchema:
    return ConditionSchema(
        fields=(
            *(Field(fraction_field(p), "", 0.0, 1.0, "composition", f"weight fraction of {p}") for p in config.phases),
            Field("size_nm", "nm", *config.size_range, "processing", "crystallite size (Scherrer / phonon confinement)"),
            Field("strain", "", *config.strain_range, "processing", "microstrain ε (Williamson–Hall)"),
            Field("temperature_K", "K", *config.temperature_range, "processing", "measurement temperature"),
        ),
        feasibility=simplex_feasibility([fraction_field(p) for p in config.phases], config.sum_tolerance,
                                        "phase fractions"),
    )


class SpectrumModality(ModalityBase):
    """XRD or Raman spectra of phase mixtures; see the module docstring."""

    hit_metric = "candidate_hit_rate"  # fraction of all candidates passing every check
    relabel_failures = False  # failures are replaced by simulated spectra of their condition
    any_size = False  # spectra live on the oracle's fixed axis
    report_metrics = ("fraction_mae", "fraction_mae_hits", "size_mape", "rwp_ratio_median")
    # Demo defaults of the closed loop (LoopConfig fields); every candidate is checked.
    loop_defaults = {
        "n_candidates": 4, "n_simulate": 4, "acquire_per_target": 8, "initial_samples": 256, "n_targets": 12,
        "first_train_steps": 400, "next_train_steps": 400, "train": {"batch_size": 64},
        # physics guidance through the line-spectrum model (fractions + profile), the scale
        # measured best for XRD (docs/physics_guidance.md)
        "physics_guidance": 1.0,
        # spectra are designed for every field at once (fractions, size, strain, temperature):
        # train on the full mask with per-field dropout, as measured in docs/spectra.md
        "generator": {"unet": {"spatial_dims": 1, "base_channels": 16, "channel_mults": [1, 2, 4, 4],
                               "padding_mode": "replicate", "position_features": 8},
                      "cond_masks": "independent"},
    }  # LoopConfig fields as in a --config file (plain JSON: a modality needs no generator imports)

    def __init__(self, config: SpectrumConfig | None = None, **overrides) -> None:
        config = config or SpectrumConfig()
        if "phases" in overrides:
            overrides["phases"] = tuple(overrides["phases"])
        config = replace(config, **overrides)
        if config.technique not in TECHNIQUES:
            raise InputError(f"technique = {config.technique!r} is not known; allowed: {', '.join(TECHNIQUES)}")
        if config.size_range is None:
            config = replace(config, size_range=TECHNIQUE_DEFAULTS[config.technique]["size_range"])
        self.technique = getattr(sim, TECHNIQUES[config.technique])()
        self.phases = self.technique.check_phases(config.phases)
        self.config = config
        self.name = config.technique
        self.sample_shape = (1, self.technique.axis.n)
        self.schema = _schema(config)
        self.fraction_fields = tuple(fraction_field(p) for p in self.phases)
        self.target_fields = (*self.fraction_fields, *STATE_FIELDS)
        self.checked_fields = self.target_fields
        self.novelty = NoveltyConfig(copy_threshold=config.copy_threshold, translation_invariant=False)

    @property
    def tolerance_bands(self) -> dict[str, tuple[str, float]]:
        """Tolerance of each checked field for target-vs-measured pictures."""
        tol = self.config.tolerances
        return {**{f: ("abs", tol.fraction_abs) for f in self.fraction_fields}, "size_nm": ("rel", tol.size_rel)}

    @property
    def guidance_tolerances(self) -> dict[str, Tolerance]:
        """Physics guidance steers the phase fractions, in the simulator check's tolerance."""
        return {f: Tolerance("abs", self.config.tolerances.fraction_abs) for f in self.fraction_fields}

    # ------------------------------------------------------------------ representation
    def to_samples(self, counts: np.ndarray) -> torch.Tensor:
        x = np.sqrt(np.clip(counts, 0, None)) / self.config.sqrt_scale - 1
        return torch.as_tensor(x, dtype=torch.float32).reshape(-1, *self.sample_shape)

    def counts(self, samples: torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(samples).reshape(-1, self.sample_shape[-1]).double().cpu().numpy()
        return (self.config.sqrt_scale * np.clip(x + 1, 0, None)) ** 2

    # ------------------------------------------------------------------------- oracle
    def simulator_settings(self) -> dict:
        return {"version": SIMULATOR_VERSION, "technique": self.name, "phases": list(self.phases),
                "oracle": asdict(self.technique.config), "sqrt_scale": self.config.sqrt_scale}

    def draw_processing(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """Mixtures: each phase absent with ``absent_probability`` (at least one present), the
        present ones Dirichlet(1)-distributed; size, strain and temperature uniform."""
        frac = draw_simplex(n, len(self.phases), self.config.absent_probability, rng)
        frame = pd.DataFrame(frac, columns=list(self.fraction_fields))
        frame["size_nm"] = rng.uniform(*self.config.size_range, size=n)
        frame["strain"] = rng.uniform(*self.config.strain_range, size=n)
        frame["temperature_K"] = rng.uniform(*self.config.temperature_range, size=n)
        return frame

    def perturb(self, conditions: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
        """Neighbouring conditions: fractions jittered on the simplex (absent phases stay
        absent), the state fields jittered by ``scale`` × their range and clipped."""
        out = conditions[list(self.target_fields)].copy().reset_index(drop=True)
        out[list(self.fraction_fields)] = jitter_simplex(out[list(self.fraction_fields)].to_numpy(float), rng, scale)
        state = list(STATE_FIELDS)
        out[state] = self.schema.jitter(out[state], rng, scale)
        return out

    def _state(self, frame: pd.DataFrame) -> dict:
        return {"size_nm": frame["size_nm"].to_numpy(float), "strain": frame["strain"].to_numpy(float),
                "temperature_K": frame["temperature_K"].to_numpy(float)}

    def simulate(self, processing: pd.DataFrame, *, seed: int, progress: bool = False):
        processing = processing[list(self.target_fields)].reset_index(drop=True)
        rng = np.random.default_rng(seed)
        counts, bg = [], []
        for start in range(0, len(processing), self.config.chunk):
            part = processing.iloc[start : start + self.config.chunk]
            y, b = self.technique.simulate(self.phases, part[list(self.fraction_fields)].to_numpy(float),
                                           rng=rng, **self._state(part))
            counts.append(y)
            bg.append(b)
        if not counts:
            return torch.empty(0, *self.sample_shape), processing
        rows = processing.copy()
        rows["background_level"] = np.concatenate(bg)[:, 0]
        return self.to_samples(np.concatenate(counts)), rows

    def expected(self, conditions: pd.DataFrame) -> np.ndarray:
        """Noise-free counts (without background) for full conditions, ``(B, N)``."""
        return self.technique.expected(self.phases, conditions[list(self.fraction_fields)].to_numpy(float),
                                       **self._state(conditions))

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        """Every condition from the spectra alone: phase fractions, crystallite size,
        microstrain and temperature by full-profile refinement through the differentiable
        forward model (:func:`genmat.sim.refine_conditions`, within the modality's ranges),
        and the fit's R_wp / R_exp."""
        c = self.config
        r = sim.refine_conditions(self.technique, self.phases, self.counts(samples),
                                  {"size_nm": c.size_range, "strain": c.strain_range,
                                   "temperature_K": c.temperature_range})
        out = pd.DataFrame(r.fractions, columns=list(self.fraction_fields))
        out["size_nm"], out["strain"], out["temperature_K"] = r.size_nm, r.strain, r.temperature_K
        out["rwp_ratio"] = r.rwp / r.rexp
        return out

    # ---------------------------------------------------------------------- validators
    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        return spectrum_physics_checks(self.counts(samples), self.technique, self.phases, conditions,
                                       self.config.checks)

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        return spectrum_simulator_check(self.counts(samples), self.technique, self.phases, targets,
                                        self.config.tolerances, self.config.checks)

    def physics_model(self, fidelity: str = "cheap", conditions: pd.DataFrame | None = None):
        """Phase fractions measured differentiably from spectra (physics guidance):
        ``model(x, index) -> {frac_<phase>: (B,)}``. The counts are fitted by weighted least
        squares (Poisson weights 1/√max(counts, 1)) on the pure-phase patterns of the oracle's
        torch forward model, broadened and shifted for each sample's target size, strain and
        temperature (``conditions`` row ``index``; mid-range where not given), plus the smooth
        background; the amounts' positive parts, normalised, are the fractions. It is the
        simulator check's NNLS without the sign constraint, so one fidelity serves both.

        With ``guidance_profile`` (config) and targets that give the whole state, it also
        returns ``physics_prior``: ½ d², d = (√(χ²/N) − 1)₊ / (``rwp_ratio`` − 1), the part of
        the spectrum that the allowed phases at the target's state cannot explain (spurious
        peaks, wrong positions or widths), in units of the R_wp check's margin."""
        if fidelity not in ("cheap", "full"):
            raise InputError(f"physics model fidelity = {fidelity!r}; allowed: cheap, full")
        conditions = pd.DataFrame(index=range(1)) if conditions is None else conditions.reset_index(drop=True)
        state_given = torch.as_tensor(conditions.reindex(columns=list(STATE_FIELDS))
                                      .notna().all(axis=1).to_numpy().copy())
        axis = self.technique.axis
        lines = self.technique.lines(self.phases, **condition_state(conditions, len(conditions), self.config.checks, "mid"))
        patterns = torch.as_tensor(lines.patterns(axis, self.technique.eta))  # (T, P, N), one per target row
        basis = torch.as_tensor(sim.background_basis(axis))
        n_phases = len(self.phases)
        tol = self.config.tolerances

        def model(x: torch.Tensor, index=None) -> dict[str, torch.Tensor]:
            if index is None:
                if len(patterns) != 1:
                    raise InputError("the spectra physics model needs each sample's target row (index)")
                index = np.zeros(x.shape[0], dtype=int)
            counts = (self.config.sqrt_scale * (x.reshape(x.shape[0], -1) + 1).clamp(min=0)).square()
            design = torch.cat([patterns[torch.as_tensor(index)], basis.expand(x.shape[0], *basis.shape)], 1).to(counts)
            coef, resid = sim.weighted_linear_fit(design, counts, 1 / counts.clamp(min=1.0).sqrt())
            amount = coef[:, :n_phases].clamp(min=0)
            fractions = amount / (amount.sum(1, keepdim=True) + 1e-6)
            out = {f: fractions[:, i] for i, f in enumerate(self.fraction_fields)}
            if self.config.guidance_profile:
                # what the allowed phases at the target's state cannot explain: R_wp / R_exp ≈ √(χ²/N),
                # in units of the check's margin above 1 (0 up to the noise level)
                excess = (resid.square().mean(1).clamp(min=1e-12).sqrt() - 1).clamp(min=0) / (tol.rwp_ratio - 1)
                out["physics_prior"] = torch.where(state_given.to(x.device)[torch.as_tensor(index)],
                                                   0.5 * excess.square(), torch.zeros_like(excess))
            return out

        return model

    def screening_features(self, samples: torch.Tensor):
        return None  # the simulator check is cheap: every plausible candidate is checked

    def design_metrics(self, report: pd.DataFrame, designs: pd.DataFrame) -> dict[str, float]:
        """Per-phase |recovered − target| fraction errors (all simulated candidates, and the
        hits), crystallite-size error and the R_wp / R_exp ratio of the simulated candidates."""
        if "fraction_abs_err" not in report:
            return {}
        frac = [c for c in report.columns if c.startswith("sim_frac_") and "target_" + c[4:] in report]
        err = np.abs(report[frac].to_numpy(float) - report[["target_" + c[4:] for c in frac]].to_numpy(float))
        simulated = report["simulated"].to_numpy(bool)
        hits = report["verdict"].eq("hit").to_numpy()
        return {
            "fraction_mae": float(np.nanmean(err[simulated])) if simulated.any() else float("nan"),
            "fraction_mae_hits": float(np.nanmean(err[hits])) if hits.any() else float("nan"),
            "size_mape": float(report.loc[simulated, "size_rel_err"].abs().mean()),
            "rwp_ratio_median": float(report.loc[simulated, "rwp_ratio"].median()),
        }

    # ------------------------------------------------------------------------ pictures
    def title(self, row, prefix: str = "") -> str:
        mix = " ".join(f"{p[:4]} {row.get(prefix + f, np.nan):.2f}" for p, f in zip(self.phases, self.fraction_fields)
                       if np.isfinite(row.get(prefix + f, np.nan)) and row.get(prefix + f) > 0.005)
        size, t = row.get(prefix + "size_nm", np.nan), row.get(prefix + "temperature_K", np.nan)
        return f"{mix}\n{size:.0f} nm, {t:.0f} K"

    def candidate_title(self, row) -> str:
        verdict = str(row.get("verdict", ""))
        if verdict in ("invalid", "miss", "copy"):  # say why, shortly
            verdict += ": " + str(row.get("reason", "")).split(";")[0][:48]
        if row.get("simulated") and np.isfinite(row.get("fraction_abs_err", np.nan)):
            size = row.get("sim_size_nm", np.nan)
            size = f"L {size:.1f} nm" if np.isfinite(size) else "L not measurable"
            return (f"Δw {row['fraction_abs_err']:.3f}, {size}, "
                    f"Rwp/Rexp {row.get('rwp_ratio', np.nan):.2f}\n{verdict}")
        return verdict

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 4,
                     conditions: pd.DataFrame | None = None):
        """Spectra in a grid; with ``conditions``, each is overlaid with the simulator's
        noise-free spectrum for its condition (on the sample's background, fitted) and the
        allowed lines of the conditioned phases are marked."""
        import matplotlib.pyplot as plt

        n = samples.shape[0]
        fig, axes = sample_grid(n, ncols, (3.4, 2.3))
        x = self.technique.axis.x
        y = self.counts(samples)
        ref = None
        if conditions is not None:
            conditions = conditions.reset_index(drop=True)
            full = conditions.reindex(columns=list(self.target_fields)).notna().all(1).to_numpy()
            if full.any():  # the simulator's spectrum on the sample's background (least squares, as for R_wp)
                ref = np.full_like(y, np.nan)
                peaks = self.expected(conditions[full])
                basis = sim.background_basis(self.technique.axis)
                coef, *_ = np.linalg.lstsq(basis.T, (y[full] - peaks).T, rcond=None)
                ref[full] = peaks + coef.T @ basis
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, ax in enumerate(axes.flat[:n]):
            ax.plot(x, y[i], lw=0.6, color="k", label="generated" if ref is not None else None)
            if ref is not None and np.isfinite(ref[i]).all():
                ax.plot(x, ref[i], lw=0.8, color="C1", alpha=0.8, label="simulated (noise-free)")
                t = conditions.loc[i, "temperature_K"]
                centers, phase = self.technique.line_positions(self.phases, [t])
                for k, (c, p) in enumerate(zip(centers[0], phase)):
                    if conditions.loc[i, self.fraction_fields[p]] > 0.01 and np.isfinite(c):
                        ax.axvline(c, ymax=0.06, color=colors[(p + 2) % len(colors)], lw=1)
            ax.set_title(titles[i] if i < len(titles) else "", fontsize=6)
            ax.tick_params(labelsize=5)
            ax.set_xlim(x[0], x[-1])
        if ref is not None:
            axes.flat[0].legend(fontsize=5, loc="upper right")
        axes.flat[0].set_xlabel(self.technique.axis.unit, fontsize=6)
        axes.flat[0].set_ylabel("counts", fontsize=6)
        fig.tight_layout()
        return fig


def xrd(**overrides) -> SpectrumModality:
    return SpectrumModality(technique="xrd", **overrides)


def raman(**overrides) -> SpectrumModality:
    return SpectrumModality(technique="raman", **overrides)
