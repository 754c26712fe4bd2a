from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.sim import TwoPhaseMaterial
from genmat.validate import Tolerances, ValidateInputError, simulator_check

MAT = TwoPhaseMaterial()


def all_phase(value: float, b: int, n: int = 16) -> torch.Tensor:
    return torch.full((b, 1, n, n), value)


def test_homogeneous_phase_b_gives_its_own_properties_exactly():
    frame = simulator_check(all_phase(1.0, 1), pd.DataFrame({"E_GPa": [410.0], "density_g_cm3": [3.21]}))
    row = frame.iloc[0]
    assert row.sim_E_GPa == pytest.approx(MAT.E_B_GPa, rel=1e-9)
    assert row.sim_density_g_cm3 == pytest.approx(MAT.rho_B_g_cm3, rel=1e-9)
    assert row.sim_k_W_mK == pytest.approx(MAT.k_B_W_mK, rel=1e-9)
    assert row.sim_volume_fraction == 1.0
    assert row.E_rel_err == pytest.approx(0.0, abs=1e-9) and row.density_rel_err == pytest.approx(0.0, abs=1e-9)
    assert row.sim_pass and row.n_targets == 2


def test_homogeneous_phase_a_gives_its_own_properties():
    frame = simulator_check(all_phase(-1.0, 1), pd.DataFrame({"E_GPa": [70.0], "k_W_mK": [237.0]}))
    assert frame.sim_E_GPa[0] == pytest.approx(MAT.E_A_GPa, rel=1e-9)
    assert frame.sim_density_g_cm3[0] == pytest.approx(MAT.rho_A_g_cm3, rel=1e-9)
    assert frame.sim_k_W_mK[0] == pytest.approx(MAT.k_A_W_mK, rel=1e-9)
    assert frame.sim_pass[0]


@pytest.mark.parametrize("prop,col,value,tol", [("E", "E_GPa", 410.0, 0.05), ("density", "density_g_cm3", 3.21, 0.02)])
def test_pass_flips_at_the_tolerance_boundary(prop, col, value, tol):
    # measured = value; target = value / (1 + e) gives relative error e exactly
    errors = np.array([-tol - 1e-3, -tol + 1e-3, 0.0, tol - 1e-3, tol + 1e-3])
    targets = pd.DataFrame({col: value / (1 + errors)})
    frame = simulator_check(all_phase(1.0, len(errors)), targets)
    assert frame[f"{prop}_rel_err"].to_numpy() == pytest.approx(errors, abs=1e-9)
    assert frame[f"{prop}_pass"].tolist() == [False, True, True, True, False]
    assert frame.sim_pass.tolist() == [False, True, True, True, False]


def test_custom_tolerances_move_the_boundary():
    targets = pd.DataFrame({"E_GPa": [410.0 / 1.08]})  # 8 % above target
    assert not simulator_check(all_phase(1.0, 1), targets).sim_pass[0]
    loose = simulator_check(all_phase(1.0, 1), targets, tolerances=Tolerances(E_rel=0.1))
    assert loose.sim_pass[0]
    assert loose.attrs["tolerances"] == Tolerances(E_rel=0.1)


def test_untargeted_rows_do_not_pass_but_untargeted_properties_do():
    targets = pd.DataFrame({"E_GPa": [np.nan, 410.0], "density_g_cm3": [np.nan, np.nan]})
    frame = simulator_check(all_phase(1.0, 2), targets)
    assert frame.n_targets.tolist() == [0, 1]
    assert frame.sim_pass.tolist() == [False, True]
    assert frame.density_pass.all() and math.isnan(frame.density_rel_err[1])
    assert math.isnan(frame.target_k_W_mK[0])  # no k column at all: not targeted


def test_two_phase_laminate_density_is_the_rule_of_mixtures():
    c = -torch.ones(1, 1, 16, 16)
    c[..., :4, :] = 1.0  # φ = 1/4, stripes along x
    frame = simulator_check(c, pd.DataFrame({"density_g_cm3": [0.25 * 3.21 + 0.75 * 2.70]}))
    assert frame.sim_volume_fraction[0] == 0.25
    assert frame.density_rel_err[0] == pytest.approx(0.0, abs=1e-6)
    assert MAT.E_A_GPa < frame.sim_E_GPa[0] < MAT.E_B_GPa
    assert frame.sim_E_x_GPa[0] > frame.sim_E_y_GPa[0]  # stiffer along the stripes


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(ValidateInputError) as err:
        simulator_check(all_phase(1.0, 2), pd.DataFrame({"E_GPa": [100.0]}))
    assert err.value.field == "targets"
    with pytest.raises(ValidateInputError) as err:
        simulator_check(all_phase(1.0, 1), pd.DataFrame({"E_GPa": [-5.0]}))
    assert err.value.field == "E_GPa"
    with pytest.raises(ValidateInputError) as err:
        Tolerances(density_rel=-0.1)
    assert err.value.field == "density_rel"
    with pytest.raises(ValidateInputError):
        simulator_check(torch.full((1, 1, 8, 8), math.nan), pd.DataFrame({"E_GPa": [100.0]}))
