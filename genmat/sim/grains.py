"""Grain micrographs from cooling rate (PHYSICS.md §2): nucleation, growth into a
tessellation, grain growth during an isothermal hold, and the measurements back.

The process of one sample on a periodic N × N grid of square pixels (``pixel_um`` wide):

1. **Nucleation from the cooling rate.** The nucleus density is a power law of the
   cooling rate Ṫ, N_A = N_ref (Ṫ / 1 K s⁻¹)^p with N_ref = 2000 mm⁻² and p = 1/2 (a model
   assumption, PHYSICS.md: "a power law n ∝ (dT/dt)^p is a common model"); the as-cooled
   mean lineal intercept then falls as Ṫ^(−p/2).
2. **Growth into a tessellation** at one front speed. ``nucleation="site"`` (site
   saturation, every nucleus at t = 0): the Poisson–Voronoi tessellation, whose transformed
   fraction follows JMAK, X = 1 − exp(−π N_A v² t²) (Avrami exponent 2). ``"continuous"``:
   nuclei appear at a constant rate İ per area (phantom nuclei included, as JMAK counts
   them), the Johnson–Mehl tessellation, X = 1 − exp(−(π/3) İ v² t³) (exponent 3); İ/v is
   set so that the final grain density is N_A: N_A = Γ(4/3) (3/π)^(1/3) (İ/v)^(2/3).
3. **Grain growth during the hold** (temperature T, time t): a Potts Monte Carlo model
   (Moore neighbourhood, unique grain labels, Metropolis at k_BT = 0.5 J, proposals from the
   neighbours, four sub-lattices updated in turn). The number of Monte Carlo steps is
   Arrhenius, MCS = t · ν_ref · exp(−Q/R (1/T − 1/T_ref)) with Q = 150 kJ/mol and
   ν_ref = 150 MCS per hour at T_ref = 1173 K.
4. **Orientations.** Each grain gets an in-plane orientation θ ∈ [0, π), drawn uniformly
   and redrawn while it lies within 15° of a neighbour's, so every boundary is a high-angle
   boundary that an etch would show. The sample is the orientation field as two channels
   (cos 2θ, sin 2θ): what a generator learns, and what is measured.

Measurements (:func:`measure_grains`): grains are the connected regions of one orientation
(8-neighbours closer than ``boundary_deg`` = 7.5° of misorientation, periodic); the mean
lineal intercept ℓ̄ (fragments under 3 pixels cleaned up first, EBSD practice; ASTM E112: test lines along every row and column, ℓ̄ = line length /
boundary crossings) is the grain size d; the ASTM grain size number
G = −6.6439 log10(ℓ̄ / mm) − 3.2877; Hall–Petch yield strength σ_y = σ0 + k_y d^(−1/2) with
ferritic (low-carbon) steel's σ0 = 70 MPa, k_y = 0.74 MPa m^½ (PHYSICS.md §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from genmat.sim.cahn_hilliard import GAS_CONSTANT_J_MOLK
from genmat.sim.materials import SimInputError

#: processing box of the grain oracle: cooling rate (K/s), hold temperature (K), hold time (s)
GRAIN_PROCESSING_RANGES = {
    "cooling_rate_K_s": (0.1, 10.0),
    "temperature_K": (923.0, 1173.0),
    "time_s": (0.0, 3600.0),
}
NUCLEATION = ("site", "continuous")
#: Moore neighbourhood (dy, dx)
MOORE = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class GrainConfig:
    """Physics and numerics of the grain oracle (module docstring)."""

    grid: int = 64
    pixel_um: float = 2.0
    nuclei_per_mm2: float = 2000.0  # N_ref: nucleus density at Ṫ = 1 K/s
    cooling_exponent: float = 0.5  # p of N_A ∝ Ṫ^p
    nucleation: str = "site"
    potts_kT: float = 0.5
    activation_energy_J_mol: float = 150e3
    T_ref_K: float = 1173.0
    mcs_per_s_ref: float = 150.0 / 3600.0  # Monte Carlo steps per second of hold at T_ref
    min_misorientation_deg: float = 15.0
    boundary_deg: float = 7.5  # measurement: neighbours further apart than this are in two grains
    min_grain_px: int = 3  # measurement: smaller fragments are cleaned up (EBSD practice), not counted as grains
    sigma0_MPa: float = 70.0  # Hall–Petch friction stress (ferritic steel)
    k_y_MPa_sqrt_m: float = 0.74  # Hall–Petch coefficient (ferritic steel)

    def __post_init__(self) -> None:
        if not (isinstance(self.grid, int) and self.grid >= 8):
            raise SimInputError("grid", self.grid, "an integer >= 8")
        for name in ("pixel_um", "nuclei_per_mm2", "cooling_exponent", "potts_kT", "activation_energy_J_mol",
                     "T_ref_K", "mcs_per_s_ref", "k_y_MPa_sqrt_m"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise SimInputError(name, v, "a finite number > 0")
        if self.nucleation not in NUCLEATION:
            raise SimInputError("nucleation", self.nucleation, " or ".join(NUCLEATION))
        if not 0 < self.boundary_deg < self.min_misorientation_deg < 45:
            raise SimInputError("boundary_deg", self.boundary_deg,
                                f"0 < boundary_deg < min_misorientation_deg ({self.min_misorientation_deg}) < 45")


# ----------------------------------------------------------------------------- process
def nucleus_density(cooling_rate_K_s, config: GrainConfig = GrainConfig()) -> np.ndarray:
    """N_A in nuclei per pixel² for cooling rates Ṫ (K/s): N_ref (Ṫ / 1 K s⁻¹)^p."""
    rate = np.asarray(cooling_rate_K_s, dtype=float)
    if not np.all(np.isfinite(rate) & (rate > 0)):
        raise SimInputError("cooling_rate_K_s", rate.tolist(), "finite values > 0")
    per_um2 = config.nuclei_per_mm2 * 1e-6 * rate ** config.cooling_exponent
    return per_um2 * config.pixel_um ** 2


def monte_carlo_steps(temperature_K, time_s, config: GrainConfig = GrainConfig()) -> np.ndarray:
    """Potts Monte Carlo steps of a hold: t ν_ref exp(−Q/R (1/T − 1/T_ref))."""
    T, t = np.asarray(temperature_K, dtype=float), np.asarray(time_s, dtype=float)
    if not np.all(np.isfinite(T) & (T > 0)):
        raise SimInputError("temperature_K", T.tolist(), "finite values > 0 K")
    if not np.all(np.isfinite(t) & (t >= 0)):
        raise SimInputError("time_s", t.tolist(), "finite values >= 0 s")
    q_r = config.activation_energy_J_mol / GAS_CONSTANT_J_MOLK
    return t * config.mcs_per_s_ref * np.exp(-q_r * (1.0 / T - 1.0 / config.T_ref_K))


def pixel_centres(grid: int) -> np.ndarray:
    """(N², 2) coordinates (y, x) of the pixel centres, in pixels."""
    y, x = np.meshgrid(np.arange(grid) + 0.5, np.arange(grid) + 0.5, indexing="ij")
    return np.stack([y.ravel(), x.ravel()], axis=1)


def periodic_distance(points: np.ndarray, sites: np.ndarray, grid: int) -> np.ndarray:
    """(P, S) minimum-image distances between points (P, 2) and sites (S, 2) on the torus."""
    d = np.abs(points[:, None, :] - sites[None, :, :])
    d = np.minimum(d, grid - d)
    return np.sqrt((d ** 2).sum(-1))


def first_arrival(sites: np.ndarray, births: np.ndarray, grid: int, speed: float = 1.0,
                  chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Growth from nuclei at ``sites`` (S, 2) born at ``births`` (S,) with front speed ``speed``
    (pixels per unit time): per pixel, the nucleus whose front arrives first and when,
    ``(labels (N, N) int, arrival (N, N))``. Equal births give the Voronoi tessellation,
    staggered ones the Johnson–Mehl tessellation."""
    pts = pixel_centres(grid)
    labels = np.empty(len(pts), dtype=np.int64)
    arrival = np.empty(len(pts))
    for start in range(0, len(pts), chunk):
        cost = births[None, :] + periodic_distance(pts[start:start + chunk], sites, grid) / speed
        labels[start:start + chunk] = cost.argmin(1)
        arrival[start:start + chunk] = cost.min(1)
    return labels.reshape(grid, grid), arrival.reshape(grid, grid)


def draw_nuclei(density_px: float, grid: int, rng: np.random.Generator, nucleation: str = "site",
                completion: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei (sites (S, 2), births (S,)) whose tessellation has ``density_px`` grains per
    pixel² on average: a Poisson process (at least one nucleus). Site saturation: all born at
    0. Continuous: born uniformly in time at the rate İ (front speed 1) that gives that final
    density, until the extended transformed area reaches ``completion`` (X = 1 − e⁻²⁰)."""
    area = grid * grid
    if nucleation == "site":
        n = max(1, int(rng.poisson(density_px * area)))
        return rng.uniform(0, grid, size=(n, 2)), np.zeros(n)
    if nucleation != "continuous":
        raise SimInputError("nucleation", nucleation, " or ".join(NUCLEATION))
    rate = (density_px / (math.gamma(4 / 3) * (3 / math.pi) ** (1 / 3))) ** 1.5  # İ / v, v = 1
    t_end = (3 * completion / (math.pi * rate)) ** (1 / 3)
    n = max(1, int(rng.poisson(rate * area * t_end)))
    return rng.uniform(0, grid, size=(n, 2)), np.sort(rng.uniform(0, t_end, size=n))


def moore_neighbours(labels: torch.Tensor, py: int = 0, px: int = 0, step: int = 1) -> torch.Tensor:
    """(B, 8, N/step, N/step): the eight periodic neighbours of the pixels (py::step, px::step)
    (every pixel with the defaults)."""
    n0, n1 = labels.shape[1:]
    padded = torch.cat([labels[:, -1:], labels, labels[:, :1]], dim=1)
    padded = torch.cat([padded[:, :, -1:], padded, padded[:, :, :1]], dim=2)
    return torch.stack([padded[:, 1 + py + dy:1 + py + dy + n0:step, 1 + px + dx:1 + px + dx + n1:step]
                        for dy, dx in MOORE], dim=1)


def potts_anneal(labels: torch.Tensor, sweeps, kT: float = 0.5, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Curvature-driven grain growth by Potts Monte Carlo on (B, N, N) grain labels.

    One sweep updates one of the four 2 × 2 sub-lattices (no two of its sites are Moore
    neighbours, so they update independently); four sweeps are one Monte Carlo step. A site
    proposes the label of a random neighbour; the energy is the number of unlike Moore
    neighbours; the change is accepted with probability min(1, exp(−ΔE / kT)). Sample b
    runs ``sweeps[b]`` sweeps (N even)."""
    lab = labels.clone()
    b, n, _ = lab.shape
    if n % 2:
        raise SimInputError("grid", n, "an even number (four sub-lattices)")
    sweeps = torch.as_tensor(np.asarray(sweeps), dtype=torch.int64).reshape(-1)
    gen = torch.Generator().manual_seed(int(seed))
    total = int(sweeps.max()) if len(sweeps) else 0
    for s in tqdm(range(total), desc="Potts", disable=not progress, leave=False):
        active = sweeps > s
        py, px = (s % 4) // 2, s % 2
        nb = moore_neighbours(lab, py, px, 2)
        cur = lab[:, py::2, px::2]
        pick = torch.randint(0, 8, (b, 1, *cur.shape[1:]), generator=gen)
        prop = nb.gather(1, pick)[:, 0]
        d_e = (nb != prop[:, None]).sum(1) - (nb != cur[:, None]).sum(1)
        u = torch.rand(cur.shape, generator=gen)
        accept = (d_e <= 0) | (u < torch.exp(-d_e.double() / kT))
        accept &= (prop != cur) & active[:, None, None]
        lab[:, py::2, px::2] = torch.where(accept, prop, cur)
    return lab


def adjacency(labels: np.ndarray) -> np.ndarray:
    """(P, 2) distinct pairs of grain labels that touch across a periodic 4-neighbour edge."""
    pairs = []
    for axis in (0, 1):
        other = np.roll(labels, -1, axis=axis)
        edge = labels != other
        pairs.append(np.stack([labels[edge], other[edge]], axis=1))
    p = np.concatenate(pairs)
    p = np.sort(p, axis=1)
    return np.unique(p, axis=0) if len(p) else p.reshape(0, 2)


def triple_junction_angles(labels: np.ndarray, radius: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(angles (J, 3) in degrees, summing to 360 per row; junction centres (J, 2) as (y, x))
    at the J triple junctions of a periodic label
    map: a junction is a 2×2 block holding three grains; each boundary's direction is the
    mean offset, from the junction, of the pixels along that pair's boundary within
    ``radius`` (beyond 1.5 px, where the pixel grid decides); a grain's angle is the sector
    between its two boundaries. Isotropic boundary energy pulls them to 120° (Herring)."""
    lab = np.asarray(labels)
    h, w = lab.shape
    blocks = np.stack([lab, np.roll(lab, -1, 0), np.roll(lab, -1, 1), np.roll(np.roll(lab, -1, 0), -1, 1)], -1)
    srt = np.sort(blocks, -1)
    distinct = 1 + (np.diff(srt, axis=-1) != 0).sum(-1)
    # boundary pixels of each pair: a pixel whose right or lower neighbour belongs to another grain
    edges = []
    for axis in (0, 1):
        other = np.roll(lab, -1, axis=axis)
        yy, xx = np.nonzero(lab != other)
        off = (0.5, 0.0) if axis == 0 else (0.0, 0.5)
        pair = np.sort(np.stack([lab[yy, xx], other[yy, xx]], 1), 1)
        edges.append((yy + off[0], xx + off[1], pair))
    ey = np.concatenate([e[0] for e in edges])
    ex = np.concatenate([e[1] for e in edges])
    ep = np.concatenate([e[2] for e in edges])
    angles, centres, seen = [], [], set()
    for i, j in zip(*np.nonzero(distinct == 3)):
        trio = tuple(np.unique(blocks[i, j]))
        key = (trio, int(i) // 3, int(j) // 3)
        if key in seen:
            continue
        seen.add(key)
        cy, cx = i + 0.5, j + 0.5
        dy = (ey - cy + h / 2) % h - h / 2
        dx = (ex - cx + w / 2) % w - w / 2
        dist = np.hypot(dy, dx)
        near = (dist <= radius) & (dist >= 1.5)
        directions = []
        for a, b in ((trio[0], trio[1]), (trio[1], trio[2]), (trio[0], trio[2])):
            m = near & (ep[:, 0] == a) & (ep[:, 1] == b)
            if m.sum() < 2:
                break
            directions.append(np.arctan2(dy[m].mean(), dx[m].mean()))
        if len(directions) < 3:
            continue
        phi = np.sort(np.mod(directions, 2 * np.pi))
        angles.append(np.degrees(np.diff(np.append(phi, phi[0] + 2 * np.pi))))
        centres.append((cy, cx))
    return np.asarray(angles).reshape(-1, 3), np.asarray(centres, dtype=float).reshape(-1, 2)


def assign_orientations(labels: np.ndarray, rng: np.random.Generator, min_misorientation_deg: float = 15.0,
                        max_rounds: int = 200) -> np.ndarray:
    """θ ∈ [0, π) per label (indexable by label), uniform, redrawn while any neighbour lies
    within ``min_misorientation_deg`` (misorientation of in-plane orientations, mod π)."""
    theta = rng.uniform(0, math.pi, size=int(labels.max()) + 1)
    pairs = adjacency(labels)
    lim = math.radians(min_misorientation_deg)
    for _ in range(max_rounds):
        d = np.abs(theta[pairs[:, 0]] - theta[pairs[:, 1]]) % math.pi
        bad = np.minimum(d, math.pi - d) < lim
        if not bad.any():
            break
        redo = np.unique(pairs[bad, 1])
        theta[redo] = rng.uniform(0, math.pi, size=len(redo))
    return theta


def orientation_field(labels: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(2, N, N): cos 2θ and sin 2θ of each pixel's grain."""
    t = theta[labels]
    return np.stack([np.cos(2 * t), np.sin(2 * t)]).astype(np.float32)


def simulate_grains(cooling_rate_K_s, temperature_K, time_s, config: GrainConfig = GrainConfig(), *, seed: int = 0,
                    progress: bool = False) -> torch.Tensor:
    """Grain micrographs (B, 2, N, N) for B recipes (module docstring), reproducible from
    ``seed``: the nuclei and orientations of sample i come from SeedSequence([seed, i]), the
    Potts moves from ``seed``."""
    rate, T, t = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (cooling_rate_K_s, temperature_K, time_s))
    if not len(rate) == len(T) == len(t):
        raise SimInputError("processing", (len(rate), len(T), len(t)), "three arrays of one length")
    density = nucleus_density(rate, config)
    sweeps = np.rint(4 * monte_carlo_steps(T, t, config)).astype(np.int64)
    n = config.grid
    rngs = [np.random.default_rng(np.random.SeedSequence([int(seed), i])) for i in range(len(rate))]
    labels = np.empty((len(rate), n, n), dtype=np.int64)
    for i, rng in enumerate(rngs):
        sites, births = draw_nuclei(float(density[i]), n, rng, config.nucleation)
        labels[i] = first_arrival(sites, births, n)[0]
    grown = potts_anneal(torch.from_numpy(labels), sweeps, config.potts_kT, seed=seed, progress=progress).numpy()
    fields = np.empty((len(rate), 2, n, n), dtype=np.float32)
    for i, rng in enumerate(rngs):
        fields[i] = orientation_field(grown[i], assign_orientations(grown[i], rng, config.min_misorientation_deg))
    return torch.from_numpy(fields)


# ----------------------------------------------------------------------------- measurement
def segment(field: np.ndarray, boundary_deg: float = 7.5) -> np.ndarray:
    """Grain labels (N, N) of one orientation field (2, N, N): periodic 8-neighbours (the Potts
    model's Moore neighbourhood) whose (cos 2θ, sin 2θ) vectors are closer than
    2 sin(boundary_deg) — a misorientation below ``boundary_deg`` for unit vectors — are one
    grain (connected components). Vectors are normalised first: the orientation is the
    direction, the length only a confidence (checked apart)."""
    u = np.asarray(field, dtype=float)
    u = u / np.maximum(np.sqrt((u ** 2).sum(0)), 1e-12)  # a pixel's orientation is its direction
    n0, n1 = u.shape[1:]
    idx = np.arange(n0 * n1).reshape(n0, n1)
    limit = 2 * math.sin(math.radians(boundary_deg))
    rows, cols = [], []
    for shift in ((-1, 0), (0, -1), (-1, -1), (-1, 1)):  # right, down and both diagonals: 8-connectivity
        other = np.roll(u, shift, axis=(1, 2))
        close = np.sqrt(((u - other) ** 2).sum(0)) < limit
        rows.append(idx[close])
        cols.append(np.roll(idx, shift, axis=(0, 1))[close])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(idx.size, idx.size))
    _, comp = connected_components(graph, directed=False)
    return comp.reshape(n0, n1)


def clean_labels(labels: np.ndarray, min_px: int = 3) -> tuple[np.ndarray, float]:
    """EBSD-style clean-up: fragments smaller than ``min_px`` pixels are not grains (isolated
    pixels, the unresolved rim of a boundary); their pixels go to the grain most of their
    8-neighbours already belong to, growing in from the grains (dilation), periodic.
    Returns the cleaned labels and the fraction of pixels that were in such fragments."""
    lab = np.asarray(labels).copy()
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    small = (counts[inverse] < min_px).reshape(lab.shape)
    dust = float(small.mean())
    if not small.any() or small.all():
        return lab, dust
    lab[small] = -1
    while (lab < 0).any():
        nb = np.stack([np.roll(lab, (-dy, -dx), axis=(0, 1)) for dy, dx in MOORE])  # (8, N, N)
        todo = np.flatnonzero((lab < 0).ravel())
        cand = nb.reshape(8, -1)[:, todo]
        valid = cand >= 0
        votes = ((cand[:, None, :] == cand[None, :, :]) & valid[None, :, :]).sum(1)
        votes[~valid] = -1
        pick = cand[votes.argmax(0), np.arange(len(todo))]
        ready = valid.any(0)
        flat = lab.ravel()
        flat[todo[ready]] = pick[ready]
        lab = flat.reshape(lab.shape)
    return lab, dust


def grain_statistics(labels: np.ndarray) -> dict[str, float]:
    """Counts on a periodic label image (pixels): grains, mean area, mean lineal intercept
    (every row and column a test line), coefficient of variation of the areas, the mean number
    of neighbours (4-connectivity)."""
    lab = np.asarray(labels)
    _, areas = np.unique(lab, return_counts=True)
    crossings = int((lab != np.roll(lab, -1, axis=0)).sum() + (lab != np.roll(lab, -1, axis=1)).sum())
    line = 2.0 * lab.size
    pairs = adjacency(lab)
    return {
        "n_grains": float(len(areas)),
        "mean_area_px": float(areas.mean()),
        "mean_intercept_px": line / crossings if crossings else float(max(lab.shape)),
        "area_cv": float(areas.std() / areas.mean()),
        "mean_neighbours": 2.0 * len(pairs) / len(areas),
    }


def hall_petch(d_um, config: GrainConfig = GrainConfig()) -> np.ndarray:
    """σ_y (MPa) = σ0 + k_y / √d, d in µm."""
    d = np.asarray(d_um, dtype=float)
    return config.sigma0_MPa + config.k_y_MPa_sqrt_m / np.sqrt(d * 1e-6)


def grain_size_from_strength(sigma_MPa, config: GrainConfig = GrainConfig()) -> np.ndarray:
    """The inverse of :func:`hall_petch` (µm); NaN at or below σ0."""
    s = np.asarray(sigma_MPa, dtype=float) - config.sigma0_MPa
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, (config.k_y_MPa_sqrt_m / s) ** 2 * 1e6, np.nan)


def astm_grain_number(intercept_um) -> np.ndarray:
    """ASTM E112 grain size number from the mean lineal intercept: G = −6.6439 log10(ℓ̄/mm) − 3.2877."""
    return -6.643856 * np.log10(np.asarray(intercept_um, dtype=float) * 1e-3) - 3.288


def measure_grains(fields: torch.Tensor, config: GrainConfig = GrainConfig()) -> dict[str, np.ndarray]:
    """Per sample of (B, 2, N, N), measured on the segmented, cleaned grains (:func:`segment`,
    :func:`clean_labels`): ``grain_size_um`` (mean lineal intercept), ``yield_strength_MPa``
    (Hall–Petch), ``astm_G``, ``n_grains``, ``mean_area_um2``, ``area_cv``, ``mean_neighbours``;
    ``dust_fraction`` (pixels in fragments below ``min_grain_px`` before the clean-up) and
    ``orientation_norm_error`` (mean | |u| − 1 |: an orientation field has unit vectors)."""
    x = fields.detach().double().cpu().numpy() if isinstance(fields, torch.Tensor) else np.asarray(fields, float)
    if x.ndim != 4 or x.shape[1] != 2:
        raise SimInputError("fields", tuple(x.shape), "(B, 2, N, N) orientation fields (cos 2θ, sin 2θ)")
    rows = []
    for f in x:
        labels, dust = clean_labels(segment(f, config.boundary_deg), config.min_grain_px)
        rows.append({**grain_statistics(labels), "dust_fraction": dust})
    col = lambda key: np.array([r[key] for r in rows], dtype=float)  # noqa: E731 (empty for B = 0)
    d = col("mean_intercept_px") * config.pixel_um
    return {
        "grain_size_um": d,
        "yield_strength_MPa": hall_petch(d, config),
        "astm_G": astm_grain_number(d),
        "n_grains": col("n_grains"),
        "mean_area_um2": col("mean_area_px") * config.pixel_um ** 2,
        "area_cv": col("area_cv"),
        "dust_fraction": col("dust_fraction"),
        "mean_neighbours": col("mean_neighbours"),
        "orientation_norm_error": np.abs(np.sqrt((x ** 2).sum(1)) - 1).mean(axis=(1, 2)),
    }
