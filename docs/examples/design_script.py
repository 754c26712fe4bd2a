"""Design spinodal microstructures for two property targets with a trained generator.

A script a scientist would write: load a checkpoint, ask for two (E, density) targets,
print the designs table and save a picture of the returned designs.

    python docs/examples/design_script.py runs/demo/iter_03/model.ckpt \
        --dataset runs/demo/dataset --out runs/my-design

Units: E_GPa in GPa (3-D-equivalent Young's modulus), density_g_cm3 in g/cm³.
A target outside the condition schema's range, or a modulus outside the
Hashin–Shtrikman bounds (±15 %) of the density's volume fraction, is refused
with a ConditionError that names the field and the allowed range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TARGETS = [
    {"E_GPa": 150.0, "density_g_cm3": 2.95},  # about half SiC-like phase by volume
    {"E_GPa": 220.0, "density_g_cm3": 3.05},  # a stiffer, denser composite
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="trained generator checkpoint (e.g. runs/demo/iter_03/model.ckpt)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="the training dataset (enables the novelty check and the screening surrogate)")
    parser.add_argument("--n", type=int, default=16, help="candidates generated per target (default 16)")
    parser.add_argument("--n-simulate", type=int, default=2, help="candidates per target sent to the simulator (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/design-script"), help="where the picture is written")
    args = parser.parse_args(argv)

    import torch  # imported after argument parsing so that --help is instant

    import genmat
    from genmat.modalities import get_modality
    from genmat.plots import save

    result = genmat.design(TARGETS, checkpoint=args.checkpoint, dataset=args.dataset,
                           n=args.n, n_simulate=args.n_simulate, seed=args.seed)

    # One row per target: the returned design, its simulated properties, hit or miss and why.
    cols = [c for c in ("target_id", "candidate", "target_E_GPa", "sim_E_GPa", "target_density_g_cm3",
                        "sim_density_g_cm3", "verdict", "hit", "reason") if c in result.designs]
    print(result.designs[cols].to_string(index=False))
    m = result.metrics
    print(f"hit rate {m['hit_rate']:.0%}; simulator calls {int(m['simulator_calls'])}; "
          f"candidates per hit {m['candidates_per_hit']:.3g}")

    # Candidates are stored contiguously per target: index = target_id · n + candidate.
    picked = result.designs.dropna(subset=["candidate"])
    index = (picked["target_id"] * args.n + picked["candidate"]).astype(int).tolist()
    titles = []
    for _, r in picked.iterrows():
        e, rho = r.get("sim_E_GPa"), r.get("sim_density_g_cm3")
        measured = f"E {e:.0f} GPa, ρ {rho:.3f} g/cm³" if e is not None and e == e else "not simulated"
        titles.append(f"target {int(r['target_id'])}: {'HIT' if r['hit'] else 'miss'}\n{measured}")
    modality = get_modality("spinodal")
    fig = modality.plot_samples(result.samples[torch.as_tensor(index, dtype=torch.long)], titles, ncols=len(index) or 1)
    path = save(fig, args.out / "designs.png")
    print(f"picture of the returned designs: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
