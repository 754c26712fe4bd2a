"""Oracle throughput against Dask workers (`make bench-oracle`): `genmat simulate` with 1, 2, …
worker processes, side by side on one machine, and the task runner's overhead per chunk.

    python -m benchmarks.oracle_scaling --out bench_results [--modality grains] [--n 256] [--grid 64] [--chunk 32]

Each row simulates the same ``--n`` samples of ``--modality`` (default: 256 grain maps of 64²,
Potts grain growth) with the same seeds into a fresh dataset (the datasets are identical, which
the run checks); rows run in turn, ``--repeats`` times, and the median wall time is reported
with its ratio to one worker. One worker simulates in this process, whose torch already uses
every core (intra-op threads); N workers are N single-threaded processes of a Dask LocalCluster
started for the run (its start-up included). The overhead per chunk is a spinodal run of
trivial chunks (one 8² micrograph each): what Dask and the store cost beyond the oracle.
Writes oracle_scaling.json and oracle_scaling.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np


def run_once(path: Path, n: int, grid: int, chunk: int, workers: int, modality: str = "spinodal") -> float:
    from genmat.loop.steps import SimulateParams, simulate_step

    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    simulate_step(SimulateParams(modality=modality, modality_options={"grid": grid}, dataset=path, n=n, seed=11,
                                 chunk=chunk, workers=workers), progress=False)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    p.add_argument("--workdir", type=Path, default=Path("runs") / "bench-oracle")
    p.add_argument("--modality", default="grains", help="whose oracle (grains: Potts grain growth, the slow one; "
                   "spinodal: a batched Cahn–Hilliard solve, fast)")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--grid", type=int, default=64)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    from genmat.data import DatasetStore

    rows, reference = [], None
    for workers in args.workers:
        times = [run_once(args.workdir / f"w{workers}", args.n, args.grid, args.chunk, workers, args.modality)
                 for _ in range(args.repeats)]
        x = DatasetStore.open(args.workdir / f"w{workers}").load()
        reference = x if reference is None else reference
        rows.append({"workers": workers, "median_s": statistics.median(times), "times_s": times,
                     "identical_to_first": bool(np.array_equal(x, reference))})
    base = rows[0]["median_s"]
    for r in rows:
        r["speed_up"] = base / r["median_s"]
        r["samples_per_s"] = args.n / r["median_s"]
    # overhead: tiny chunks of a tiny oracle, 1 worker in-process against the most workers
    tiny = {w: statistics.median(run_once(args.workdir / f"tiny{w}", 32, 8, 1, w) for _ in range(args.repeats))
            for w in (1, max(args.workers))}
    overhead = {f"{w}_workers_s_per_chunk": t / 32 for w, t in tiny.items()}
    out = {"modality": args.modality, "n": args.n, "grid": args.grid, "chunk": args.chunk, "rows": rows, "overhead": overhead}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle_scaling.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Oracle throughput: {args.n} {args.modality} {args.grid}² samples, chunks of {args.chunk}",
             "", "| workers | median wall (s) | samples/s | speed-up vs 1 | same dataset |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['median_s']:.1f} | {r['samples_per_s']:.1f} | {r['speed_up']:.2f}× | "
              f"{'yes' if r['identical_to_first'] else 'NO'} |" for r in rows]
    lines += ["", "Overhead per chunk (32 chunks of one 8² micrograph): " + ", ".join(
        f"{k.split('_')[0]} worker(s) {v * 1000:.0f} ms" for k, v in overhead.items()), ""]
    (args.out / "oracle_scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
