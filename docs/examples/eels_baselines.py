"""Baselines for the EELS demo (docs/eels.md): what a scientist could do instead of the loop,
checked by the same simulator check on the demo's 12 held-out targets.

    python docs/examples/eels_baselines.py --workdir runs/eels      # after `make demo-eels`

- lookup: the nearest of the loop's 256 initial training spectra, by condition (0 new calls);
- random library: the nearest of N fresh simulations at random conditions, N = the loop's
  whole oracle budget (its history's last ``simulator_calls_total``);
- direct: one simulation at each target's own condition (every field here is an oracle input).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("runs/eels"), help="a finished `genmat loop --modality eels`")
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)

    from genmat.data import DatasetStore
    from genmat.modalities import get_modality

    m = get_modality("eels")
    store = DatasetStore.open(args.workdir / "dataset")
    table = store.table()
    targets = pd.read_parquet(args.workdir / "targets.parquet")[list(m.target_fields)]
    budget = int(pd.read_csv(args.workdir / "history.csv")["simulator_calls_total"].iloc[-1])
    scale = np.array([1.0] * len(m.fraction_fields) + [1.0 / (m.config.t_range[1] - m.config.t_range[0])])

    def nearest(conditions: np.ndarray) -> list[int]:
        return [int(np.argmin((((conditions - t) * scale) ** 2).sum(1))) for t in targets.to_numpy(float)]

    def score(name, samples, calls):
        checked = m.simulator_checks(samples, targets)
        row = {"baseline": name, "targets_hit": int(checked["sim_pass"].sum()), "targets": len(targets),
               "oracle_calls": calls, "fraction_mae": float(checked["fraction_abs_err"].mean()),
               "t_lambda_mae": float(checked["t_lambda_abs_err"].mean())}
        print(f"{name:>16}: {row['targets_hit']}/{row['targets']} targets hit with {calls} oracle calls "
              f"(fraction MAE {row['fraction_mae']:.3f}, t/λ MAE {row['t_lambda_mae']:.3f})")
        return row

    import torch

    initial = table.index[table["batch_key"].astype(str).str.startswith("initial")].to_numpy()
    rows = [score("lookup", torch.as_tensor(store.load(initial)[nearest(table.loc[initial, list(m.target_fields)]
                                                                        .to_numpy(float))]), len(initial))]
    library, lib_rows = m.simulate(m.draw_processing(budget, np.random.default_rng(args.seed)), seed=args.seed + 1)
    rows.append(score("random library", library[nearest(lib_rows[list(m.target_fields)].to_numpy(float))], budget))
    direct, _ = m.simulate(targets, seed=args.seed + 2)
    rows.append(score("direct", direct, len(targets)))
    return {"budget": budget, "rows": rows}


if __name__ == "__main__":
    main()
