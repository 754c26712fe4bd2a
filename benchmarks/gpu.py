"""The GPU benchmark (`make bench-gpu`): one table of what a GPU buys genmat.

    python -m benchmarks.gpu --out bench_results                 # CUDA (refuses without one)
    python -m benchmarks.gpu --device cpu --quick --out /tmp/b   # the same table, tiny, on CPU

Measured, each against its own baseline in the same process:

- **training**: milliseconds per optimiser step and samples/s of the modalities' own
  generators (rectified flow on their U-Nets) on micrographs of 32², 64² and 128² and on
  1024-point spectra, in float32 and under bf16 autocast, and with ``torch.compile`` (at
  64² and for spectra, bf16; its compile time reported apart);
- **the oracle**: Cahn–Hilliard micrographs (32², the demo's) and their FFT
  homogenisation, samples/s of one batched call on the GPU against the same on the CPU.

The step is the training loop's own (the family's objective, AdamW, gradient clipping) on
random data of the modality's shape; every timing waits for the GPU (``synchronize``).
Sections stop early to keep the whole run under ``--budget-s`` (default 420 s: one
session's GPU window). Writes ``gpu.json`` and ``gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.run import Settings, bench_homogenisation_throughput, bench_simulator, machine_info
from benchmarks.timing import median, sync

log = logging.getLogger("benchmarks.gpu")

#: (label, modality, options): the networks a user trains at each size
SHAPES = (("micrograph 32²", "spinodal", {"grid": 32}), ("micrograph 64²", "spinodal", {"grid": 64}),
          ("micrograph 128²", "spinodal", {"grid": 128}), ("spectrum 1024", "xrd", {}))
COMPILED = ("micrograph 64²", "spectrum 1024")
QUICK_SHAPES = (("micrograph 16²", "spinodal", {"grid": 16}), ("spectrum 1024", "xrd", {}))


def _step_fn(label: str, modality_name: str, options: dict, device: torch.device, *, batch: int, bf16: bool,
             compile_: bool, quick: bool):
    """A closure running one training step of the modality's generator on random data."""
    from genmat.generate import Generator
    from genmat.loop.closed_loop import modality_generator
    from genmat.modalities import get_modality

    modality = get_modality(modality_name, **options)
    config = modality_generator(modality)
    if quick:  # a smaller net: the CPU smoke run checks the plumbing, not the speed
        config = config.replace(unet=config.unet.replace(base_channels=8, channel_mults=(1, 2), embed_dim=16))
    gen = Generator(config, modality.schema, modality.sample_shape, device=device, seed=0)
    model = gen.model.train().requires_grad_(True)
    loss_fn = gen.method.loss()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((batch, *modality.sample_shape), generator=g) * 2 - 1).to(device)
    values = (torch.rand((batch, len(modality.schema)), generator=g) * 2 - 1).to(device)
    mask = torch.ones_like(values)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        with autocast:
            loss = loss_fn(net, [x, values, mask], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step, gen.n_parameters


def bench_training(device: torch.device, *, quick: bool, deadline: float) -> list[dict]:
    rows = []
    shapes = QUICK_SHAPES if quick else SHAPES
    batch, steps = (4, 2) if quick else (64, 20)
    precisions = (False,) if quick and device.type == "cpu" else (False, True)
    for label, name, options in shapes:
        for bf16 in precisions:
            for compile_ in (False, True) if (label in COMPILED and bf16 and not quick) else (False,):
                if time.perf_counter() > deadline:
                    log.warning("training: the time budget is spent; %s %s skipped", label, "bf16" if bf16 else "fp32")
                    continue
                step, n_params = _step_fn(label, name, options, device, batch=batch, bf16=bf16, compile_=compile_,
                                          quick=quick)
                t0 = time.perf_counter()
                for _ in range(2):  # warm-up (and, compiled, the compilation)
                    step()
                sync(device)
                warm = time.perf_counter() - t0
                times = []
                for _ in range(steps):
                    t = time.perf_counter()
                    step()
                    sync(device)
                    times.append(time.perf_counter() - t)
                ms = 1000 * median(times)
                rows.append({"shape": label, "precision": "bf16" if bf16 else "fp32", "compiled": compile_,
                             "batch": batch, "parameters": n_params, "ms_per_step": ms,
                             "samples_per_s": batch / (ms / 1000), "warmup_s": warm})
                log.info("%s %s%s: %.1f ms/step", label, rows[-1]["precision"], " compiled" if compile_ else "", ms)
    return rows


def bench_oracle(device: torch.device, *, quick: bool, deadline: float) -> list[dict]:
    """Batched Cahn–Hilliard and homogenisation on ``device`` and on the CPU (same settings)."""
    s = Settings.quick_settings() if quick else Settings(sim_batch=256, sim_loop=1, repeats=2, budget_s=20.0)
    rows = []
    for dev in dict.fromkeys([device, torch.device("cpu")]):
        if time.perf_counter() > deadline:
            log.warning("oracle: the time budget is spent; %s skipped", dev)
            continue
        sim, c = bench_simulator(s, dev)
        hom = bench_homogenisation_throughput(s, dev, c)
        rows.append({"device": str(dev), "batch": s.sim_batch, "cahn_hilliard_samples_per_s": sim["batched_samples_per_s"],
                     "homogenisation_samples_per_s": hom["batched_samples_per_s"]})
        log.info("oracle on %s: %.1f micrographs/s, %.1f homogenisations/s", dev, rows[-1]["cahn_hilliard_samples_per_s"],
                 rows[-1]["homogenisation_samples_per_s"])
    return rows


def write_markdown(results: dict, out: Path) -> Path:
    m = results["machine"]
    lines = ["# GPU benchmark (`make bench-gpu`)", "",
             f"- device **{m['device']}**" + (f" ({m['cuda_device']})" if m.get("cuda_device") else "")
             + f", torch {m['torch']}, {m['cpu_count']} CPU cores, commit {m.get('git_commit')}, {m['timestamp_utc']}",
             f"- total {results['seconds']:.0f} s", "", "## Training step (the modality's generator, AdamW)", "",
             "| shape | precision | torch.compile | batch | parameters | ms/step | samples/s | warm-up s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["training"]:
        lines.append(f"| {r['shape']} | {r['precision']} | {'on' if r['compiled'] else 'off'} | {r['batch']} | "
                     f"{r['parameters']:,} | {r['ms_per_step']:.1f} | {r['samples_per_s']:.0f} | {r['warmup_s']:.1f} |")
    lines += ["", "## The oracle: one batched call", "",
              "| device | batch | Cahn–Hilliard micrographs/s | homogenisations/s |", "|---|---|---|---|"]
    for r in results["oracle"]:
        lines.append(f"| {r['device']} | {r['batch']} | {r['cahn_hilliard_samples_per_s']:.1f} | "
                     f"{r['homogenisation_samples_per_s']:.1f} |")
    if len(results["oracle"]) == 2:
        gpu, cpu = results["oracle"]
        lines += ["", f"Oracle speed-up on {gpu['device']} over the CPU: Cahn–Hilliard "
                  f"{gpu['cahn_hilliard_samples_per_s'] / cpu['cahn_hilliard_samples_per_s']:.1f}×, homogenisation "
                  f"{gpu['homogenisation_samples_per_s'] / cpu['homogenisation_samples_per_s']:.1f}×."]
    path = out / "gpu.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="folder for gpu.json and gpu.md")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing in seconds")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop starting new measurements after this")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu: error: no CUDA device here; `--device cpu` runs the same table on the CPU")
    device = torch.device(args.device)
    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    results = {"machine": machine_info(device), "quick": args.quick,
               "training": bench_training(device, quick=args.quick, deadline=deadline),
               "oracle": bench_oracle(device, quick=args.quick, deadline=deadline)}
    results["seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2))
    path = write_markdown(results, args.out)
    print(path.read_text())
    return results


if __name__ == "__main__":
    main()
