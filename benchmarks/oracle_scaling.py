"""Oracle throughput against Dask workers (`make bench-oracle`): `genmat simulate` with 1, 2, …
worker processes, side by side on one machine, and the task runner's overhead per chunk.

    python -m benchmarks.oracle_scaling --out bench_results [--n 256] [--grid 32] [--chunk 32] [--workers 1 2]

Each row simulates the same ``--n`` spinodal micrographs (the same seeds: the datasets are
identical, which the run checks) into a fresh dataset; rows run in turn, ``--repeats`` times,
and the median wall time is reported with its ratio to one worker. The overhead per chunk is
the same run with a trivial chunk (2² micrographs, 1 sample per chunk): what Dask and the store
cost beyond the oracle. Writes oracle_scaling.json and oracle_scaling.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np


def run_once(path: Path, n: int, grid: int, chunk: int, workers: int) -> float:
    from genmat.loop.steps import SimulateParams, simulate_step

    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    simulate_step(SimulateParams(modality="spinodal", modality_options={"grid": grid}, dataset=path, n=n, seed=11,
                                 chunk=chunk, workers=workers), progress=False)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    p.add_argument("--workdir", type=Path, default=Path("runs") / "bench-oracle")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--grid", type=int, default=32)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    from genmat.data import DatasetStore

    rows, reference = [], None
    for workers in args.workers:
        times = [run_once(args.workdir / f"w{workers}", args.n, args.grid, args.chunk, workers)
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
    tiny = {w: statistics.median(run_once(args.workdir / f"tiny{w}", 32, 4, 1, w) for _ in range(args.repeats))
            for w in (1, max(args.workers))}
    overhead = {f"{w}_workers_s_per_chunk": t / 32 for w, t in tiny.items()}
    out = {"n": args.n, "grid": args.grid, "chunk": args.chunk, "rows": rows, "overhead": overhead}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle_scaling.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Oracle throughput: {args.n} spinodal {args.grid}² micrographs, chunks of {args.chunk}",
             "", "| workers | median wall (s) | samples/s | speed-up vs 1 | same dataset |", "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['median_s']:.1f} | {r['samples_per_s']:.1f} | {r['speed_up']:.2f}× | "
              f"{'yes' if r['identical_to_first'] else 'NO'} |" for r in rows]
    lines += ["", "Overhead per chunk (32 chunks of one 4² micrograph): " + ", ".join(
        f"{k.split('_')[0]} worker(s) {v * 1000:.0f} ms" for k, v in overhead.items()), ""]
    (args.out / "oracle_scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
