"""Raman oracle (PHYSICS.md §5): Stokes Raman spectra of phase mixtures.

Given weight fractions w_i of Raman-active library phases, crystallite size L, microstrain ε
and temperature T, a spectrum on a fixed Raman-shift axis (default 80–1700 cm⁻¹, 1024
points) is

    y(ω) = Σ_i w_i Σ_k S · σ_i · I_ik(L, T) · Lor(ω; ω_ik(L, T), Γ_ik(L, ε, T)) · Δω
           + fluorescence background  (+ Poisson noise)

**Intensities.** I_ik is the band's *integrated* intensity relative to the phase's
reference band (table below), σ_i the phase's effective scattering cross-section per unit
weight fraction relative to crystalline Si (514.5 nm excitation; approximate,
order-of-magnitude values: they fold the Raman efficiency and the probed depth of opaque
phases into one number, and quantitative Raman needs a calibration against standards).
Convention: fractions are weight fractions, band counts ∝ w_i σ_i ("Raman fractions"), no
self-absorption or matrix effects between phases. S (``counts_per_unit``) is the total
counts of a band with I·σ = 1 in a pure sample, so the pure-phase patterns are the NNLS
basis that returns w directly. Stokes intensities scale with the Bose–Einstein factor
(n(ω, T) + 1)/(n(ω, 298 K) + 1), n = 1/(exp(hcω/kT) − 1): low-shift bands grow with T.
Graphite's disorder bands follow Tuinstra–Koenig (J. Chem. Phys. 53, 1126 (1970)):
I_D/I_G = C(λ)/L_a with C(514.5 nm) = 4.4 nm and L_a = ``size_nm`` (here a ratio of
*integrated* intensities; TK fitted peak heights, and the law fails below L_a ≈ 2 nm where
it turns over, Ferrari & Robertson 2000 — not modelled); D' (1620) = 0.15 × D.

**Positions.** ω_ik = ω0 + (dω/dT)(T − 298.15 K) + Δω_conf, with ω0 the literature shift
at 298 K and dω/dT a linear anharmonic coefficient (fair from ~200 K to ~1000 K).
Phonon confinement (one power law for all phases; the form of Zi et al., Appl. Phys.
Lett. 69, 200 (1996) and Phys. Rev. B 55, 9263 (1997), Si constants from the improved
confinement-model fit of Paillard et al., J. Appl. Phys. 86, 1921 (1999)):

    Δω_conf = −A (a/L)^γ,   ΔΓ_conf = B (a/L)^γ'

with a the lattice constant (nm) and L the crystallite size (nm); A is signed per band
(A > 0: the band softens as L shrinks, as the Si optic phonon does; A < 0: it hardens, as
anatase Eg(144) does), B ≥ 0. Si uses the published fit A = 52.3 cm⁻¹, γ = 1.586,
a = 0.543 nm; its width law (B = 100 cm⁻¹, γ' = 1.4) is chosen to give ΔΓ ≈ 4.5 cm⁻¹ at
5 nm, roughly what the Richter–Wang–Ley / Campbell–Fauchet model gives (a chosen value,
not a published fit). The other phases use
γ = γ' = 1.5 and A, B chosen to reproduce typical nanocrystal shifts/broadenings at
L = 5 nm (column "5 nm" below; e.g. anatase Eg(144) +5 cm⁻¹ and +10 cm⁻¹ FWHM, cf. Kelly
et al. 1997, Bersani et al. 1998, Choi et al. 2005; nanodiamond −8 cm⁻¹, Yoshikawa et
al. 1995). Second-order / multi-phonon bands have A = B = 0 (not modelled). The law is
meant for L ≈ 2–100 nm; it is not capped below.

**Widths.** Lorentzian FWHM, widths added *linearly* (a simplification: Lorentzian
contributions add linearly, and the instrument and strain parts, really closer to
Gaussian, are treated as Lorentzian too):

    Γ = max(Γ0 + (dΓ/dT)(T − 298.15 K), Γ0/4) + ΔΓ_conf + ΔΓ_ε + Γ_instr,
    ΔΓ_ε = 2√(2 ln 2) · √3 · γ_G · ω0 · ε

The microstrain ε (the rms lattice strain of XRD's Williamson–Hall analysis, the common
``strain`` condition) broadens bands, it does not shift them: independent normal-strain
components of rms ε give a volume-strain spread of √3 ε and, through the mode Grüneisen
parameter γ_G, a frequency spread σ_ω = √3 γ_G ω0 ε (FWHM 2.355 σ_ω). Profile: pure
Lorentzian (η = 1).

**Phases.** Raman-active: anatase, rutile, ZnO, Si, diamond, graphite, hematite,
corundum. alpha_Fe, gamma_Fe, Cu, Al (one atom per primitive cell: no optical phonons)
and NaCl (every atom at an inversion centre) have no first-order Raman spectrum and are
rejected.

**Band table** (ω0 cm⁻¹ at 298 K; I relative integrated intensity; Γ0 intrinsic FWHM
cm⁻¹; dω/dT cm⁻¹/K; "5 nm": Δω_conf / ΔΓ_conf at L = 5 nm). Positions: Si Parker et al.
1967 / Hart et al. 1970; diamond Solin & Ramdas 1970; graphite Tuinstra & Koenig 1970,
Ferrari & Robertson 2000; anatase Ohsaka et al. 1978; rutile Porto et al. 1967; ZnO
Damen et al. 1966, Cuscó et al. 2007; hematite de Faria et al. 1997; corundum Porto &
Krishnan 1967. dω/dT: Si −0.022 (Hart et al. 1970; Balkanski et al. 1983), diamond
−0.012 (Zouboulis & Grimsditch 1991), graphite G −0.011 (Tan et al. 1999), anatase
Eg(144) +0.008 (it *hardens* on heating, Ohsaka 1980); the other values are typical
(−0.010 to −0.020) estimates. Widths and relative intensities are typical values of
well-crystallised powders; they are approximate.

    phase     σ    a (nm)  band            ω0     I     Γ0   dω/dT   5 nm (Δω/ΔΓ)
    Si        1.0  0.543   2TA(X)          302   0.04   20   −0.010   0 / 0
                           F2g (TO/LO)    520.7  1.00   3.5  −0.022  −1.5 / +4.5
                           2TO            965   0.12   45   −0.045   0 / 0
    diamond   0.3  0.3567  F2g           1332   1.00   2.0  −0.012  −8.0 / +24.8
    graphite  0.2  0.2464  D             1350   4.4/L  25   −0.011   0 / +19.7
                           G (E2g)       1580   1.00   15   −0.011  +5.0 / +15.0
                           D'            1620   0.66/L 12   −0.011   0 / +10.0
    anatase   1.5  0.3785  Eg             144   1.00   7.5  +0.008  +5.0 / +10.0
                           Eg             197   0.06   8    −0.005  +2.9 / +10.0
                           B1g            399   0.35   20   −0.010  −4.0 / +10.0
                           A1g+B1g        513   0.35   22   −0.010  +1.0 / +10.0
                           Eg             639   0.55   25   −0.012  −4.0 / +10.0
    rutile    0.5  0.4594  multi-phonon   240   0.60   65   −0.010   0 / 0
                           Eg             447   0.85   32   −0.012  −5.0 / +10.0
                           A1g            612   1.00   38   −0.010  −3.1 / +10.0
    ZnO       0.2  0.3250  E2(low)         99   0.30   3    −0.002   0 / +2.0
                           E2H−E2L        332   0.25   25   −0.010   0 / 0
                           A1(TO)         380   0.08   10   −0.012  −2.0 / +8.0
                           E2(high)       438   1.00   8    −0.016  −3.0 / +8.0
                           E1(LO)         583   0.15   20   −0.020  −4.0 / +8.0
    hematite  0.5  0.5036  A1g 225 (0.55, 7), Eg 245 (0.12, 8), Eg 293 (1.0, 10),
                           Eg 412 (0.6, 15), A1g 498 (0.15, 20), Eg 613 (0.5, 25):
                           −0.015, −2.0 / +8.0 each; 2LO 1320 (1.5, 60) −0.030, 0 / 0
    corundum  0.05 0.4759  Eg 378 (0.3, 4), A1g 418 (1.0, 3.5), Eg 432 (0.08, 5),
                           Eg 451 (0.1, 5), Eg 578 (0.2, 6), A1g 645 (0.1, 6),
                           Eg 751 (0.25, 7): −0.012, −2.0 / +7.9 each

Per phase (dΓ/dT cm⁻¹/K; γ_G): Si 0.010, 0.98 (Balkanski 1983; Weinstein & Piermarini
1975); diamond 0.004, 0.96; graphite 0.005, 1.9 (in-plane, Mohiuddin et al. 2009);
anatase 0.012, 1.0; rutile 0.015, 1.0; ZnO 0.008, 1.4 (Decremps et al. 2002); hematite
0.015, 1.0; corundum 0.005, 1.0 (1.0: nominal).

:meth:`Raman.line_positions` gives the *bulk* (L → ∞) positions at each temperature (the
"allowed bands"); confinement moves a band by at most ≈ 8 cm⁻¹ at 5 nm, which
:meth:`Raman.lines` includes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genmat.sim.materials import SimInputError
from genmat.sim.spectra import BackgroundPrior, LineOracle, LineSet, SpectrumAxis, array_function, as_tensor, check_state

ROOM_TEMPERATURE_K = 298.15
HC_OVER_K_CM_K = 1.438777  # second radiation constant hc/k_B (cm·K)
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
TUINSTRA_KOENIG_C_NM = 4.4  # C(514.5 nm) of I_D/I_G = C/L_a
D_PRIME_PER_D = 0.15  # D' / D integrated-intensity ratio (approximate)


@dataclass(frozen=True)
class RamanBand:
    label: str
    shift_cm: float  # ω0 at 298 K, bulk
    intensity: float  # integrated, relative to the phase's reference band
    fwhm_cm: float  # intrinsic Γ0 at 298 K, bulk
    dshift_dT: float  # cm⁻¹/K
    confine_shift_cm: float = 0.0  # A (signed): Δω = −A (a/L)^γ
    confine_width_cm: float = 0.0  # B ≥ 0: ΔΓ = B (a/L)^γ'
    disorder_nm: float = 0.0  # extra intensity disorder_nm / L (graphite D, D')


@dataclass(frozen=True)
class RamanPhase:
    name: str
    cross_section: float  # σ per unit weight fraction, relative to Si (approximate)
    lattice_nm: float  # a of the confinement law
    gamma_shift: float  # γ
    gamma_width: float  # γ'
    dfwhm_dT: float  # cm⁻¹/K
    gruneisen: float  # mode Grüneisen parameter γ_G (microstrain broadening)
    bands: tuple[RamanBand, ...]


def _oxide_bands(bands, dshift, a_conf, b_conf):
    return tuple(RamanBand(label, w, i, g, dshift, a_conf, b_conf) for label, w, i, g in bands)


RAMAN_PHASES: dict[str, RamanPhase] = {
    "anatase": RamanPhase("anatase", 1.5, 0.37845, 1.5, 1.5, 0.012, 1.0, (
        RamanBand("Eg", 144.0, 1.00, 7.5, +0.008, -240.0, 480.0),
        RamanBand("Eg", 197.0, 0.06, 8.0, -0.005, -140.0, 480.0),
        RamanBand("B1g", 399.0, 0.35, 20.0, -0.010, 190.0, 480.0),
        RamanBand("A1g+B1g", 513.0, 0.35, 22.0, -0.010, -50.0, 480.0),
        RamanBand("Eg", 639.0, 0.55, 25.0, -0.012, 190.0, 480.0),
    )),
    "rutile": RamanPhase("rutile", 0.5, 0.45937, 1.5, 1.5, 0.015, 1.0, (
        RamanBand("multi-phonon", 240.0, 0.60, 65.0, -0.010),
        RamanBand("Eg", 447.0, 0.85, 32.0, -0.012, 180.0, 360.0),
        RamanBand("A1g", 612.0, 1.00, 38.0, -0.010, 110.0, 360.0),
    )),
    "ZnO": RamanPhase("ZnO", 0.2, 0.32498, 1.5, 1.5, 0.008, 1.4, (
        RamanBand("E2(low)", 99.0, 0.30, 3.0, -0.002, 0.0, 120.0),
        RamanBand("E2H-E2L", 332.0, 0.25, 25.0, -0.010),
        RamanBand("A1(TO)", 380.0, 0.08, 10.0, -0.012, 120.0, 480.0),
        RamanBand("E2(high)", 438.0, 1.00, 8.0, -0.016, 180.0, 480.0),
        RamanBand("E1(LO)", 583.0, 0.15, 20.0, -0.020, 240.0, 480.0),
    )),
    "Si": RamanPhase("Si", 1.0, 0.543, 1.586, 1.4, 0.010, 0.98, (
        RamanBand("2TA(X)", 302.0, 0.04, 20.0, -0.010),
        RamanBand("F2g", 520.7, 1.00, 3.5, -0.022, 52.3, 100.0),
        RamanBand("2TO", 965.0, 0.12, 45.0, -0.045),
    )),
    "diamond": RamanPhase("diamond", 0.3, 0.35668, 1.5, 1.5, 0.004, 0.96, (
        RamanBand("F2g", 1332.0, 1.00, 2.0, -0.012, 420.0, 1300.0),
    )),
    "graphite": RamanPhase("graphite", 0.2, 0.2464, 1.5, 1.5, 0.005, 1.9, (
        RamanBand("D", 1350.0, 0.0, 25.0, -0.011, 0.0, 1800.0, TUINSTRA_KOENIG_C_NM),
        RamanBand("G", 1580.0, 1.0, 15.0, -0.011, -460.0, 1370.0),
        RamanBand("D'", 1620.0, 0.0, 12.0, -0.011, 0.0, 915.0, D_PRIME_PER_D * TUINSTRA_KOENIG_C_NM),
    )),
    "hematite": RamanPhase("hematite", 0.5, 0.50356, 1.5, 1.5, 0.015, 1.0, (
        *_oxide_bands([("A1g", 225.0, 0.55, 7.0), ("Eg", 245.0, 0.12, 8.0), ("Eg", 293.0, 1.00, 10.0),
                       ("Eg", 412.0, 0.60, 15.0), ("A1g", 498.0, 0.15, 20.0), ("Eg", 613.0, 0.50, 25.0)],
                      -0.015, 63.0, 250.0),
        RamanBand("2LO", 1320.0, 1.50, 60.0, -0.030),
    )),
    "corundum": RamanPhase("corundum", 0.05, 0.47589, 1.5, 1.5, 0.005, 1.0, _oxide_bands(
        [("Eg", 378.0, 0.30, 4.0), ("A1g", 418.0, 1.00, 3.5), ("Eg", 432.0, 0.08, 5.0), ("Eg", 451.0, 0.10, 5.0),
         ("Eg", 578.0, 0.20, 6.0), ("A1g", 645.0, 0.10, 6.0), ("Eg", 751.0, 0.25, 7.0)],
        -0.012, 68.0, 270.0)),
}
RAMAN_INACTIVE = ("alpha_Fe", "gamma_Fe", "Cu", "Al", "NaCl")  # no first-order Raman bands


def check_phases(phases) -> tuple[str, ...]:
    """Phase names, each Raman-active, none repeated."""
    allowed = "one of the Raman-active phases: " + ", ".join(RAMAN_PHASES)
    phases = (phases,) if isinstance(phases, str) else tuple(phases)
    if not phases:
        raise SimInputError("phases", "()", allowed)
    for p in phases:
        if p not in RAMAN_PHASES:
            raise SimInputError("phases", p, allowed)
    if len(set(phases)) != len(phases):
        raise SimInputError("phases", ", ".join(phases), "distinct names")
    return phases


@dataclass(frozen=True)
class _Bands:
    """The bands of a phase set as flat ``(K,)`` arrays."""

    phase: np.ndarray
    shift: np.ndarray
    intensity: np.ndarray
    disorder: np.ndarray
    fwhm: np.ndarray
    dshift_dT: np.ndarray
    conf_a: np.ndarray  # A
    conf_b: np.ndarray  # B
    lattice: np.ndarray
    gamma: np.ndarray
    gamma_w: np.ndarray
    dfwhm_dT: np.ndarray
    gruneisen: np.ndarray
    sigma: np.ndarray

    @property
    def strain_fwhm_per_unit(self) -> np.ndarray:
        """ΔΓ_ε / ε (cm⁻¹ per unit microstrain)."""
        return FWHM_PER_SIGMA * math.sqrt(3) * np.abs(self.gruneisen) * self.shift

    def column(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """One band property ``(K,)`` as a tensor like ``like``."""
        return as_tensor(getattr(self, name), like)

    @array_function
    def confinement(self, size_nm):
        """(Δω, ΔΓ) ``(B, K)`` for sizes ``(B,)`` (nm)."""
        c = functools.partial(self.column, like=size_nm)
        r = c("lattice") / size_nm.reshape(-1, 1)
        return -c("conf_a") * r ** c("gamma"), c("conf_b") * r ** c("gamma_w")

    @array_function
    def thermal_fwhm(self, dt):
        """max(Γ0 + dΓ/dT ΔT, Γ0/4) ``(B, K)`` for ΔT ``(B,)``."""
        fwhm = self.column("fwhm", dt)
        return torch.maximum(fwhm + self.column("dfwhm_dT", dt) * dt.reshape(-1, 1), 0.25 * fwhm)


@functools.lru_cache(maxsize=64)
def _bands(phases: tuple[str, ...]) -> _Bands:
    rows = []
    for i, name in enumerate(phases):
        ph = RAMAN_PHASES[name]
        for b in ph.bands:
            rows.append((i, b.shift_cm, b.intensity, b.disorder_nm, b.fwhm_cm, b.dshift_dT, b.confine_shift_cm,
                         b.confine_width_cm, ph.lattice_nm, ph.gamma_shift, ph.gamma_width, ph.dfwhm_dT,
                         ph.gruneisen, ph.cross_section))
    cols = [np.array(c) for c in zip(*rows)]
    out = _Bands(cols[0].astype(int), *cols[1:])
    for v in vars(out).values():
        v.flags.writeable = False
    return out


@array_function
def bose_factor(shift_cm, temperature_K):
    """Stokes thermal factor n(ω, T) + 1 = 1 / (1 − exp(−hcω/kT))."""
    return 1.0 / -torch.expm1(-HC_OVER_K_CM_K * shift_cm / temperature_K)


@dataclass(frozen=True)
class RamanConfig:
    axis: SpectrumAxis = SpectrumAxis(80.0, 1700.0, 1024, "Raman shift (cm⁻¹)")
    eta: float = 1.0  # Lorentzian fraction: pure Lorentzian bands
    instrument_fwhm_cm: float = 4.0  # added linearly to the band width
    # total counts of a band with I·σ = 1 in a pure phase. At 298 K pure anatase's Eg(144)
    # then peaks at ≈ 7000 (5 nm) to 12000 (30 nm) counts (×2.7 at 1000 K: Bose factor)
    # and Si 520.7 at ≈ 8000–13000; the weak scatterers
    # (rutile, ZnO: σ ≤ 0.5 and broad bands) at ≈ 1000–1500 counts, enough over the
    # fluorescence for NNLS fractions within ≈ ±0.01 (at 30000 their error is ≈ ±0.02 rms)
    counts_per_unit: float = 100000.0
    # fluorescence: higher level than XRD's scatter, a broad slope/curvature, and the rise of
    # the laser-line (Rayleigh / edge-filter) tail at the low-shift end
    background: BackgroundPrior = field(default_factory=lambda: BackgroundPrior(
        level=(200.0, 600.0), shape=(0.5, 0.3, 0.1), decay=(0.2, 2.0)))
    reference_temperature_K: float = ROOM_TEMPERATURE_K  # temperature of the band table


class Raman(LineOracle):
    """Technique object of the Raman oracle: the bands of a phase set for given conditions."""

    name = "raman"
    family = "raman"

    def __init__(self, config: RamanConfig | None = None) -> None:
        super().__init__(config or RamanConfig())

    def check_phases(self, phases) -> tuple[str, ...]:
        return check_phases(phases)

    @array_function
    def _dt(self, temperature_K):
        return torch.atleast_1d(temperature_K) - self.config.reference_temperature_K

    @array_function
    def line_positions(self, phases, temperature_K):
        """Bulk (L → ∞) band centres ``(B, K)`` (cm⁻¹ at each temperature) and phase index
        ``(K,)``; confinement shifts of finite crystallites are in :meth:`lines`."""
        bands = _bands(check_phases(phases))
        dt = self._dt(temperature_K)
        centers = bands.column("shift", dt) + bands.column("dshift_dT", dt) * dt[:, None]
        return centers, bands.phase

    @array_function
    def lines(self, phases, *, size_nm, strain, temperature_K) -> LineSet:
        """Bands for conditions ``(B,)`` (numpy or, differentiably, tensors): centres and
        FWHM ``(B, K)`` (confinement, thermal, microstrain and instrument terms; see the
        module docstring), ``strength`` ``(B, K)`` the band's total counts in a pure phase."""
        phases = check_phases(phases)
        size, strain, t = check_state(size_nm, strain, temperature_K)
        bands = _bands(phases)
        c = functools.partial(bands.column, like=t)
        centers, index = self.line_positions(phases, t)
        d_shift, d_fwhm = bands.confinement(size)
        centers = centers + d_shift
        fwhm = (bands.thermal_fwhm(self._dt(t)) + d_fwhm + c("strain_fwhm_per_unit") * strain[:, None]
                + self.config.instrument_fwhm_cm)
        thermal = bose_factor(c("shift"), t[:, None]) / bose_factor(c("shift"), self.config.reference_temperature_K)
        intensity = c("intensity") + c("disorder") / size[:, None]
        strength = self.config.counts_per_unit * c("sigma") * intensity * thermal
        return LineSet(centers, fwhm, strength, index, len(phases))

    def width_to_size(self, fwhm, center, strain, *, phases=None, temperature_K=None) -> np.ndarray:
        """Crystallite size (nm) from a band's Lorentzian FWHM (cm⁻¹) by inverting the
        confinement broadening of the band whose bulk position is nearest ``center``:
        L = a (ΔΓ_conf / B)^(−1/γ') after removing the intrinsic (thermal), microstrain and
        instrument widths. NaN where nothing is left for confinement or the band has no
        confinement law (B = 0). ``phases`` restricts the candidate bands (default: every
        Raman-active phase; pass it, as bands of different phases lie close, e.g. ZnO 438 and
        rutile 447); ``temperature_K`` defaults to the reference temperature, 298.15 K."""
        bands = _bands(check_phases(RAMAN_PHASES if phases is None else phases))
        t = self.config.reference_temperature_K if temperature_K is None else temperature_K
        fwhm, center, strain, t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (fwhm, center, strain, t)))
        shape = fwhm.shape
        fwhm, center, strain, t = (v.reshape(-1) for v in (fwhm, center, strain, t))
        bulk = bands.shift + bands.dshift_dT * self._dt(t)[:, None]
        k = np.argmin(np.abs(bulk - center[:, None]), axis=1)
        rows = np.arange(len(k))
        rest = (fwhm - self.config.instrument_fwhm_cm - bands.thermal_fwhm(self._dt(t))[rows, k]
                - bands.strain_fwhm_per_unit[k] * strain)
        b = bands.conf_b[k]
        ok = (rest > 0) & (b > 0) & np.isfinite(rest)
        with np.errstate(invalid="ignore", divide="ignore"):
            size = bands.lattice[k] * (np.where(ok, rest, 1.0) / np.where(b > 0, b, 1.0)) ** (-1 / bands.gamma_w[k])
        return np.where(ok, size, np.nan).reshape(shape)
