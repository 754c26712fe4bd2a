"""FFT homogenisation of periodic two-phase micrographs (PHYSICS.md §3).

Moulinec–Suquet (1994, 1998) on the pixel grid, plane strain, batched over B.
A micrograph is a phase indicator ``(B, 1, Ny, Nx)`` or ``(B, Ny, Nx)`` with values
in [0, 1] (1 = phase B, the stiff phase; fractional values mix the two phases'
moduli linearly). Dim −2 is y (rows), dim −1 is x (columns); pixel spacing 1.

Two solvers, both stopping on the Moulinec–Suquet equilibrium error
``‖ξ·σ̂‖ / ‖σ̂(0)‖ < tol`` (sum over the full Fourier grid, ξ in rad/pixel):

- ``"basic"``: the fixed-point scheme ε ← ε − Γ⁰ * σ(ε), ⟨ε⟩ = Ē, with the
  reference medium λ0 = (λmin + λmax)/2, μ0 = (μmin + μmax)/2 (k0 likewise).
- ``"cg"`` (default): conjugate gradients on the Lippmann–Schwinger equation
  Γ⁰ * C : (Ē + ε̃) = 0 for the compatible zero-mean fluctuation ε̃ (Zeman et al.,
  J. Comput. Phys. 229 (2010) 8065). Γ⁰ C0 is the C0-orthogonal projection onto
  compatible fields, so Γ⁰ C is self-adjoint and positive in the C0-weighted inner
  product, in which CG is run. Same reference medium, same stopping rule.

Even grids: a Fourier mode on the Nyquist row/column whose frequency sign is
ambiguous (ξ and its alias are not parallel) gets Γ̂⁰ = C0⁻¹ (Moulinec & Suquet
1998), i.e. the stress is driven to zero there; modes whose alias is parallel
(pure x or pure y Nyquist modes) use the ordinary operator, so laminates along x
or y are exact on the pixel grid.

Moduli in GPa, conductivities in W/(m·K). Stiffness in Voigt order [xx, yy, xy]
with engineering shear strain, so ``stiffness[:, 2, 2]`` = C_xyxy.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import Tensor

from genmat.sim.materials import SimInputError, TwoPhaseMaterial, density
from genmat.sim.morphology import characteristic_length, phase_map, volume_fraction

__all__ = [
    "ElasticResult",
    "ConductivityResult",
    "homogenise_elastic",
    "homogenise_conductivity",
    "youngs_moduli",
    "isotropic_moduli",
    "hashin_shtrikman_bounds",
    "youngs_modulus_bounds",
    "micrograph_properties",
    "effective_stiffness",
    "effective_conductivity",
    "smooth_phase",
    "differentiable_properties",
    "SCHEMES",
]

ArrayLike = Union[float, int, Tensor]
SOLVERS = ("cg", "basic")
SCHEMES = ("continuous", "rotated")


@dataclass(frozen=True)
class ElasticResult:
    """stiffness: ``(B, 3, 3)`` GPa, Voigt [xx, yy, xy], engineering shear.
    iterations: ``(B,)`` int64, most iterations over the three load cases.
    residual: ``(B,)`` largest final equilibrium error over the load cases."""

    stiffness: Tensor
    iterations: Tensor
    residual: Tensor


@dataclass(frozen=True)
class ConductivityResult:
    """conductivity: ``(B, 2, 2)`` W/(m·K), order [x, y].
    iterations: ``(B,)`` int64; residual: ``(B,)`` as for :class:`ElasticResult`."""

    conductivity: Tensor
    iterations: Tensor
    residual: Tensor


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class _Fourier:
    """Frequencies of the rfft2 half-plane of an Ny×Nx grid, each ``(Ny, Nx//2 + 1)``."""

    xi_x: Tensor  # rad/pixel
    xi_y: Tensor
    n_x: Tensor  # unit vector ξ/|ξ| (0 at ξ = 0)
    n_y: Tensor
    xi_sq: Tensor
    ambiguous: Tensor  # bool: Nyquist mode whose alias is not parallel
    weight: Tensor  # multiplicity of each half-plane mode in the full plane (1 or 2)
    shape: tuple[int, int]


def _fourier(ny: int, nx: int, device: torch.device, dtype: torch.dtype, scheme: str = "continuous") -> _Fourier:
    fy = torch.fft.fftfreq(ny, d=1.0 / ny, device=device, dtype=dtype)  # integer frequencies
    fx = torch.fft.rfftfreq(nx, d=1.0 / nx, device=device, dtype=dtype)
    xi_y = (2 * math.pi / ny) * fy[:, None].expand(ny, fx.numel())
    xi_x = (2 * math.pi / nx) * fx[None, :].expand(ny, fx.numel())
    if scheme == "rotated":
        # Willot (2015): the derivative of the rotated (45°) finite-difference scheme,
        # k_x = 2 sin(ξx/2) cos(ξy/2), k_y = 2 cos(ξx/2) sin(ξy/2) (up to a phase common to
        # both components, which cancels in Γ̂⁰ and in |k·σ̂|). No Nyquist mode is
        # ambiguous; the (π, π) checkerboard mode has k = 0 and, like the mean, is not
        # a compatible fluctuation (Γ̂⁰ = 0 there).
        xi_x, xi_y = 2 * torch.sin(xi_x / 2) * torch.cos(xi_y / 2), 2 * torch.cos(xi_x / 2) * torch.sin(xi_y / 2)
        xi_x = torch.where(xi_x.abs() < 1e-12, torch.zeros_like(xi_x), xi_x)
        xi_y = torch.where(xi_y.abs() < 1e-12, torch.zeros_like(xi_y), xi_y)
    xi_sq = xi_x**2 + xi_y**2
    norm = torch.sqrt(xi_sq)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    n_x, n_y = xi_x / safe, xi_y / safe
    nyq_y = (fy[:, None] == -(ny // 2)) if ny % 2 == 0 else torch.zeros(ny, 1, dtype=torch.bool, device=device)
    nyq_x = (fx[None, :] == nx // 2) if nx % 2 == 0 else torch.zeros(1, fx.numel(), dtype=torch.bool, device=device)
    ambiguous = (nyq_y & (xi_x != 0)) | (nyq_x & (xi_y != 0))
    if scheme == "rotated":  # k vanishes along the Nyquist lines up to rounding: never ambiguous
        ambiguous = torch.zeros_like(ambiguous)
    weight = torch.full((1, fx.numel()), 2.0, dtype=dtype, device=device)
    weight[0, 0] = 1.0
    if nx % 2 == 0:
        weight[0, -1] = 1.0
    weight = weight.expand(ny, fx.numel())
    return _Fourier(xi_x, xi_y, n_x, n_y, xi_sq, ambiguous, weight, (ny, nx))


def _abs2(z: Tensor) -> Tensor:
    return z.real**2 + z.imag**2


# --------------------------------------------------------------- generic solvers
#
# Fields are (B, L, K, Ny, Nx): B samples, L load cases, K components
# (elastic: [xx, yy, xy] tensor components; conductivity: [x, y]).


@dataclass(frozen=True)
class _Problem:
    law: Callable[[Tensor], Tensor]  # pointwise constitutive law, real fields
    gamma: Callable[[Tensor], Tensor]  # Γ̂⁰ on spectra (zero at ξ = 0)
    inner: Callable[[Tensor, Tensor], Tensor]  # reference-weighted inner product -> (B, L)
    equilibrium_error: Callable[[Tensor], Tensor]  # spectra of the flux -> (B, L)
    shape: tuple[int, int]


def _rfft(f: Tensor) -> Tensor:
    return torch.fft.rfft2(f)


def _irfft(f: Tensor, shape: tuple[int, int]) -> Tensor:
    return torch.fft.irfft2(f, s=shape)


def _solve_basic(p: _Problem, e_mean: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor, Tensor]:
    """Moulinec–Suquet fixed point. e_mean: (B, L, K, 1, 1). Returns (strain, iterations, error)."""
    strain = e_mean.expand(*e_mean.shape[:3], *p.shape).clone()
    done = torch.zeros(strain.shape[:2], dtype=torch.bool, device=strain.device)
    iters = torch.zeros(strain.shape[:2], dtype=torch.int64, device=strain.device)
    for it in range(max_iter + 1):
        flux_hat = _rfft(p.law(strain))
        err = p.equilibrium_error(flux_hat)
        iters = torch.where(done, iters, torch.full_like(iters, it))  # updates applied so far
        done = done | (err < tol)
        if bool(done.all()) or it == max_iter:
            break
        active = (~done).to(strain.dtype)[..., None, None, None]
        strain = strain - active * _irfft(p.gamma(flux_hat), p.shape)
    return strain, iters, err


def _solve_cg(p: _Problem, e_mean: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor, Tensor]:
    """CG on Γ⁰ C ε̃ = −Γ⁰ C Ē in the C0 inner product (Zeman et al. 2010)."""
    flux_hat = _rfft(p.law(e_mean.expand(*e_mean.shape[:3], *p.shape)))
    x = torch.zeros(*e_mean.shape[:3], *p.shape, dtype=e_mean.dtype, device=e_mean.device)
    r = -_irfft(p.gamma(flux_hat), p.shape)
    d = r.clone()
    rr = p.inner(r, r)
    err = p.equilibrium_error(flux_hat)
    done = err < tol
    iters = torch.zeros(x.shape[:2], dtype=torch.int64, device=x.device)
    for it in range(1, max_iter + 1):
        if bool(done.all()):
            break
        q_hat = _rfft(p.law(d))
        a_d = _irfft(p.gamma(q_hat), p.shape)
        d_ad = p.inner(d, a_d)
        ok = (~done) & (d_ad > 0)
        alpha = torch.where(ok, rr / torch.where(ok, d_ad, torch.ones_like(d_ad)), torch.zeros_like(rr))
        a5 = alpha[..., None, None, None]
        x = x + a5 * d
        r = r - a5 * a_d
        flux_hat = flux_hat + a5.to(flux_hat.dtype) * q_hat  # σ̂(Ē + x) kept by linearity
        err = torch.where(done, err, p.equilibrium_error(flux_hat))
        iters = torch.where(done, iters, torch.full_like(iters, it))
        done = done | (err < tol) | ~ok
        rr_new = p.inner(r, r)
        beta = torch.where(~done & (rr > 0), rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        d = r + beta[..., None, None, None] * d
        rr = rr_new
    return e_mean + x, iters, err


def _effective(p: _Problem, e_mean: Tensor, tol: float, max_iter: int, solver: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Solve the load cases; (effective tensor (B, K, L): column l the mean flux of load case l,
    local fields (B, L, K, Ny, Nx), iterations (B, L), final error (B, L))."""
    fields, iters, err = _run(p, e_mean, tol, max_iter, solver)
    return p.law(fields).mean(dim=(-2, -1)).transpose(1, 2).contiguous(), fields, iters, err


def _run(p: _Problem, e_mean: Tensor, tol: float, max_iter: int, solver: str) -> tuple[Tensor, Tensor, Tensor]:
    strain, iters, err = (_solve_cg if solver == "cg" else _solve_basic)(p, e_mean, tol, max_iter)
    if bool((err >= tol).any()):
        warnings.warn(
            f"FFT homogenisation ({solver}) did not reach tol={tol} in max_iter={max_iter} "
            f"iterations for some samples (largest error {float(err.max()):.3g})",
            RuntimeWarning,
            stacklevel=3,
        )
    return strain, iters, err


# ----------------------------------------------------------------- input checks


def _check_phase(phase: Tensor) -> Tensor:
    """(B, 1, Ny, Nx) or (B, Ny, Nx) in [0, 1] -> (B, Ny, Nx) floating."""
    if not isinstance(phase, Tensor):
        raise SimInputError("phase", type(phase).__name__, "a torch.Tensor of shape (B, 1, Ny, Nx) or (B, Ny, Nx)")
    if phase.dim() == 4 and phase.shape[1] == 1:
        phase = phase[:, 0]
    if phase.dim() != 3 or min(phase.shape[-2:]) < 2:
        raise SimInputError("phase", tuple(phase.shape), "shape (B, 1, Ny, Nx) or (B, Ny, Nx) with Ny, Nx >= 2")
    if not phase.is_floating_point():
        phase = phase.to(torch.float32)
    if bool(((phase < 0) | (phase > 1) | ~torch.isfinite(phase)).any()):
        raise SimInputError("phase", "tensor", "values in [0, 1] (1 = phase B); threshold c with phase_map first")
    return phase


def _check_solver(solver: str, tol: float, max_iter: int, scheme: str = "continuous") -> None:
    if scheme not in SCHEMES:
        raise SimInputError("scheme", scheme, f"one of {SCHEMES}")
    if solver not in SOLVERS:
        raise SimInputError("solver", solver, f"one of {SOLVERS}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise SimInputError("tol", tol, "a number in (0, 1)")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise SimInputError("max_iter", max_iter, "an integer >= 1")


# -------------------------------------------------------------------- elasticity


def homogenise_elastic(
    phase: Tensor,
    material: TwoPhaseMaterial = TwoPhaseMaterial(),
    *,
    tol: float = 1e-4,
    max_iter: int = 500,
    solver: str = "cg",
    scheme: str = "continuous",
) -> ElasticResult:
    """Effective plane-strain stiffness of periodic two-phase micrographs.

    phase: ``(B, 1, Ny, Nx)`` or ``(B, Ny, Nx)`` indicator of phase B in [0, 1];
    computation runs in its dtype (float32 unless float64 is given) on its device.
    Three load cases, unit mean strains ε_xx, ε_yy and engineering γ_xy, are solved
    together; column j of the result is the mean stress of load case j.
    ``scheme``: "continuous" (Moulinec–Suquet's Green operator) or "rotated" (Willot 2015;
    accurate at high contrast and with a void phase, E = 0).
    Returns :class:`ElasticResult` with stiffness ``(B, 3, 3)`` in GPa.
    """
    _check_solver(solver, tol, max_iter, scheme)
    problem, e_mean = _elastic_problem(_check_phase(phase), material, scheme)
    stiffness, _, iters, err = _effective(problem, e_mean, tol, max_iter, solver)
    return ElasticResult(stiffness, iters.max(dim=1).values, err.max(dim=1).values)


def _elastic_problem(ph: Tensor, material: TwoPhaseMaterial, scheme: str) -> tuple[_Problem, Tensor]:
    """The plane-strain problem on a checked (B, Ny, Nx) phase field and its three load cases."""
    b, (ny, nx), dt, dev = ph.shape[0], ph.shape[-2:], ph.dtype, ph.device
    (lam_a, mu_a), (lam_b, mu_b) = material.lame_A, material.lame_B
    lam = (lam_a + (lam_b - lam_a) * ph)[:, None, None]  # (B, 1, 1, Ny, Nx)
    mu = (mu_a + (mu_b - mu_a) * ph)[:, None, None]
    lam0, mu0 = (lam_a + lam_b) / 2, (mu_a + mu_b) / 2
    c_nn = (lam0 + mu0) / (mu0 * (lam0 + 2 * mu0))
    s0_tr = lam0 / (2 * (lam0 + mu0))  # C0⁻¹: ε = (σ − s0_tr tr σ I) / (2 μ0)
    fo = _fourier(ny, nx, dev, dt, scheme)

    def law(e: Tensor) -> Tensor:  # plane strain: σ = λ tr ε I + 2 μ ε
        tr = lam * (e[:, :, 0:1] + e[:, :, 1:2])
        return torch.cat((tr + 2 * mu * e[:, :, 0:1], tr + 2 * mu * e[:, :, 1:2], 2 * mu * e[:, :, 2:3]), dim=2)

    def gamma(s: Tensor) -> Tensor:
        sxx, syy, sxy = s[:, :, 0], s[:, :, 1], s[:, :, 2]
        vx = sxx * fo.n_x + sxy * fo.n_y  # σ̂ n
        vy = sxy * fo.n_x + syy * fo.n_y
        nsn = fo.n_x * vx + fo.n_y * vy
        gxx = (fo.n_x * vx) / mu0 - c_nn * fo.n_x**2 * nsn
        gyy = (fo.n_y * vy) / mu0 - c_nn * fo.n_y**2 * nsn
        gxy = (fo.n_y * vx + fo.n_x * vy) / (2 * mu0) - c_nn * fo.n_x * fo.n_y * nsn
        tr = s0_tr * (sxx + syy)
        amb = fo.ambiguous
        gxx = torch.where(amb, (sxx - tr) / (2 * mu0), gxx)
        gyy = torch.where(amb, (syy - tr) / (2 * mu0), gyy)
        gxy = torch.where(amb, sxy / (2 * mu0), gxy)
        return torch.stack((gxx, gyy, gxy), dim=2)

    def inner(a: Tensor, c: Tensor) -> Tensor:  # Σ a : C0 : c
        tr = lam0 * (a[:, :, 0] + a[:, :, 1]) * (c[:, :, 0] + c[:, :, 1])
        dd = 2 * mu0 * (a[:, :, 0] * c[:, :, 0] + a[:, :, 1] * c[:, :, 1] + 2 * a[:, :, 2] * c[:, :, 2])
        return (tr + dd).sum(dim=(-2, -1))

    def equilibrium_error(s: Tensor) -> Tensor:
        sxx, syy, sxy = s[:, :, 0], s[:, :, 1], s[:, :, 2]
        div2 = _abs2(fo.xi_x * sxx + fo.xi_y * sxy) + _abs2(fo.xi_x * sxy + fo.xi_y * syy)
        frob2 = _abs2(sxx) + _abs2(syy) + 2 * _abs2(sxy)
        div2 = torch.where(fo.ambiguous, fo.xi_sq * frob2, div2)
        num = (fo.weight * div2).sum(dim=(-2, -1))
        den = frob2[..., 0, 0]
        return torch.sqrt(num / torch.where(den > 0, den, torch.ones_like(den)))

    e_mean = torch.zeros(b, 3, 3, 1, 1, dtype=dt, device=dev)
    e_mean[:, 0, 0] = 1.0  # ε_xx = 1
    e_mean[:, 1, 1] = 1.0  # ε_yy = 1
    e_mean[:, 2, 2] = 0.5  # γ_xy = 2 ε_xy = 1
    return _Problem(law, gamma, inner, equilibrium_error, (ny, nx)), e_mean


# ------------------------------------------------------------------ conductivity


def homogenise_conductivity(
    phase: Tensor,
    k_A: float,
    k_B: float,
    *,
    tol: float = 1e-4,
    max_iter: int = 500,
    solver: str = "cg",
    scheme: str = "continuous",
) -> ConductivityResult:
    """Effective conductivity tensor of periodic two-phase micrographs.

    phase: ``(B, 1, Ny, Nx)`` or ``(B, Ny, Nx)`` indicator of phase B in [0, 1];
    k_A, k_B: phase conductivities (> 0, any unit; W/(m·K) by convention).
    Two load cases (unit mean gradient along x, along y); Γ̂⁰ = ξξ / (k0 |ξ|²) with
    k0 = (k_A + k_B)/2; one of them may be 0 (a void phase, best with ``scheme="rotated"``).
    Returns :class:`ConductivityResult` with ``(B, 2, 2)``.
    """
    _check_solver(solver, tol, max_iter, scheme)
    _check_conductivities(k_A, k_B)
    problem, e_mean = _conductivity_problem(_check_phase(phase), k_A, k_B, scheme)
    conductivity, _, iters, err = _effective(problem, e_mean, tol, max_iter, solver)
    return ConductivityResult(conductivity, iters.max(dim=1).values, err.max(dim=1).values)


def _check_conductivities(k_A: float, k_B: float) -> None:
    for name, v in (("k_A", k_A), ("k_B", k_B)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise SimInputError(name, v, "a finite number >= 0 (0: a void phase)")
    if k_A == 0 and k_B == 0:
        raise SimInputError("k_B", k_B, "a number > 0 when k_A = 0 (only one phase may be void)")


def _conductivity_problem(ph: Tensor, k_A: float, k_B: float, scheme: str) -> tuple[_Problem, Tensor]:
    """The scalar problem on a checked (B, Ny, Nx) phase field and its two load cases."""
    b, (ny, nx), dt, dev = ph.shape[0], ph.shape[-2:], ph.dtype, ph.device
    k = (k_A + (k_B - k_A) * ph)[:, None, None]
    k0 = (k_A + k_B) / 2
    fo = _fourier(ny, nx, dev, dt, scheme)

    def law(e: Tensor) -> Tensor:
        return k * e

    def gamma(j: Tensor) -> Tensor:
        nj = fo.n_x * j[:, :, 0] + fo.n_y * j[:, :, 1]
        g = torch.stack((fo.n_x * nj, fo.n_y * nj), dim=2) / k0
        return torch.where(fo.ambiguous, j / k0, g)

    def inner(a: Tensor, c: Tensor) -> Tensor:
        return k0 * (a * c).sum(dim=(2, 3, 4))

    def equilibrium_error(j: Tensor) -> Tensor:
        div2 = _abs2(fo.xi_x * j[:, :, 0] + fo.xi_y * j[:, :, 1])
        norm2 = _abs2(j[:, :, 0]) + _abs2(j[:, :, 1])
        div2 = torch.where(fo.ambiguous, fo.xi_sq * norm2, div2)
        den = norm2[..., 0, 0]
        return torch.sqrt((fo.weight * div2).sum(dim=(-2, -1)) / torch.where(den > 0, den, torch.ones_like(den)))

    e_mean = torch.eye(2, dtype=dt, device=dev).reshape(1, 2, 2, 1, 1).repeat(b, 1, 1, 1, 1)
    return _Problem(law, gamma, inner, equilibrium_error, (ny, nx)), e_mean


# ---------------------------------------------------------- derived quantities


def _check_stiffness(stiffness: Tensor) -> None:
    if not isinstance(stiffness, Tensor) or stiffness.shape[-2:] != (3, 3):
        shape = tuple(stiffness.shape) if isinstance(stiffness, Tensor) else type(stiffness).__name__
        raise SimInputError("stiffness", shape, "a tensor of shape (B, 3, 3)")


def youngs_moduli(stiffness: Tensor) -> tuple[Tensor, Tensor]:
    """3-D-equivalent Young's moduli (E_x, E_y) from a plane-strain stiffness ``(B, 3, 3)``.

    With S = C⁻¹: plane-strain modulus E'_x = 1/S11, ν'_x = −S12/S11 and
    E_x = E'_x (1 + 2ν'_x) / (1 + ν'_x)² (likewise for y with S22), which returns E
    for an isotropic phase since E' = E/(1 − ν²), ν' = ν/(1 − ν). Same units as C.
    """
    _check_stiffness(stiffness)
    s = torch.linalg.inv(stiffness)
    out = []
    for i in (0, 1):
        e_p = 1 / s[..., i, i]
        nu_p = -s[..., 0, 1] / s[..., i, i]
        out.append(e_p * (1 + 2 * nu_p) / (1 + nu_p) ** 2)
    return out[0], out[1]


def isotropic_moduli(stiffness: Tensor) -> tuple[Tensor, Tensor]:
    """Isotropic projection (K, G) of a plane-strain stiffness ``(B, 3, 3)``.

    K = (C11 + C22 + 2 C12)/4 (plane-strain bulk modulus, λ + μ when isotropic),
    G = ((C11 + C22 − 2 C12)/4 + C33)/2 (μ when isotropic).
    """
    _check_stiffness(stiffness)
    c11, c22, c12, c33 = stiffness[..., 0, 0], stiffness[..., 1, 1], stiffness[..., 0, 1], stiffness[..., 2, 2]
    return (c11 + c22 + 2 * c12) / 4, ((c11 + c22 - 2 * c12) / 4 + c33) / 2


def _phi_tensor(phi_B: ArrayLike) -> Tensor:
    p = phi_B if isinstance(phi_B, Tensor) else torch.as_tensor(phi_B, dtype=torch.float64)
    if not p.is_floating_point():
        p = p.to(torch.float64)
    if bool(((p < 0) | (p > 1) | ~torch.isfinite(p)).any()):
        raise SimInputError("phi_B", phi_B if p.numel() == 1 else "tensor", "values in [0, 1]")
    return p


def hashin_shtrikman_bounds(phi_B: ArrayLike, material: TwoPhaseMaterial = TwoPhaseMaterial()) -> dict[str, Tensor]:
    """2-D (transverse, Hashin 1965) Hashin–Shtrikman bounds on K = λ + μ and G = μ, GPa.

    phi_B: volume fraction of phase B, float or tensor (any shape) in [0, 1].
    Written in Walpole's form, which equals the PHYSICS §3 form for a well-ordered
    pair (one phase stiffer in both K and G) and stays a valid bound otherwise:
        K_HS(G_r) = [Σ φ_i / (K_i + G_r)]⁻¹ − G_r,   G_r = G_max (upper) / G_min (lower)
        G_HS(ζ)   = [Σ φ_i / (G_i + ζ)]⁻¹ − ζ,       ζ = G_r K_r / (K_r + 2 G_r)
    with (K_r, G_r) = (K_max, G_max) for the upper and (K_min, G_min) for the lower.
    Returns dict with K_lower, K_upper, G_lower, G_upper (tensors shaped like phi_B).
    """
    p = _phi_tensor(phi_B)
    (lam_a, mu_a), (lam_b, mu_b) = material.lame_A, material.lame_B
    k_a, k_b = lam_a + mu_a, lam_b + mu_b
    g_a, g_b = mu_a, mu_b

    def k_hs(g_r: float) -> Tensor:
        return 1 / ((1 - p) / (k_a + g_r) + p / (k_b + g_r)) - g_r

    def g_hs(k_r: float, g_r: float) -> Tensor:
        zeta = g_r * k_r / (k_r + 2 * g_r)
        return 1 / ((1 - p) / (g_a + zeta) + p / (g_b + zeta)) - zeta

    k_max, k_min, g_max, g_min = max(k_a, k_b), min(k_a, k_b), max(g_a, g_b), min(g_a, g_b)
    return {
        "K_lower": k_hs(g_min),
        "K_upper": k_hs(g_max),
        "G_lower": g_hs(k_min, g_min),
        "G_upper": g_hs(k_max, g_max),
    }


def youngs_modulus_bounds(
    phi_B: ArrayLike, material: TwoPhaseMaterial = TwoPhaseMaterial()
) -> tuple[Tensor, Tensor]:
    """Bounds (E_lower, E_upper) in GPa on the 3-D-equivalent Young's modulus of an
    isotropic two-phase micrograph, E = G (3K − G) / K from the HS bounds on K, G
    (E increases with K, and with G while G < 3K/2, so bounds map to bounds)."""
    hs = hashin_shtrikman_bounds(phi_B, material)

    def e_of(k: Tensor, g: Tensor) -> Tensor:
        return g * (3 * k - g) / k

    return e_of(hs["K_lower"], hs["G_lower"]), e_of(hs["K_upper"], hs["G_upper"])


# ------------------------------------------- differentiable effective tensors (adjoint)


class _EnergyAdjoint(torch.autograd.Function):
    """Effective tensor of a linear cell problem, differentiable in the phase field χ.

    The effective tensor is the energy C*_kl = ⟨e_k : C(χ) : e_l⟩ of the local fields e_k
    of load cases k, l (PHYSICS.md §8). Its adjoint problem is the cell problem itself,
    with the load case k, so the adjoint field of C*_kl is e_k — already solved in the
    forward pass. Hence, for an N-pixel grid,
        ∂C*_kl / ∂χ(x) = e_k(x) : C′ : e_l(x) / N,   C′ = C_B − C_A (χ mixes linearly),
    exact at convergence (the energy is stationary in the fields), with no extra solve.
    """

    @staticmethod
    def forward(ctx, chi, build, bilinear, tol, max_iter):
        with torch.no_grad():
            problem, e_mean = build(chi.detach())
            tensor, fields, iters, _ = _effective(problem, e_mean, tol, max_iter, "cg")
        ctx.save_for_backward(fields)
        ctx.bilinear = bilinear
        ctx.mark_non_differentiable(iters)
        return tensor, iters.max(dim=1).values

    @staticmethod
    def backward(ctx, grad_tensor, _grad_iters):
        (fields,) = ctx.saved_tensors
        n = fields.shape[-2] * fields.shape[-1]
        return ctx.bilinear(grad_tensor, fields) / n, None, None, None, None


def _check_differentiable(chi: Tensor, scheme: str, tol: float, max_iter: int) -> Tensor:
    _check_solver("cg", tol, max_iter, scheme)
    if not isinstance(chi, Tensor):
        raise SimInputError("chi", type(chi).__name__, "a torch.Tensor of shape (B, 1, Ny, Nx) or (B, Ny, Nx)")
    with torch.no_grad():
        _check_phase(chi.detach())
    return chi[:, 0] if chi.dim() == 4 else chi


def effective_stiffness(
    chi: Tensor,
    material: TwoPhaseMaterial = TwoPhaseMaterial(),
    *,
    tol: float = 1e-5,
    max_iter: int = 500,
    scheme: str = "continuous",
) -> tuple[Tensor, Tensor]:
    """Plane-strain effective stiffness ``(B, 3, 3)`` (as :func:`homogenise_elastic`, CG
    solver) that autograd differentiates with respect to the phase field ``chi`` by the
    adjoint (see :class:`_EnergyAdjoint`); returns (stiffness, iterations ``(B,)``)."""
    ch = _check_differentiable(chi, scheme, tol, max_iter)
    (lam_a, mu_a), (lam_b, mu_b) = material.lame_A, material.lame_B
    d_lam, d_mu = lam_b - lam_a, mu_b - mu_a

    def bilinear(g: Tensor, e: Tensor) -> Tensor:  # Σ_kl g_kl e_k : C′ : e_l, fields (B, L, K, Ny, Nx)
        tr = e[:, :, 0] + e[:, :, 1]
        out = d_lam * torch.einsum("bkl,bkyx,blyx->byx", g, tr, tr)
        for c, w in ((0, 1.0), (1, 1.0), (2, 2.0)):
            out = out + 2 * d_mu * w * torch.einsum("bkl,bkyx,blyx->byx", g, e[:, :, c], e[:, :, c])
        return out

    return _EnergyAdjoint.apply(ch, lambda ph: _elastic_problem(ph, material, scheme), bilinear, tol, max_iter)


def effective_conductivity(
    chi: Tensor,
    k_A: float,
    k_B: float,
    *,
    tol: float = 1e-5,
    max_iter: int = 500,
    scheme: str = "continuous",
) -> tuple[Tensor, Tensor]:
    """Effective conductivity ``(B, 2, 2)`` (as :func:`homogenise_conductivity`, CG solver),
    differentiable with respect to ``chi`` by the adjoint: ∂k*_kl/∂χ(x) = (k_B − k_A)
    e_k(x)·e_l(x) / N. Returns (conductivity, iterations ``(B,)``)."""
    ch = _check_differentiable(chi, scheme, tol, max_iter)
    _check_conductivities(k_A, k_B)

    def bilinear(g: Tensor, e: Tensor) -> Tensor:
        return (k_B - k_A) * torch.einsum("bkl,bkcyx,blcyx->byx", g, e, e)

    return _EnergyAdjoint.apply(ch, lambda ph: _conductivity_problem(ph, k_A, k_B, scheme), bilinear, tol, max_iter)


def smooth_phase(c: Tensor, width: float = 0.1, threshold: float = 0.0) -> Tensor:
    """A differentiable phase-B indicator χ = ½ (1 + tanh((c − threshold) / width)) of the
    order parameter ``c`` (any shape). The oracle's sharp map is ``c > threshold``; the
    two agree to 2 % where |c − threshold| > width and differ only at the interfaces."""
    if not (isinstance(width, (int, float)) and width > 0):
        raise SimInputError("width", width, "a number > 0")
    return 0.5 * (1 + torch.tanh((c - threshold) / width))


def differentiable_properties(
    c: Tensor,
    material: TwoPhaseMaterial = TwoPhaseMaterial(),
    *,
    width: float = 0.05,
    tol: float = 1e-4,
    max_iter: int = 200,
    scheme: str = "continuous",
) -> dict[str, Tensor]:
    """The oracle's properties as a differentiable function of micrographs ``c``
    ``(B, 1, N, N)`` or ``(B, N, N)``: volume_fraction, density_g_cm3, E_GPa, k_W_mK,
    length_px, each ``(B,)``, and ``iterations`` (``(B,)``, elastic + thermal CG iterations,
    not differentiable).

    The phase field is :func:`smooth_phase` (``width``). E and k come from
    :func:`effective_stiffness` / :func:`effective_conductivity` (adjoint gradients); φ, ρ
    and the characteristic length (of c) are plain torch functions. A looser ``tol`` is the
    cheap fidelity. Measured against the oracle (``micrograph_properties``) on 48 simulated
    32² micrographs, width 0.05: E +0.59 % on average (largest 1.3 %), k +0.09 % (0.24 %),
    ρ 0.01 % at tol 1e-4 (17 CG iterations per sample, elastic + thermal) and the same at
    tol 1e-2 (8 iterations); width 0.02 halves the E bias (0.23 %) but only interface
    pixels then carry a gradient (tests/sim/test_adjoint.py).
    """
    if not isinstance(c, Tensor) or c.dim() not in (3, 4) or (c.dim() == 4 and c.shape[1] != 1):
        shape = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
        raise SimInputError("c", shape, "a tensor of shape (B, 1, N, N) or (B, N, N)")
    c3 = c[:, 0] if c.dim() == 4 else c
    chi = smooth_phase(c3, width)
    phi = chi.mean(dim=(-2, -1))
    stiff, it_el = effective_stiffness(chi, material, tol=tol, max_iter=max_iter, scheme=scheme)
    cond, it_th = effective_conductivity(chi, material.k_A_W_mK, material.k_B_W_mK, tol=tol,
                                         max_iter=max_iter, scheme=scheme)
    e_x, e_y = youngs_moduli(stiff)
    return {
        "volume_fraction": phi,
        "density_g_cm3": material.rho_A_g_cm3 + (material.rho_B_g_cm3 - material.rho_A_g_cm3) * phi,
        "E_GPa": (e_x + e_y) / 2,
        "k_W_mK": (cond[:, 0, 0] + cond[:, 1, 1]) / 2,
        "length_px": characteristic_length(c3),
        "iterations": it_el + it_th,
    }


# ------------------------------------------------------------------- the oracle


def micrograph_properties(
    c: Tensor,
    material: TwoPhaseMaterial = TwoPhaseMaterial(),
    *,
    threshold: float = 0.0,
    tol: float = 1e-4,
    solver: str = "cg",
    max_iter: int = 500,
    scheme: str = "continuous",
) -> dict[str, Tensor]:
    """Simulated properties of micrographs ``c``: ``(B, 1, N, N)`` or ``(B, N, N)``.

    The phase map is ``c > threshold`` (phase B). Returns a dict of ``(B,)`` tensors:
    volume_fraction, length_px (characteristic length, pixels), E_GPa (mean of
    E_x_GPa and E_y_GPa, 3-D-equivalent Young's moduli), k_W_mK (mean of k_xx and
    k_yy), density_g_cm3 (rule of mixtures), homogenisation_iterations (elastic + thermal).
    """
    if not isinstance(c, Tensor) or c.dim() not in (3, 4) or (c.dim() == 4 and c.shape[1] != 1):
        shape = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
        raise SimInputError("c", shape, "a tensor of shape (B, 1, N, N) or (B, N, N)")
    if not c.is_floating_point():
        c = c.to(torch.float32)
    ph = phase_map(c, threshold)
    phi = volume_fraction(ph)
    el = homogenise_elastic(ph, material, tol=tol, max_iter=max_iter, solver=solver, scheme=scheme)
    th = homogenise_conductivity(ph, material.k_A_W_mK, material.k_B_W_mK, tol=tol, max_iter=max_iter,
                                 solver=solver, scheme=scheme)
    e_x, e_y = youngs_moduli(el.stiffness)
    return {
        "volume_fraction": phi,
        "length_px": characteristic_length(c),
        "E_GPa": (e_x + e_y) / 2,
        "E_x_GPa": e_x,
        "E_y_GPa": e_y,
        "k_W_mK": (th.conductivity[:, 0, 0] + th.conductivity[:, 1, 1]) / 2,
        "density_g_cm3": density(phi, material).to(phi.dtype),
        "homogenisation_iterations": el.iterations + th.iterations,
    }
