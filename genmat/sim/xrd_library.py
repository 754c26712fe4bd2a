"""The crystalline phase library of the XRD and Raman oracles, built offline with pymatgen.

Each phase is a structure made with ``Structure.from_spacegroup`` from its space group,
room-temperature lattice parameters and Wyckoff positions (ICSD/ICDD literature values),
plus a linear thermal-expansion coefficient. Its reflections (Cu Kα, 2θ from 5° to 100°
so that thermally shifted and broadened lines near the 10–90° window are kept) come
from pymatgen's ``XRDCalculator``; the *absolute* intensities (|F|²·Lp·multiplicity)
are stored so that mixtures can be made quantitative (see :mod:`genmat.sim.xrd`).

The library is a JSON file shipped with the package (``data/xrd_phases.json``): the
oracle never needs pymatgen at run time. Rebuild it with::

    python -m genmat.sim.xrd_library          # writes genmat/sim/data/xrd_phases.json

and ``tests/sim/test_xrd.py`` checks the shipped file against a fresh pymatgen build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LIBRARY_PATH = Path(__file__).with_name("data") / "xrd_phases.json"
LIBRARY_VERSION = 1
TWO_THETA_RANGE = (5.0, 100.0)
MIN_RELATIVE_INTENSITY = 0.2  # % of the strongest line: weaker reflections are left out

# name: (formula, space group, lattice (a, c or None), species, fractional coordinates,
#        linear thermal-expansion coefficient α (1/K, isotropic mean near room temperature))
# Lattice parameters at 298 K; α from standard tables (anisotropic α are averaged).
STRUCTURES: dict[str, tuple] = {
    "alpha_Fe": ("Fe", "Im-3m", (2.8665, None), ["Fe"], [[0, 0, 0]], 11.8e-6),
    "gamma_Fe": ("Fe", "Fm-3m", (3.5910, None), ["Fe"], [[0, 0, 0]], 21.0e-6),
    "Cu": ("Cu", "Fm-3m", (3.6149, None), ["Cu"], [[0, 0, 0]], 16.5e-6),
    "Al": ("Al", "Fm-3m", (4.0495, None), ["Al"], [[0, 0, 0]], 23.1e-6),
    "Si": ("Si", "Fd-3m", (5.4310, None), ["Si"], [[0, 0, 0]], 2.6e-6),
    "diamond": ("C", "Fd-3m", (3.5668, None), ["C"], [[0, 0, 0]], 1.0e-6),
    "graphite": ("C", "P6_3/mmc", (2.4640, 6.7110), ["C", "C"], [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25]], 8.0e-6),
    "NaCl": ("NaCl", "Fm-3m", (5.6402, None), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 40.0e-6),
    "rutile": ("TiO2", "P4_2/mnm", (4.5937, 2.9587), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]], 8.1e-6),
    "anatase": ("TiO2", "I4_1/amd", (3.7845, 9.5143), ["Ti", "O"], [[0, 0, 0], [0, 0, 0.2081]], 6.0e-6),
    "ZnO": ("ZnO", "P6_3mc", (3.2498, 5.2066), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.3819]], 5.0e-6),
    "hematite": ("Fe2O3", "R-3c", (5.0356, 13.7489), ["Fe", "O"], [[0, 0, 0.35530], [0.3059, 0, 0.25]], 8.3e-6),
    "corundum": ("Al2O3", "R-3c", (4.7589, 12.9910), ["Al", "O"], [[0, 0, 0.35216], [0.3064, 0, 0.25]], 6.6e-6),
}
RIR_REFERENCE = "corundum"  # intensities are stored relative to corundum's strongest line (I/I_c)


def build_phase(name: str) -> dict:
    """One library entry computed with pymatgen."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # pymatgen's diffraction module imports pyplot
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    formula, sg, (a, c), species, coords, alpha = STRUCTURES[name]
    lattice = Lattice.cubic(a) if c is None else Lattice.hexagonal(a, c) if sg.startswith(("P6", "R")) else Lattice.tetragonal(a, c)
    structure = Structure.from_spacegroup(sg, lattice, species, coords)
    calc = XRDCalculator("CuKa")
    pattern = calc.get_pattern(structure, scaled=False, two_theta_range=TWO_THETA_RANGE)
    keep = pattern.y >= pattern.y.max() * MIN_RELATIVE_INTENSITY / 100
    hkl = ["".join(str(i) for i in fam[0]["hkl"]) for fam in pattern.hkls]
    return {
        "name": name,
        "formula": formula,
        "space_group": sg,
        "lattice": {"a": a, "c": c},
        "alpha_per_K": alpha,
        "density_g_cm3": float(structure.density),
        "volume_A3": float(structure.volume),
        "wavelength_A": float(calc.wavelength),
        "two_theta_deg": [float(v) for v, k in zip(pattern.x, keep) if k],
        "d_A": [float(v) for v, k in zip(pattern.d_hkls, keep) if k],
        "hkl": [h for h, k in zip(hkl, keep) if k],
        "intensity_abs": [float(v) for v, k in zip(pattern.y, keep) if k],
    }


def build_library() -> dict:
    """All phases, with intensities per unit weight fraction relative to corundum.

    Quantitative convention (Hill & Howard 1987): in a mixture with one mass absorption
    coefficient, the integrated intensity of phase i is proportional to
    w_i / (ρ_i V_i²) · |F|² Lp m, with weight fraction w_i, density ρ_i and cell volume V_i.
    ``intensity`` is that quantity divided by the same one for corundum's strongest line,
    so a phase's strongest ``intensity`` is its reference intensity ratio I/I_c.
    """
    phases = {name: build_phase(name) for name in STRUCTURES}

    def per_weight(p: dict) -> list[float]:
        return [v / (p["density_g_cm3"] * p["volume_A3"] ** 2) for v in p["intensity_abs"]]

    ref = max(per_weight(phases[RIR_REFERENCE]))
    for p in phases.values():
        p["intensity"] = [v / ref for v in per_weight(p)]
        p["rir"] = max(p["intensity"])
    return {"version": LIBRARY_VERSION, "radiation": "CuKa", "rir_reference": RIR_REFERENCE,
            "min_relative_intensity_percent": MIN_RELATIVE_INTENSITY, "phases": phases}


def write_library(path: Path = LIBRARY_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(build_library(), indent=1))
    tmp.replace(path)
    return path


if __name__ == "__main__":
    print(f"wrote {write_library()}")
