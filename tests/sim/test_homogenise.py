"""Tests for genmat.sim.homogenise against closed-form effective properties.

Laminates and single phases are exact on the pixel grid, so those tests use a tight
solver tolerance (1e-10, float64) and compare at rel 1e-8. Random micrographs are
checked against the 2-D Hashin–Shtrikman bounds and the two solvers against each other.
"""

from __future__ import annotations

import math

import pytest
import torch

from genmat.sim import (
    SimInputError,
    TwoPhaseMaterial,
    hashin_shtrikman_bounds,
    homogenise_conductivity,
    homogenise_elastic,
    isotropic_moduli,
    micrograph_properties,
    youngs_modulus_bounds,
    youngs_moduli,
)

F64 = torch.float64


MAT = TwoPhaseMaterial()
SOLVERS = ["basic", "cg"]
TIGHT = dict(tol=1e-10, max_iter=2000)


def lame(E, nu):
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def iso_stiffness(lam, mu):
    """Plane-strain Voigt stiffness [xx, yy, xy], engineering shear."""
    return torch.tensor([[lam + 2 * mu, lam, 0.0], [lam, lam + 2 * mu, 0.0], [0.0, 0.0, mu]], dtype=F64)


def laminate_stiffness(prof, mat=MAT):
    """Backus-type plane-strain laminate, layers stacked along y (PHYSICS §3), from a
    0/1 layer profile; returns the Voigt stiffness in the laminate's own frame."""
    la, ma = lame(mat.E_A_GPa, mat.nu_A)
    lb, mb = lame(mat.E_B_GPa, mat.nu_B)
    lam, mu = la + (lb - la) * prof, ma + (mb - ma) * prof
    P = lam + 2 * mu
    inv_p = (1 / P).mean()
    c_yyyy = 1 / inv_p
    c_xxyy = (lam / P).mean() / inv_p
    c_xxxx = (4 * mu * (lam + mu) / P).mean() + (lam / P).mean() ** 2 / inv_p
    c_xyxy = 1 / (1 / mu).mean()
    return torch.tensor([[c_xxxx, c_xxyy, 0.0], [c_xxyy, c_yyyy, 0.0], [0.0, 0.0, c_xyxy]], dtype=F64)


VOIGT = [(0, 0), (1, 1), (0, 1)]


def rotate_voigt(c, q):
    """Rotate a Voigt stiffness: columns of q are the local axes in global coordinates."""
    t = torch.zeros(2, 2, 2, 2, dtype=F64)
    for a, (i, j) in enumerate(VOIGT):
        for b, (k, l) in enumerate(VOIGT):
            for (p, r) in {(i, j), (j, i)}:
                for (s, u) in {(k, l), (l, k)}:
                    t[p, r, s, u] = c[a, b]
    tg = torch.einsum("ia,jb,kc,ld,abcd->ijkl", q, q, q, q, t)
    return torch.tensor([[tg[i, j, k, l] for (k, l) in VOIGT] for (i, j) in VOIGT], dtype=F64)


def random_profile(n, seed):
    g = torch.Generator().manual_seed(seed)
    prof = (torch.rand(n, generator=g) < 0.45).to(F64)
    prof[0], prof[1] = 1.0, 0.0  # both phases present
    return prof


# ------------------------------------------------------------------ single phase


@pytest.mark.parametrize("solver", SOLVERS)
def test_homogeneous_medium_is_exact(solver):
    ph = torch.stack((torch.zeros(16, 16, dtype=F64), torch.ones(16, 16, dtype=F64)))[:, None]
    el = homogenise_elastic(ph, MAT, solver=solver, **TIGHT)
    torch.testing.assert_close(el.stiffness[0], iso_stiffness(*lame(70.0, 0.33)), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(el.stiffness[1], iso_stiffness(*lame(410.0, 0.14)), rtol=1e-12, atol=1e-10)
    e_x, e_y = youngs_moduli(el.stiffness)
    torch.testing.assert_close(e_x, torch.tensor([70.0, 410.0], dtype=F64), rtol=1e-12, atol=0)
    torch.testing.assert_close(e_y, e_x)
    assert el.iterations.tolist() == [0, 0]
    th = homogenise_conductivity(ph, 237.0, 120.0, solver=solver, **TIGHT)
    torch.testing.assert_close(th.conductivity[0], 237.0 * torch.eye(2, dtype=F64), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(th.conductivity[1], 120.0 * torch.eye(2, dtype=F64), rtol=1e-12, atol=1e-10)


def test_isotropic_moduli_of_isotropic_stiffness():
    lam, mu = lame(70.0, 0.33)
    K, G = isotropic_moduli(iso_stiffness(lam, mu)[None])
    assert K.item() == pytest.approx(lam + mu, rel=1e-12)
    assert G.item() == pytest.approx(mu, rel=1e-12)


def test_youngs_moduli_plane_strain_compliance():
    # Orthotropic plane-strain stiffness; E_x from the 2-D compliance S = C⁻¹ written out.
    c = torch.tensor([[[300.0, 80.0, 0.0], [80.0, 150.0, 0.0], [0.0, 0.0, 50.0]]], dtype=F64)
    det = 300.0 * 150.0 - 80.0**2
    s11, s22, s12 = 150.0 / det, 300.0 / det, -80.0 / det
    ex_p, nux_p = 1 / s11, -s12 / s11
    ey_p, nuy_p = 1 / s22, -s12 / s22
    e_x, e_y = youngs_moduli(c)
    assert e_x.item() == pytest.approx(ex_p * (1 + 2 * nux_p) / (1 + nux_p) ** 2, rel=1e-12)
    assert e_y.item() == pytest.approx(ey_p * (1 + 2 * nuy_p) / (1 + nuy_p) ** 2, rel=1e-12)


# --------------------------------------------------------------------- laminates


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("seed", [0, 1])
def test_laminate_stacked_along_y_and_rotated(solver, seed):
    n = 32
    prof = random_profile(n, seed)
    along_y = prof[:, None].expand(n, n)  # varies with y (rows): stripes run along x
    ph = torch.stack((along_y, along_y.T))  # second: rotated by 90°, stacked along x
    c_lam = laminate_stiffness(prof)
    perm = [1, 0, 2]
    el = homogenise_elastic(ph, MAT, solver=solver, **TIGHT)
    torch.testing.assert_close(el.stiffness[0], c_lam, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(el.stiffness[1], c_lam[perm][:, perm], rtol=1e-8, atol=1e-8)
    assert (el.residual < 1e-10).all()


@pytest.mark.parametrize("solver", SOLVERS)
def test_laminate_at_45_degrees(solver):
    # Phase depends on (i + j) mod N: layers with normal (1, 1)/√2. Even layer widths
    # leave no Nyquist content, so the pixel-grid problem is exactly the laminate.
    n = 32
    widths = [(1, 4), (0, 6), (1, 2), (0, 8), (1, 4), (0, 8)]
    prof = torch.cat([torch.full((w,), float(p), dtype=F64) for p, w in widths])
    i = torch.arange(n)
    ph = prof[(i[:, None] + i[None, :]) % n][None]
    t_dir = torch.tensor([1.0, -1.0], dtype=F64) / math.sqrt(2)  # along the layers
    n_dir = torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2)  # layer normal
    q = torch.stack((t_dir, n_dir), dim=1)
    expected = rotate_voigt(laminate_stiffness(prof), q)
    el = homogenise_elastic(ph, MAT, solver=solver, **TIGHT)
    torch.testing.assert_close(el.stiffness[0], expected, rtol=1e-8, atol=1e-8)
    # Scalar: k = k_par t t + k_perp n n.
    k = 237.0 + (120.0 - 237.0) * prof
    k_par, k_perp = k.mean(), 1 / (1 / k).mean()
    th = homogenise_conductivity(ph, 237.0, 120.0, solver=solver, **TIGHT)
    expected_k = k_par * torch.outer(t_dir, t_dir) + k_perp * torch.outer(n_dir, n_dir)
    torch.testing.assert_close(th.conductivity[0], expected_k, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS)
def test_scalar_laminate_parallel_and_series(solver):
    n = 32
    prof = random_profile(n, 3)
    along_y = prof[:, None].expand(n, n)
    ph = torch.stack((along_y, along_y.T))
    k_a, k_b = 237.0, 120.0
    phi = prof.mean()
    k_par = phi * k_b + (1 - phi) * k_a
    k_perp = 1 / (phi / k_b + (1 - phi) / k_a)
    th = homogenise_conductivity(ph, k_a, k_b, solver=solver, **TIGHT)
    expected = torch.stack((torch.diag(torch.stack((k_par, k_perp))), torch.diag(torch.stack((k_perp, k_par)))))
    torch.testing.assert_close(th.conductivity, expected, rtol=1e-8, atol=1e-8)


# ------------------------------------------------------------ Hashin–Shtrikman


def hs_physics_form(phi_b, mat=MAT):
    """PHYSICS §3 (Hashin 1965), phase 2 = stiffer for the upper bound, roles swapped for the lower."""
    la, ma = lame(mat.E_A_GPa, mat.nu_A)
    lb, mb = lame(mat.E_B_GPa, mat.nu_B)
    soft = (la + ma, ma, 1 - phi_b)  # (K, G, φ)
    stiff = (lb + mb, mb, phi_b)

    def bound(p1, p2):
        k1, g1, f1 = p1
        k2, g2, f2 = p2
        k = k2 + f1 / (1 / (k1 - k2) + f2 / (k2 + g2))
        g = g2 + f1 / (1 / (g1 - g2) + f2 * (k2 + 2 * g2) / (2 * g2 * (k2 + g2)))
        return k, g

    k_up, g_up = bound(soft, stiff)
    k_lo, g_lo = bound(stiff, soft)
    return k_lo, k_up, g_lo, g_up


@pytest.mark.parametrize("phi", [0.1, 0.3, 0.5, 0.8])
def test_hs_bounds_match_physics_formula(phi):
    hs = hashin_shtrikman_bounds(phi)
    k_lo, k_up, g_lo, g_up = hs_physics_form(phi)
    assert hs["K_lower"].item() == pytest.approx(k_lo, rel=1e-12)
    assert hs["K_upper"].item() == pytest.approx(k_up, rel=1e-12)
    assert hs["G_lower"].item() == pytest.approx(g_lo, rel=1e-12)
    assert hs["G_upper"].item() == pytest.approx(g_up, rel=1e-12)
    e_lo, e_up = youngs_modulus_bounds(phi)
    assert e_lo.item() == pytest.approx(g_lo * (3 * k_lo - g_lo) / k_lo, rel=1e-12)
    assert e_up.item() == pytest.approx(g_up * (3 * k_up - g_up) / k_up, rel=1e-12)
    assert e_lo.item() < e_up.item()


def test_hs_bounds_end_points_and_tensor_input():
    phi = torch.tensor([0.0, 1.0], dtype=F64)
    hs = hashin_shtrikman_bounds(phi)
    la, ma = lame(70.0, 0.33)
    lb, mb = lame(410.0, 0.14)
    for key, a, b in (("K", la + ma, lb + mb), ("G", ma, mb)):
        for side in ("lower", "upper"):
            torch.testing.assert_close(hs[f"{key}_{side}"], torch.tensor([a, b], dtype=F64), rtol=1e-12, atol=1e-12)
    e_lo, e_up = youngs_modulus_bounds(phi)
    torch.testing.assert_close(e_lo, torch.tensor([70.0, 410.0], dtype=F64), rtol=1e-12, atol=0)
    torch.testing.assert_close(e_up, e_lo)
    with pytest.raises(ValueError, match=r"phi_B.*\[0, 1\]"):
        hashin_shtrikman_bounds(1.5)


def smoothed_noise_phases(phis, n=48, width=3.0, seed=0):
    """Isotropic random two-phase micrographs: Gaussian-filtered white noise cut at
    the (1 − φ) quantile. Returns (len(phis), n, n) float64 in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(phis), n, n, generator=g, dtype=F64)
    f = torch.fft.fftfreq(n, dtype=F64)
    kernel = torch.exp(-2 * (math.pi * width) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    smooth = torch.fft.ifft2(torch.fft.fft2(noise) * kernel).real
    out = []
    for field, phi in zip(smooth, phis):
        out.append((field > torch.quantile(field.flatten(), 1 - phi)).to(F64))
    return torch.stack(out)


def test_random_isotropic_micrographs_inside_hs_bounds():
    phis = [0.2, 0.35, 0.5, 0.65, 0.8]
    ph = smoothed_noise_phases(phis)
    el = homogenise_elastic(ph, MAT, tol=1e-6)
    K, G = isotropic_moduli(el.stiffness)
    hs = hashin_shtrikman_bounds(ph.mean(dim=(1, 2)))
    assert (hs["K_lower"] <= K).all() and (K <= hs["K_upper"]).all()
    assert (hs["G_lower"] <= G).all() and (G <= hs["G_upper"]).all()


def test_solvers_agree_and_cg_needs_fewer_iterations():
    ph = smoothed_noise_phases([0.3, 0.5, 0.7], n=32, seed=1)
    basic = homogenise_elastic(ph, MAT, tol=1e-8, solver="basic")
    cg = homogenise_elastic(ph, MAT, tol=1e-8, solver="cg")
    torch.testing.assert_close(cg.stiffness, basic.stiffness, rtol=1e-6, atol=1e-5)
    assert (cg.iterations < basic.iterations).all()
    tb = homogenise_conductivity(ph, 237.0, 120.0, tol=1e-8, solver="basic")
    tc = homogenise_conductivity(ph, 237.0, 120.0, tol=1e-8, solver="cg")
    torch.testing.assert_close(tc.conductivity, tb.conductivity, rtol=1e-6, atol=1e-5)
    # Symmetric effective tensors.
    torch.testing.assert_close(cg.stiffness, cg.stiffness.transpose(1, 2), rtol=1e-6, atol=1e-5)


def test_float32_default_converges_to_tol():
    ph = smoothed_noise_phases([0.4, 0.6], n=32, seed=2).float()
    el = homogenise_elastic(ph, MAT)
    assert el.stiffness.dtype == torch.float32 and (el.residual < 1e-4).all()
    ref = homogenise_elastic(ph.double(), MAT, tol=1e-8)
    torch.testing.assert_close(el.stiffness.double(), ref.stiffness, rtol=1e-3, atol=1e-2)


# ------------------------------------------------------------------ the oracle


def test_micrograph_properties_homogeneous_and_laminate():
    n = 32
    prof = random_profile(n, 4)
    c = torch.stack((-torch.ones(n, n), torch.ones(n, n), 2 * prof[:, None].expand(n, n).float() - 1))[:, None]
    props = micrograph_properties(c)
    expected_keys = {"volume_fraction", "length_px", "E_GPa", "E_x_GPa", "E_y_GPa", "k_W_mK", "density_g_cm3",
                     "homogenisation_iterations"}
    assert set(props) == expected_keys and all(v.shape == (3,) for v in props.values())
    phi = prof.mean().item()
    torch.testing.assert_close(props["volume_fraction"], torch.tensor([0.0, 1.0, phi]))
    torch.testing.assert_close(props["density_g_cm3"], torch.tensor([2.70, 3.21, 3.21 * phi + 2.70 * (1 - phi)]))
    assert props["E_GPa"][:2].tolist() == pytest.approx([70.0, 410.0], rel=1e-5)
    assert props["k_W_mK"][:2].tolist() == pytest.approx([237.0, 120.0], rel=1e-5)
    e_x, e_y = youngs_moduli(laminate_stiffness(prof)[None])
    assert props["E_x_GPa"][2].item() == pytest.approx(e_x.item(), rel=1e-3)
    assert props["E_y_GPa"][2].item() == pytest.approx(e_y.item(), rel=1e-3)
    assert props["E_GPa"][2].item() == pytest.approx((e_x + e_y).item() / 2, rel=1e-3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: homogenise_elastic(torch.zeros(2, 3, 8, 8)), r"phase.*\(B, 1, Ny, Nx\)"),
        (lambda: homogenise_elastic(torch.full((1, 8, 8), 2.0)), r"phase.*\[0, 1\]"),
        (lambda: homogenise_elastic(torch.zeros(1, 8, 8), solver="fast"), r"solver.*cg"),
        (lambda: homogenise_elastic(torch.zeros(1, 8, 8), tol=0.0), r"tol.*\(0, 1\)"),
        (lambda: homogenise_conductivity(torch.zeros(1, 8, 8), -1.0, 1.0), r"k_A.*>= 0"),
        (lambda: homogenise_conductivity(torch.zeros(1, 8, 8), 0.0, 0.0), r"k_B.*only one phase may be void"),
        (lambda: homogenise_elastic(torch.zeros(1, 8, 8), scheme="staggered"), r"scheme.*rotated"),
        (lambda: micrograph_properties(torch.zeros(8, 8)), r"c.*\(B, 1, N, N\)"),
        (lambda: youngs_moduli(torch.eye(2)[None]), r"stiffness.*\(B, 3, 3\)"),
    ],
)
def test_bad_inputs_raise_named_errors(call, match):
    with pytest.raises(SimInputError, match=match):
        call()
