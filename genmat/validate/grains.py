"""Validators of grain micrographs (orientation fields (B, 2, N, N), genmat.sim.grains).

Physics checks (is it a grain structure, and does it agree with its processing?):

- ``finite_pass``, ``range_pass``: finite values, |u| ≤ ``max_abs``;
- ``norm_pass``: an orientation field has unit vectors: mean | |u| − 1 | ≤ ``norm_tol``;
- ``grains_pass``: at least ``min_grains`` grains (closed boundaries by construction: grains
  are the connected regions of one orientation);
- ``isolated_pass``: at most ``max_dust_fraction`` of the pixels lie in fragments too small
  to be grains (isolated pixels, an unresolved boundary rim; cleaned up before measuring);
- ``size_distribution_pass``: the coefficient of variation of grain areas in
  ``area_cv_range`` (a Poisson–Voronoi tessellation has ≈ 0.53, grown structures ≈ 0.6–0.9,
  a log-normal-like spread; a single blob or dust fails);
- ``process_pass`` (where the processing is given): the mean lineal intercept within a band
  of what the oracle makes from that processing (the mean of ``n_reference`` simulations) —
  the cooling-rate → grain-size relation of the simulator. The band is the process's own
  scatter, max(``process_rel``, 3 · 0.7 / √n) for n grains in the cell.

Simulator check: the measured grain size (mean lineal intercept, µm) and Hall–Petch yield
strength against the targets, relative tolerances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from genmat.sim import grains as sim_grains
from genmat.validate.micrograph import ValidateInputError
from genmat.validate.simulator import score_targets

#: target column -> (short name, the measurement's key)
GRAIN_TARGETS = {"grain_size_um": ("size", "grain_size_um"), "yield_strength_MPa": ("strength", "yield_strength_MPa")}
VALIDITY_COLUMNS = ("finite_pass", "range_pass", "norm_pass", "grains_pass", "isolated_pass", "size_distribution_pass")


@dataclass(frozen=True)
class GrainChecks:
    max_abs: float = 1.5
    norm_tol: float = 0.25
    min_grains: int = 3
    max_dust_fraction: float = 0.05
    area_cv_range: tuple[float, float] = (0.1, 1.6)
    # the grain size of one recipe scatters from run to run by ≈ c/√n (n grains in the cell;
    # c = 0.34–0.70 measured over 16 seeds of six recipes at 64²): the band is
    # max(process_rel, process_sigmas · count_cv / √n)
    process_rel: float = 0.2
    process_sigmas: float = 3.0
    count_cv: float = 0.7
    n_reference: int = 2


@dataclass(frozen=True)
class GrainTolerances:
    """Relative tolerances of the simulator check."""

    size_rel: float = 0.10
    strength_rel: float = 0.03

    def __post_init__(self) -> None:
        for name in ("size_rel", "strength_rel"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValidateInputError(name, v, "a finite number >= 0")

    def of(self, prop: str) -> float:
        return getattr(self, f"{prop}_rel")


def _fields(samples) -> torch.Tensor:
    x = torch.as_tensor(samples)
    if x.ndim != 4 or x.shape[1] != 2:
        raise ValidateInputError("samples", tuple(x.shape), "(B, 2, N, N) orientation fields")
    return x


def reference_sizes(processing: pd.DataFrame, config: sim_grains.GrainConfig, n_ref: int = 2,
                    seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Mean grain size (µm) and mean grain count of ``n_ref`` oracle runs per processing row
    (rows without every processing field: NaN)."""
    names = list(sim_grains.GRAIN_PROCESSING_RANGES)
    size, count = np.full(len(processing), np.nan), np.full(len(processing), np.nan)
    given = processing[names].notna().all(axis=1).to_numpy()
    if not given.any():
        return size, count
    rows = processing.loc[given, names].to_numpy(float)
    rep = np.repeat(rows, n_ref, axis=0)
    m = sim_grains.measure_grains(sim_grains.simulate_grains(rep[:, 0], rep[:, 1], rep[:, 2], config, seed=seed),
                                  config)
    size[given] = m["grain_size_um"].reshape(-1, n_ref).mean(1)
    count[given] = m["n_grains"].reshape(-1, n_ref).mean(1)
    return size, count


def grain_physics_checks(samples, conditions: pd.DataFrame, config: sim_grains.GrainConfig,
                         checks: GrainChecks = GrainChecks()) -> pd.DataFrame:
    """One row per sample (module docstring): the measurements, a pass column per check,
    ``physics_pass``, ``physics_reason`` (why it is not a grain structure) and
    ``condition_reason`` (how it disagrees with its processing)."""
    x = _fields(samples)
    conditions = conditions.reset_index(drop=True)
    if len(conditions) != x.shape[0]:
        raise ValidateInputError("conditions", f"{len(conditions)} rows", f"{x.shape[0]} rows, one per sample")
    finite = torch.isfinite(x).flatten(1).all(1).numpy()
    clean = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    max_abs = clean.abs().flatten(1).amax(1).numpy()
    m = sim_grains.measure_grains(clean, config)
    frame = pd.DataFrame({
        "finite_pass": finite,
        "max_abs": max_abs,
        "range_pass": finite & (max_abs <= checks.max_abs),
        "norm_error": m["orientation_norm_error"],
        "n_grains": m["n_grains"],
        "dust_fraction": m["dust_fraction"],
        "area_cv": m["area_cv"],
        "grain_size_um": m["grain_size_um"],
    })
    frame["norm_pass"] = finite & (frame["norm_error"] <= checks.norm_tol)
    frame["grains_pass"] = frame["n_grains"] >= checks.min_grains
    frame["isolated_pass"] = frame["dust_fraction"] <= checks.max_dust_fraction
    lo, hi = checks.area_cv_range
    frame["size_distribution_pass"] = frame["area_cv"].between(lo, hi) | (frame["n_grains"] < checks.min_grains)
    names = list(sim_grains.GRAIN_PROCESSING_RANGES)
    if set(names) <= set(conditions.columns):
        ref, count = reference_sizes(conditions, config, checks.n_reference)
    else:
        ref = count = np.full(len(frame), np.nan)
    frame["ref_grain_size_um"] = ref
    frame["process_band"] = np.maximum(checks.process_rel, checks.process_sigmas * checks.count_cv / np.sqrt(count))
    frame["process_rel_err"] = (frame["grain_size_um"] - ref) / ref
    frame["process_pass"] = np.where(np.isfinite(ref), frame["process_rel_err"].abs() <= frame["process_band"], True)
    frame["physics_pass"] = frame[[*VALIDITY_COLUMNS, "process_pass"]].all(axis=1)
    frame["physics_reason"] = [_invalid_reason(r, checks) for r in frame.itertuples()]
    frame["condition_reason"] = [
        "" if r.process_pass else (f"grain size {r.grain_size_um:.1f} µm is {r.process_rel_err:+.0%} from the "
                                   f"{r.ref_grain_size_um:.1f} µm its processing makes (±{r.process_band:.0%})")
        for r in frame.itertuples()]
    frame.attrs.update({"validity_columns": VALIDITY_COLUMNS,
                        "summary_means": {"process_size_mape": ("process_rel_err", True)}})
    return frame


def _invalid_reason(r, checks: GrainChecks) -> str:
    out = []
    if not r.finite_pass:
        out.append("non-finite values")
    elif not r.range_pass:
        out.append(f"|u| reaches {r.max_abs:.2f} > {checks.max_abs:g}")
    if r.finite_pass and not r.norm_pass:
        out.append(f"not an orientation field (mean | |u| − 1 | = {r.norm_error:.2f} > {checks.norm_tol:g})")
    if not r.grains_pass:
        out.append(f"{int(r.n_grains)} grain(s) < {checks.min_grains}")
    if not r.isolated_pass:
        out.append(f"{r.dust_fraction:.0%} of the pixels are fragments too small to be grains")
    if not r.size_distribution_pass:
        out.append(f"grain-area spread CV {r.area_cv:.2f} outside {checks.area_cv_range}")
    return "; ".join(out)


def grain_simulator_check(samples, targets: pd.DataFrame, config: sim_grains.GrainConfig,
                          tolerances: GrainTolerances = GrainTolerances()) -> pd.DataFrame:
    """Measured grain size and yield strength against the targets (NaN or missing column = not
    targeted). Columns: ``sim_grain_size_um``, ``sim_yield_strength_MPa``, ``sim_astm_G``,
    ``sim_n_grains``; per target column C (short name P): ``target_C``, ``P_rel_err``,
    ``P_pass``; ``n_targets``, ``sim_pass`` (something targeted and everything within
    tolerance), ``sim_reason``, ``sim_note``."""
    x = _fields(samples)
    targets = targets.reset_index(drop=True)
    if len(targets) != x.shape[0]:
        raise ValidateInputError("targets", f"{len(targets)} rows", f"{x.shape[0]} rows, one per sample")
    if not bool(torch.isfinite(x).all()):
        raise ValidateInputError("samples", "non-finite values", "finite values (run the physics checks first)")
    m = sim_grains.measure_grains(x, config)
    frame = pd.DataFrame({"sim_grain_size_um": m["grain_size_um"], "sim_yield_strength_MPa": m["yield_strength_MPa"],
                          "sim_astm_G": m["astm_G"], "sim_n_grains": m["n_grains"]})
    score_targets(frame, targets, [(prop, col, key) for col, (prop, key) in GRAIN_TARGETS.items()], tolerances)
    reasons = [[(f"{col} {row[f'sim_{key}']:.4g} vs {row[f'target_{col}']:.4g} ({row[f'{prop}_rel_err']:+.1%}, "
                 f"±{tolerances.of(prop):.0%})", bool(row[f"{prop}_pass"]))
                for col, (prop, key) in GRAIN_TARGETS.items() if np.isfinite(row[f"target_{col}"])]
               for _, row in frame.iterrows()]
    frame["sim_reason"] = ["; ".join(t for t, p in r if not p) for r in reasons]
    frame["sim_note"] = ["; ".join(t for t, p in r if p) for r in reasons]
    frame.attrs.update({"tolerances": tolerances, "target_columns": tuple(GRAIN_TARGETS),
                        "properties": {prop: col for col, (prop, _) in GRAIN_TARGETS.items()}})
    return frame
