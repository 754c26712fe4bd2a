"""genmat benchmarks (``make bench``): throughput, solver iterations, sampler quality vs
steps and the demo loop's hit rate, plus the 1-D spectra modalities (XRD and Raman oracle
and validator throughput, and the spectra loop's hit rate). Writes ``<out>/results.json``, ``<out>/results.md``
and PNG plots.

Speeds are ratios against a baseline measured side by side in the same process
(batched vs one at a time; CG vs the basic fixed point): each pair is warmed up, then
timed in alternating order, and the median of the repeats is reported. Absolute
seconds depend on the machine and on whatever else runs on it.

    python -m benchmarks.run                 # full run, ≈ 10 min on 2 CPU cores
    python -m benchmarks.run --quick         # seconds-long smoke version
    python -m benchmarks.run --device cuda --workdir runs/demo --out bench_results
    python -m benchmarks.run --spectra-workdir runs/raman   # the Raman loop's history instead of XRD's
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from benchmarks import report
from benchmarks.timing import measure, median, sync
from genmat.diffusion.samplers import network_evaluations

log = logging.getLogger("benchmarks")

METHODS = ("euler", "heun", "ddim")
STEPS = (1, 2, 4, 10, 20, 50)
GUIDANCE = 1.0  # the default SamplerConfig.guidance (docs/methods.md §7)
HISTORY_COLUMNS = (
    "iteration", "hit_rate", "simulator_calls", "simulator_calls_total", "simulator_calls_per_hit",
    "candidates_per_hit", "E_mape", "density_mape", "physics_pass_rate", "train_seconds",
)
#: The spectra loop's history.csv columns reported (those present are kept).
SPECTRA_HISTORY_COLUMNS = (
    "iteration", "hit_rate", "candidate_hit_rate", "physics_pass_rate", "fraction_mae", "fraction_mae_hits",
    "size_mape", "rwp_ratio_median", "simulator_calls_total", "n_train", "train_seconds",
)
#: 1-D spectra modalities whose oracle and validators are timed (genmat.modalities names).
SPECTRA_TECHNIQUES = ("xrd", "raman")
#: One processing condition for every simulator sample, batched or not (mid-range);
#: the quick run anneals at the low corner (τ = 60 instead of ≈ 290 time steps).
SIM_CONDITION = {"x_B": 0.5, "temperature_K": 825.0, "time_s": 3600.0}
QUICK_SIM_CONDITION = {"x_B": 0.5, "temperature_K": 750.0, "time_s": 1800.0}


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run; ``quick()`` is the seconds-long smoke version."""

    sim_batch: int = 256
    sim_condition: tuple[tuple[str, float], ...] = tuple(SIM_CONDITION.items())
    sim_loop: int = 16
    repeats: int = 5
    budget_s: float = 30.0  # timed seconds per side-by-side measurement before repeats stop (after the first)
    iter_samples: int = 64  # spinodal micrographs for the solver-iteration comparison
    sample_batch: int = 64
    methods: tuple[str, ...] = METHODS
    steps: tuple[int, ...] = STEPS
    sample_budget_s: float = 6.0  # timed seconds per sampler setting before repeats stop
    train_samples: int = 256  # fallback generator when the workdir has no checkpoint
    train_steps: int = 200
    train_batch: int = 32
    spectra_techniques: tuple[str, ...] = SPECTRA_TECHNIQUES  # sim_batch spectra batched vs sim_loop one at a time
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> "Settings":
        return cls(sim_batch=32, sim_loop=4, sim_condition=tuple(QUICK_SIM_CONDITION.items()), repeats=2, budget_s=3.0,
                   iter_samples=4, sample_batch=8, steps=(1, 2, 4), sample_budget_s=1.0, train_samples=16,
                   train_steps=3, train_batch=8, quick=True)


# ---------------------------------------------------------------------------- header
def machine_info(device: torch.device) -> dict:
    info = {
        "timestamp_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import genmat

        info["genmat"] = getattr(genmat, "__version__", None)
        root = Path(genmat.__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        info["git_commit"] = out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - the header is informative only
        info.setdefault("git_commit", None)
    return info


# ------------------------------------------------------------------------ simulator
def bench_simulator(s: Settings, device: torch.device) -> tuple[dict, torch.Tensor]:
    """Cahn–Hilliard samples/s: one call with B samples vs a Python loop of single calls."""
    from genmat.sim import CahnHilliardConfig, dimensionless_time, simulate_spinodal

    cfg = CahnHilliardConfig(grid=32, kappa=0.5)  # the demo's (SpinodalConfig)
    cond = dict(s.sim_condition)
    out: dict[str, torch.Tensor] = {}

    def batched() -> None:
        xb = torch.full((s.sim_batch,), cond["x_B"], dtype=torch.float64, device=device)
        out["c"] = simulate_spinodal(xb, cond["temperature_K"], cond["time_s"], cfg, seed=0, device=device)

    def one_at_a_time() -> None:
        for i in range(s.sim_loop):
            simulate_spinodal(cond["x_B"], cond["temperature_K"], cond["time_s"], cfg, seed=i, device=device)

    times = measure({"batched": batched, "loop": one_at_a_time}, device, repeats=s.repeats, budget_s=s.budget_s)
    tau = float(dimensionless_time(cond["temperature_K"], cond["time_s"], cfg)[0])
    res = {
        "config": {"grid": cfg.grid, "kappa": cfg.kappa, **cond, "tau": tau,
                   "time_steps": math.ceil(tau / cfg.dt_max - 1e-9)},
        "batch_size": s.sim_batch,
        "n_loop": s.sim_loop,
        "batched_seconds": times["batched"],
        "loop_seconds": times["loop"],
        "batched_samples_per_s": s.sim_batch / median(times["batched"]),
        "loop_samples_per_s": s.sim_loop / median(times["loop"]),
        "batched_samples_per_s_best": s.sim_batch / min(times["batched"]),
        "loop_samples_per_s_best": s.sim_loop / min(times["loop"]),
    }
    res["speedup"] = res["batched_samples_per_s"] / res["loop_samples_per_s"]
    res["speedup_best"] = res["batched_samples_per_s_best"] / res["loop_samples_per_s_best"]
    return res, out["c"]


# ------------------------------------------------------------------ homogenisation
def bench_homogenisation_throughput(s: Settings, device: torch.device, c: torch.Tensor) -> dict:
    """micrograph_properties samples/s on the simulator's batch vs one micrograph at a time."""
    from genmat.sim import micrograph_properties

    c = c.to(device)
    out: dict[str, dict] = {}

    def batched() -> None:
        out["props"] = micrograph_properties(c)

    def one_at_a_time() -> None:
        for i in range(s.sim_loop):
            micrograph_properties(c[i : i + 1])

    times = measure({"batched": batched, "loop": one_at_a_time}, device, repeats=s.repeats, budget_s=s.budget_s)
    iters = out["props"]["homogenisation_iterations"].double().cpu()
    res = {
        "batch_size": int(c.shape[0]),
        "n_loop": s.sim_loop,
        "batched_seconds": times["batched"],
        "loop_seconds": times["loop"],
        "batched_samples_per_s": c.shape[0] / median(times["batched"]),
        "loop_samples_per_s": s.sim_loop / median(times["loop"]),
        "batched_samples_per_s_best": c.shape[0] / min(times["batched"]),
        "loop_samples_per_s_best": s.sim_loop / min(times["loop"]),
        "iterations_mean": float(iters.mean()),
        "iterations_max": int(iters.max()),
    }
    res["speedup"] = res["batched_samples_per_s"] / res["loop_samples_per_s"]
    res["speedup_best"] = res["batched_samples_per_s_best"] / res["loop_samples_per_s_best"]
    return res


def _spinodal_phases(n: int, device: torch.device, seed: int = 7) -> torch.Tensor:
    """Phase maps of n spinodal micrographs over the whole processing box (demo config)."""
    from genmat.sim import PROCESSING_RANGES, CahnHilliardConfig, phase_map, simulate_spinodal

    rng = np.random.default_rng(seed)
    p = {k: torch.as_tensor(rng.uniform(*PROCESSING_RANGES[k], size=n), device=device) for k in PROCESSING_RANGES}
    c = simulate_spinodal(p["x_B"], p["temperature_K"], p["time_s"], CahnHilliardConfig(grid=32, kappa=0.5),
                          seed=seed, device=device)
    return phase_map(c)


def bench_solver_iterations(s: Settings, device: torch.device) -> list[dict]:
    """Iterations (and seconds) to converge: CG vs the basic Moulinec–Suquet fixed point,
    elastic and thermal, at the default and at a high phase contrast."""
    from genmat.sim import TwoPhaseMaterial, homogenise_conductivity, homogenise_elastic

    phase = _spinodal_phases(s.iter_samples, device)
    default = TwoPhaseMaterial()
    high = TwoPhaseMaterial(E_B_GPa=2000.0, k_B_W_mK=7000.0)
    cases = [
        ("elastic", "default", default),
        ("elastic", "high contrast", high),
        ("conductivity", "default", default),
        ("conductivity", "high contrast", high),
    ]
    rows = []
    for kind, label, mat in tqdm(cases, desc="homogenisation solvers", leave=False):
        if kind == "elastic":
            contrast = max(mat.E_B_GPa, mat.E_A_GPa) / min(mat.E_B_GPa, mat.E_A_GPa)
            runs = {sv: (lambda sv=sv: homogenise_elastic(phase, mat, solver=sv)) for sv in ("cg", "basic")}
        else:
            contrast = max(mat.k_B_W_mK, mat.k_A_W_mK) / min(mat.k_B_W_mK, mat.k_A_W_mK)
            runs = {sv: (lambda sv=sv: homogenise_conductivity(phase, mat.k_A_W_mK, mat.k_B_W_mK, solver=sv))
                    for sv in ("cg", "basic")}
        results = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            for sv, fn in runs.items():
                results[sv] = fn()
        times = measure(runs, device, repeats=s.repeats, warmup=0, budget_s=s.budget_s / 2)
        row = {"case": f"{kind}, {label} (×{contrast:.3g})", "kind": kind, "material": label,
               "contrast": contrast, "n_samples": int(phase.shape[0]),
               "non_converged_warnings": sum(issubclass(w.category, RuntimeWarning) for w in caught)}
        for sv, r in results.items():
            it = r.iterations.double().cpu()
            row[f"{sv}_iterations_mean"] = float(it.mean())
            row[f"{sv}_iterations_median"] = float(it.median())
            row[f"{sv}_iterations_max"] = int(it.max())
            row[f"{sv}_residual_max"] = float(r.residual.max())
            row[f"{sv}_seconds"] = median(times[sv])
        eff = {sv: (r.stiffness if kind == "elastic" else r.conductivity).double().cpu() for sv, r in results.items()}
        row["max_rel_difference"] = float(((eff["cg"] - eff["basic"]).abs().amax(dim=(1, 2))
                                           / eff["basic"].abs().amax(dim=(1, 2))).max())
        row["iteration_ratio"] = row["basic_iterations_mean"] / row["cg_iterations_mean"]
        row["time_ratio"] = row["basic_seconds"] / row["cg_seconds"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------- spectra
def _fail_reasons(checks: pd.DataFrame, passed: str, reason: str) -> dict[str, int]:
    """How often each reason was given for the failing rows (empty when all pass)."""
    if reason not in checks:
        return {}
    failed = ~checks[passed].astype(bool)
    return {str(k): int(v) for k, v in checks.loc[failed, reason].fillna("?").value_counts().items()}


def bench_spectra(s: Settings) -> dict:
    """Per technique: oracle spectra/s, one batched call of B vs a loop of single-spectrum
    calls (both through the modality), and validator spectra/s on the batched spectra with
    their pass rates on the simulator's own spectra (a calibration number: ≈ 1 expected).
    The spectra oracle and validators are NumPy: they run on the CPU whatever ``--device``."""
    from genmat.modalities import get_modality

    cpu = torch.device("cpu")
    rows = []
    for name in tqdm(s.spectra_techniques, desc="spectra simulators", leave=False):
        m = get_modality(name)
        frame = m.draw_processing(s.sim_batch, np.random.default_rng(0))
        singles = [frame.iloc[[i % len(frame)]].reset_index(drop=True) for i in range(s.sim_loop)]
        out: dict = {}

        def batched() -> None:
            out["x"], out["rows"] = m.simulate(frame, seed=0)

        def one_at_a_time() -> None:
            for i, one in enumerate(singles):
                m.simulate(one, seed=i)

        times = measure({"batched": batched, "loop": one_at_a_time}, cpu, repeats=s.repeats, budget_s=s.budget_s)
        x = out["x"]

        def physics() -> None:
            out["physics"] = m.physics_checks(x, frame)

        def simulator() -> None:
            out["simulator"] = m.simulator_checks(x, frame)

        vtimes = measure({"physics": physics, "simulator": simulator}, cpu, repeats=s.repeats,
                         budget_s=s.budget_s)
        phys, simc = out["physics"], out["simulator"]
        axis = m.technique.axis
        n = int(x.shape[0])
        res = {
            "technique": name,
            "simulator_version": m.simulator_settings().get("version"),
            "phases": list(m.phases),
            "axis": {"start": float(axis.start), "stop": float(axis.stop), "n": int(axis.n), "unit": axis.unit},
            "sample_shape": list(x.shape[1:]),
            "batch_size": n,
            "n_loop": s.sim_loop,
            "batched_seconds": times["batched"],
            "loop_seconds": times["loop"],
            "batched_spectra_per_s": n / median(times["batched"]),
            "loop_spectra_per_s": s.sim_loop / median(times["loop"]),
            "batched_spectra_per_s_best": n / min(times["batched"]),
            "loop_spectra_per_s_best": s.sim_loop / min(times["loop"]),
            "physics_checks_seconds": vtimes["physics"],
            "simulator_checks_seconds": vtimes["simulator"],
            "physics_checks_spectra_per_s": n / median(vtimes["physics"]),
            "simulator_checks_spectra_per_s": n / median(vtimes["simulator"]),
            "physics_pass_rate": float(phys["physics_pass"].mean()),
            "simulator_pass_rate": float(simc["sim_pass"].mean()),
            "physics_fail_reasons": _fail_reasons(phys, "physics_pass", "physics_reason"),
            "simulator_fail_reasons": _fail_reasons(simc, "sim_pass", "sim_reason"),
            "fraction_abs_err_median": float(np.nanmedian(simc["fraction_abs_err"].to_numpy(float)))
            if "fraction_abs_err" in simc else None,
            "rwp_ratio_median": float(np.nanmedian(simc["rwp_ratio"].to_numpy(float))) if "rwp_ratio" in simc else None,
        }
        res["speedup"] = res["batched_spectra_per_s"] / res["loop_spectra_per_s"]
        res["speedup_best"] = res["batched_spectra_per_s_best"] / res["loop_spectra_per_s_best"]
        rows.append(res)
    return {
        "batch_size": s.sim_batch,
        "n_loop": s.sim_loop,
        "conditions": "modality.draw_processing(B, np.random.default_rng(0)); the loop simulates the first "
        "n_loop of them one per call (seed i); validators check the batched spectra against their own conditions",
        "device": "cpu (NumPy oracle and validators)",
        "rows": rows,
    }


# ----------------------------------------------------------------------- sampling
def _newest_checkpoint(workdir: Path) -> Path | None:
    found = sorted(Path(workdir).glob("iter_*/model.ckpt"))
    return found[-1] if found else None


def _train_tiny(s: Settings, device: torch.device, tmp: Path) -> Path:
    """A small generator trained for timing only (the quality numbers then mean little)."""
    from genmat.loop.closed_loop import default_generator
    from genmat.loop.steps import SimulateParams, TrainParams, simulate_step, train_step
    from genmat.train import TrainConfig

    dataset, ckpt = tmp / "dataset", tmp / "model.ckpt"
    log.info("no checkpoint in the workdir: simulating %d samples and training %d steps in %s",
             s.train_samples, s.train_steps, tmp)
    simulate_step(SimulateParams(dataset=dataset, n=s.train_samples, seed=0), progress=False)
    train = TrainConfig(steps=s.train_steps, batch_size=s.train_batch, warmup_steps=min(100, max(1, s.train_steps // 5)),
                        checkpoint_every=max(s.train_steps, 1), log_every=max(1, min(25, s.train_steps)),
                        device=str(device))
    train_step(TrainParams(dataset=dataset, checkpoint=ckpt, generator=default_generator(), train=train),
               progress=not s.quick)
    return ckpt


def bench_sampling(s: Settings, device: torch.device, workdir: Path) -> dict:
    """Seconds/sample, network evaluations and physics-check quality against solver steps."""
    from genmat.generate import Generator, SamplerConfig
    from genmat.loop.targets import held_out_targets
    from genmat.modalities import get_modality

    modality = get_modality("spinodal")
    ckpt = _newest_checkpoint(workdir)
    source = "workdir"
    with tempfile.TemporaryDirectory(prefix="genmat-bench-") as tmp:
        if ckpt is None:
            t0 = time.perf_counter()
            ckpt = _train_tiny(s, device, Path(tmp))
            source = (f"trained here: {s.train_samples} samples, {s.train_steps} steps of batch {s.train_batch}, "
                      f"{time.perf_counter() - t0:.0f} s")
        g = Generator.from_checkpoint(ckpt, device=device)
        ckpt_label = str(ckpt) if source == "workdir" else "temporary checkpoint"
    targets, _ = held_out_targets(modality, s.sample_batch, seed=20240)
    conditions = targets[list(modality.target_fields)].reset_index(drop=True)
    values, mask = g.schema.encode(conditions)

    net = getattr(g.model, "net", g.model)
    calls = {"n": 0, "rows": 0}

    def count(_module, args):
        calls["n"] += 1
        calls["rows"] += int(args[0].shape[0])

    handle = net.register_forward_pre_hook(count)
    rows = []
    configs = [(m, st) for m in s.methods for st in s.steps]
    try:
        for method in s.methods:  # warm-up: one 1-step run per method
            g.sample(values, mask, sampler=SamplerConfig(steps=1, method=method, guidance=GUIDANCE),
                     batch_size=s.sample_batch)
        sync(device)
        for method, steps in tqdm(configs, desc="sampler sweep", leave=False):
            sampler = SamplerConfig(steps=steps, method=method, guidance=GUIDANCE)
            out: dict[str, torch.Tensor] = {}

            def run() -> None:
                calls["n"] = calls["rows"] = 0
                out["x"] = g.sample(values, mask, sampler=sampler, seed=0, batch_size=s.sample_batch)

            times = measure({"run": run}, device, repeats=s.repeats, warmup=0, budget_s=s.sample_budget_s)
            checks = modality.physics_checks(out["x"], conditions)
            nfe_formula = network_evaluations(method, steps)
            sec = median(times["run"])
            rows.append({
                "method": method,
                "steps": steps,
                "network_evals": calls["n"],
                "network_evals_formula": nfe_formula,
                "net_batch": calls["rows"] // max(1, calls["n"]),
                "seconds_per_sample": sec / s.sample_batch,
                "samples_per_s": s.sample_batch / sec,
                "ms_per_network_eval": 1e3 * sec / max(1, calls["n"]),
                "repeats": len(times["run"]),
                "physics_pass_rate": float(checks["physics_pass"].mean()),
                "two_phase_pass_rate": float(checks["two_phase_pass"].mean()) if "two_phase_pass" in checks else None,
                "vf_pass_rate": float(checks["vf_pass"].mean()) if "vf_pass" in checks else None,
                "vf_abs_error_mean": float(np.nanmean(np.abs(checks["vf_error"].to_numpy(dtype=float)))),
            })
    finally:
        handle.remove()
    return {
        "checkpoint": ckpt_label,
        "checkpoint_source": source,
        "generator_step": g.step,
        "n_parameters": g.n_parameters,
        "batch_size": s.sample_batch,
        "guidance": GUIDANCE,
        "targets": "held-out simulated property vectors (E_GPa, density_g_cm3), genmat.loop.targets, seed 20240",
        "rows": rows,
    }


# ---------------------------------------------------------------------- demo loop
def read_history(workdir: Path, columns: Sequence[str] = HISTORY_COLUMNS) -> dict:
    """``<workdir>/history.csv`` of a closed loop, restricted to ``columns`` (those present)."""
    path = Path(workdir) / "history.csv"
    if not path.exists():
        return {"available": False, "path": str(path), "rows": []}
    df = pd.read_csv(path)
    cols = [c for c in columns if c in df.columns]
    rows = json.loads(df[cols].to_json(orient="records"))
    return {"available": True, "path": str(path), "columns": cols, "rows": rows}


def read_spectra_history(workdir: Path) -> dict:
    """A spectra loop's history (``genmat loop --modality xrd|raman``)."""
    return read_history(workdir, SPECTRA_HISTORY_COLUMNS)


# ------------------------------------------------------------------------ writing
def _history_section(title: str, hist: dict, picture: str, missing: str) -> list[str]:
    """Markdown lines of a loop's per-iteration table (or what to run when it is missing)."""
    if not hist["available"]:
        return [title, "", f"No `{hist['path']}`: {missing}", ""]
    return [title, "", f"From `{hist['path']}`:", "", report.table(hist["rows"], hist["columns"]), "", picture, ""]


def write_markdown(results: dict, out: Path) -> Path:
    m = results["machine"]
    lines = [
        "# genmat benchmarks" + (" (quick smoke run)" if results["quick"] else ""),
        "",
        f"- when: {m['timestamp_utc']}; took {results['total_seconds']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in results["section_seconds"].items()) + ")",
        f"- machine: {m['cpu_count']} CPU cores (torch threads {m['torch_threads']}, 1-min load average "
        f"{report.fmt(m['load_average_1min'])} at the start, {report.fmt(results.get('load_average_1min_end'))} "
        f"at the end), {m['platform']}, Python {m['python']}",
        f"- torch {m['torch']}, device **{m['device']}**" + (f" ({m['cuda_device']})" if m["cuda_device"] else "")
        + f"; genmat commit {m.get('git_commit') or '–'}",
        "",
        "Speeds are ratios against a baseline timed side by side in the same process (warm-up, "
        "alternating order, median of the repeats; repeats stop early once a measurement has used its time "
        "budget). Absolute seconds depend on the machine and on its load: many small calls (one sample at a "
        "time) suffer far more than batched ones when other processes compete for the cores.",
        "",
    ]

    sim = results["simulator"]
    c = sim["config"]
    lines += [
        "## 1. Simulator throughput (Cahn–Hilliard)",
        "",
        f"grid {c['grid']}, κ = {c['kappa']}; every sample at x_B = {c['x_B']}, T = {c['temperature_K']} K, "
        f"t = {c['time_s']} s (τ = {c['tau']:.0f}, {c['time_steps']} time steps).",
        "",
    ]
    hom = results["homogenisation"]
    tp = [
        {"what": "simulate_spinodal", "loop": f"{sim['n_loop']} × B=1", "batched": f"B={sim['batch_size']}",
         "loop_sps": sim["loop_samples_per_s"], "batched_sps": sim["batched_samples_per_s"], "ratio": sim["speedup"],
         "best": sim["speedup_best"], "n": len(sim["batched_seconds"])},
        {"what": "micrograph_properties", "loop": f"{hom['n_loop']} × B=1", "batched": f"B={hom['batch_size']}",
         "loop_sps": hom["loop_samples_per_s"], "batched_sps": hom["batched_samples_per_s"], "ratio": hom["speedup"],
         "best": hom["speedup_best"], "n": len(hom["batched_seconds"])},
    ]
    cols = ["what", "loop", "loop_sps", "batched", "batched_sps", "ratio", "best", "n"]
    heads = ["", "one at a time", "samples/s", "batched", "samples/s", "speed-up (batched / one at a time)",
             "speed-up, best of each", "repeats"]
    lines += [report.table(tp[:1], cols, heads), "", "![throughput](throughput.png)", ""]

    lines += [
        "## 2. Homogenisation",
        "",
        "Throughput of `micrograph_properties` (elastic + thermal CG, density) on the micrographs of §1 "
        f"(batched: all solved together, so the batch runs until its slowest sample converges; mean "
        f"{hom['iterations_mean']:.1f}, max {hom['iterations_max']} iterations elastic + thermal):",
        "",
        report.table(tp[1:], cols, heads),
        "",
        f"Iterations to the equilibrium tolerance (1e-4) on {results['solvers'][0]['n_samples']} spinodal "
        "micrographs drawn over the whole processing box; high contrast = `TwoPhaseMaterial(E_B_GPa=2000, "
        "k_B_W_mK=7000)`:",
        "",
        report.table(
            results["solvers"],
            ["case", "basic_iterations_mean", "basic_iterations_max", "cg_iterations_mean", "cg_iterations_max",
             "iteration_ratio", "basic_seconds", "cg_seconds", "time_ratio", "max_rel_difference"],
            ["case (contrast)", "basic: mean it.", "basic: max", "CG: mean it.", "CG: max", "iterations basic/CG",
             "basic s", "CG s", "time basic/CG", "max rel. diff CG vs basic"],
        ),
        "",
        "![iterations](homogenisation_iterations.png)",
        "",
    ]

    smp = results["sampling"]
    lines += [
        "## 3. Sampling time and quality vs steps",
        "",
        f"Generator: {smp['checkpoint']} ({smp['checkpoint_source']}; {smp['n_parameters']:,} parameters, "
        f"{smp['generator_step']} training steps). Batch of {smp['batch_size']} conditioned on {smp['targets']}; "
        f"classifier-free guidance w = {smp['guidance']} "
        + ("(the plain conditional model: one branch, net batch = batch). " if smp["guidance"] == 1 else
           "(conditional and unconditional branches in one batch, hence net batch = 2 × batch). ")
        + "Network evaluations are counted with a hook on the network "
        "(formula: euler/ddim = steps, heun = 2·steps − 1). Quality: the spinodal modality's physics checks "
        "against the targets (vf error = |φ − φ implied by the target density|).",
        "",
        report.table(
            smp["rows"],
            ["method", "steps", "network_evals", "net_batch", "seconds_per_sample", "samples_per_s",
             "ms_per_network_eval", "physics_pass_rate", "two_phase_pass_rate", "vf_pass_rate", "vf_abs_error_mean"],
            ["method", "steps", "network evals", "net batch", "s / sample", "samples / s", "ms / eval", "physics pass",
             "two-phase pass", "vf pass", "mean abs vf error"],
        ),
        "",
        "![sampling](sampling_vs_steps.png)",
        "",
    ]

    lines += _history_section("## 4. Demo loop hit rate per iteration", results["loop"],
                              "![hit rate](loop_hit_rate.png)",
                              "run `make demo` first (or pass `--workdir` of a finished loop).")

    spec = results["spectra_simulator"]
    lines += [
        "## 5. Spectra simulator throughput (XRD, Raman)",
        "",
        f"Oracle spectra/s through the modality (`get_modality(name).simulate`): one batched call of "
        f"B = {spec['batch_size']} spectra vs a Python loop of {spec['n_loop']} single-spectrum calls; "
        f"conditions: {spec['conditions']}. Validators (`physics_checks`, `simulator_checks`) timed on the "
        f"batched spectra; their pass rates on the simulator's own spectra calibrate the checks (≈ 1 expected). "
        f"Device: {spec['device']}.",
        "",
    ]
    srows = [{**r, "pass_physics": r["physics_pass_rate"], "pass_sim": r["simulator_pass_rate"]} for r in spec["rows"]]
    lines += [
        report.table(
            srows,
            ["technique", "batched_spectra_per_s", "loop_spectra_per_s", "speedup", "speedup_best",
             "physics_checks_spectra_per_s", "simulator_checks_spectra_per_s", "pass_physics", "pass_sim"],
            ["technique", f"batched spectra/s (B={spec['batch_size']})",
             f"one-at-a-time spectra/s ({spec['n_loop']} × B=1)", "speed-up (batched / one at a time)",
             "speed-up, best of each", "physics checks spectra/s", "simulator checks spectra/s",
             "pass rate of simulator spectra: physics checks", "pass rate of simulator spectra: simulator check"],
        ),
        "",
        "Oracle settings and calibration details:",
        "",
        report.table(
            [{"technique": r["technique"], "version": r["simulator_version"],
              "axis": f"{r['axis']['start']:g}–{r['axis']['stop']:g} {r['axis']['unit']}", "n": r["axis"]["n"],
              "phases": ", ".join(r["phases"]), "repeats": len(r["batched_seconds"]),
              "frac_err": r["fraction_abs_err_median"], "rwp": r["rwp_ratio_median"],
              "fails": "; ".join(f"{k} ×{v}" for k, v in {**r["physics_fail_reasons"],
                                                          **r["simulator_fail_reasons"]}.items()) or "none"}
             for r in spec["rows"]],
            ["technique", "version", "axis", "n", "phases", "repeats", "frac_err", "rwp", "fails"],
            ["technique", "oracle", "axis", "points", "phases", "repeats", "median abs Δw (simulator check)",
             "median Rwp/Rexp", "failure reasons on own spectra"],
        ),
        "",
        "![spectra throughput](spectra_throughput.png)",
        "",
    ]

    lines += _history_section("## 6. Spectra loop hit rate per iteration", results["spectra_loop"],
                              "![spectra loop hit rate](spectra_loop_hit_rate.png)",
                              "run `make demo-xrd` (or `make demo-raman`) first, or pass `--spectra-workdir` of a "
                              "finished spectra loop.")

    path = out / "results.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path


def write_json(results: dict, out: Path, name: str = "results.json") -> Path:
    """``out/name``, written whole or not at all."""
    path = out / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=_jsonable))
    tmp.replace(path)
    return path


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (Path, torch.device)):
        return str(o)
    return str(o)


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="genmat benchmarks: simulator and homogenisation throughput (batched vs one at a time), "
        "CG vs basic FFT solver iterations, sampling time and physics-check quality vs solver steps, and "
        "the demo loop's hit rate per iteration; XRD/Raman oracle and validator throughput and the spectra "
        "loop's hit rate per iteration. Writes results.json, results.md and PNG plots.",
    )
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder (default: bench_results)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke version with tiny sizes")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = CUDA when present, else CPU (default: auto)")
    p.add_argument("--workdir", type=Path, default=Path("runs/demo"),
                   help="a demo loop's workdir: its newest iter_*/model.ckpt and history.csv are read "
                   "(default: runs/demo)")
    p.add_argument("--spectra-workdir", type=Path, default=Path("runs/xrd"),
                   help="a spectra loop's workdir (genmat loop --modality xrd|raman): its history.csv is read "
                   "(default: runs/xrd)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 3; quick 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available here")
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats={args.repeats}: allowed range is >= 1")
    return args


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    setup_logging(args.verbose)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    s = Settings.quick_settings() if args.quick else Settings()
    if args.repeats is not None:
        s = replace(s, repeats=args.repeats)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results: dict = {"quick": s.quick, "machine": machine_info(device), "settings": asdict(s)}
    log.info("benchmarks on %s (%s cores, torch %s)%s -> %s", device, os.cpu_count(), torch.__version__,
             " [quick]" if s.quick else "", out)

    seconds: dict[str, float] = {}
    sections = tqdm(total=6, desc="benchmarks", unit="section")

    def timed(name: str, fn):
        t0 = time.perf_counter()
        value = fn()
        seconds[name] = time.perf_counter() - t0
        sections.update()
        return value

    log.info("1/6 simulator throughput: B=%d vs %d one at a time", s.sim_batch, s.sim_loop)
    results["simulator"], micrographs = timed("simulator", lambda: bench_simulator(s, device))

    log.info("2/6 homogenisation: throughput and CG vs basic iterations")
    results["homogenisation"], results["solvers"] = timed("homogenisation", lambda: (
        bench_homogenisation_throughput(s, device, micrographs), bench_solver_iterations(s, device)))

    log.info("3/6 sampling time and quality vs steps (%s × %s)", ",".join(s.methods), list(s.steps))
    results["sampling"] = timed("sampling", lambda: bench_sampling(s, device, args.workdir))

    log.info("4/6 demo loop history from %s", args.workdir)
    results["loop"] = timed("loop", lambda: read_history(args.workdir))

    log.info("5/6 spectra simulator throughput (%s): B=%d vs %d one at a time, and validators",
             ",".join(s.spectra_techniques), s.sim_batch, s.sim_loop)
    results["spectra_simulator"] = timed("spectra_simulator", lambda: bench_spectra(s))

    log.info("6/6 spectra loop history from %s", args.spectra_workdir)
    results["spectra_loop"] = timed("spectra_loop", lambda: read_spectra_history(args.spectra_workdir))
    sections.close()
    results["section_seconds"] = seconds
    results["load_average_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    plots = [
        report.throughput_plot(results["simulator"], results["homogenisation"], out / "throughput.png"),
        report.iterations_plot(results["solvers"], out / "homogenisation_iterations.png"),
        report.sampling_plot(results["sampling"]["rows"], out / "sampling_vs_steps.png"),
    ]
    if results["loop"]["available"] and results["loop"]["rows"]:
        plots.append(report.hit_rate_plot(results["loop"]["rows"], out / "loop_hit_rate.png"))
    plots.append(report.spectra_throughput_plot(results["spectra_simulator"]["rows"], out / "spectra_throughput.png"))
    if results["spectra_loop"]["available"] and results["spectra_loop"]["rows"]:
        plots.append(report.spectra_hit_rate_plot(results["spectra_loop"]["rows"], out / "spectra_loop_hit_rate.png",
                                                  title=f"spectra loop ({Path(args.spectra_workdir).name})"))
    results["plots"] = [p.name for p in plots]
    results["total_seconds"] = time.perf_counter() - t_start
    write_json(results, out)
    md = write_markdown(results, out)
    log.info("wrote %s, %s and %d plots in %.0f s", out / "results.json", md, len(plots), results["total_seconds"])
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
