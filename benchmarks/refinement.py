"""Full-profile refinement of spectra through the differentiable forward model: how well do
fractions, crystallite size, microstrain and temperature come back from one noisy spectrum?

    python -m benchmarks.refinement --out bench_results [--n 32] [--seed 0]

For XRD and Raman, ``--n`` random conditions of the spectra modalities' demo (anatase,
rutile, ZnO; the modality's size, strain and temperature ranges) are simulated with Poisson
noise and a random background, then refined knowing only the ranges
(:func:`genmat.sim.refine_conditions`). Reported: the median and 90th-percentile errors,
R_wp / R_exp, and seconds per spectrum; and, for comparison, the simulator check's NNLS
fractions at the mid-range state (what the check does when a target leaves the state out).
Writes refinement.json and refinement.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("benchmarks.refinement")


def measure(technique: str, n: int, seed: int) -> dict:
    from genmat import sim
    from genmat.modalities import get_modality
    from genmat.validate.spectrum import condition_state

    mod = get_modality(technique)
    cond = mod.draw_processing(n, np.random.default_rng(seed))
    x, _ = mod.simulate(cond, seed=seed + 1)
    y = mod.counts(x)
    c = mod.config
    bounds = {"size_nm": c.size_range, "strain": c.strain_range, "temperature_K": c.temperature_range}
    t0 = time.perf_counter()
    r = sim.refine_conditions(mod.technique, mod.phases, y, bounds)
    seconds = (time.perf_counter() - t0) / n
    truth = cond[list(mod.fraction_fields)].to_numpy(float)
    frac_err = np.abs(r.fractions - truth).max(1)
    # the simulator check's fractions when the state is not given: NNLS at the mid-range state
    lines = mod.technique.lines(mod.phases, **condition_state(pd.DataFrame(index=range(n)), n, c.checks, "mid"))
    mid = sim.fit_phases(y, lines.patterns(mod.technique.axis, mod.technique.eta),
                         sim.background_basis(mod.technique.axis)).fractions
    mid_err = np.abs(np.nan_to_num(mid) - truth).max(1)
    errs = {
        "fraction_abs_err": frac_err,
        "fraction_abs_err_mid_state_nnls": mid_err,
        "size_rel_err": np.abs(r.size_nm / cond["size_nm"].to_numpy() - 1),
        "strain_abs_err": np.abs(r.strain - cond["strain"].to_numpy()),
        "temperature_abs_err_K": np.abs(r.temperature_K - cond["temperature_K"].to_numpy()),
        "rwp_over_rexp": r.rwp / r.rexp,
    }
    out = {"technique": technique, "spectra": n, "seconds_per_spectrum": seconds}
    for k, v in errs.items():
        out[f"{k}_median"] = float(np.median(v))
        out[f"{k}_p90"] = float(np.quantile(v, 0.9))
    return out


def markdown(rows: list[dict]) -> str:
    cols = ["technique", "spectra", "fraction_abs_err_median", "fraction_abs_err_p90",
            "fraction_abs_err_mid_state_nnls_median", "size_rel_err_median", "size_rel_err_p90",
            "strain_abs_err_median", "temperature_abs_err_K_median", "temperature_abs_err_K_p90",
            "rwp_over_rexp_median", "seconds_per_spectrum"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for refinement.json/.md")
    ap.add_argument("--n", type=int, default=32, help="spectra per technique")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--techniques", nargs="+", default=["xrd", "raman"], choices=["xrd", "raman"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = [measure(t, args.n, args.seed) for t in args.techniques]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "refinement.json").write_text(json.dumps(rows, indent=1))
    (args.out / "refinement.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
