from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionError, ConditionSchema, Field, SchemaError


def make_schema(feasibility=None) -> ConditionSchema:
    return ConditionSchema(
        (
            Field("x_B", "", 0.3, 0.7, "composition", "atomic fraction of B"),
            Field("temperature_K", "K", 900.0, 1300.0, "processing", "anneal temperature"),
            Field("time_s", "s", 10.0, 1000.0, "processing"),
            Field("E_GPa", "GPa", 70.0, 410.0, "property", "Young's modulus"),
            Field("density_g_cm3", "g/cm³", 2.7, 3.2, "property"),
        ),
        feasibility=feasibility,
    )


# ---------------------------------------------------------------- lookups
def test_names_len_field_subset():
    s = make_schema()
    assert s.names == ("x_B", "temperature_K", "time_s", "E_GPa", "density_g_cm3")
    assert len(s) == 5
    assert s.field("E_GPa").unit == "GPa"
    assert s.subset("processing") == ("temperature_K", "time_s")
    assert s.subset("property") == ("E_GPa", "density_g_cm3")
    assert s.subset("composition") == ("x_B",)
    with pytest.raises(ConditionError, match="one of processing, property, composition"):
        s.subset("props")


def test_field_lookup_unknown_lists_known_fields():
    with pytest.raises(ConditionError) as info:
        make_schema().field("E_gpa")
    assert info.value.field == "E_gpa"
    assert "x_B, temperature_K, time_s, E_GPa, density_g_cm3" in info.value.allowed


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="T K", unit="K", low=0, high=1, kind="processing"), "identifier"),
        (dict(name="T_K", unit="K", low=1, high=1, kind="processing"), "must be <"),
        (dict(name="T_K", unit="K", low=0, high=math.inf, kind="processing"), "finite"),
        (dict(name="T_K", unit="K", low=0, high=1, kind="recipe"), "kind"),
    ],
)
def test_bad_field_definitions(kwargs, match):
    with pytest.raises(SchemaError, match=match):
        Field(**kwargs)


def test_duplicate_fields_rejected():
    f = Field("T_K", "K", 0, 1, "processing")
    with pytest.raises(SchemaError, match="duplicate"):
        ConditionSchema((f, f))


# ---------------------------------------------------------------- validate
def test_validate_returns_clean_dict_in_schema_order():
    s = make_schema()
    out = s.validate({"E_GPa": np.float32(200), "x_B": 0.5, "time_s": None})
    assert list(out) == ["x_B", "E_GPa"]
    assert out == {"x_B": 0.5, "E_GPa": 200.0}
    assert all(type(v) is float for v in out.values())
    # the bounds themselves are allowed
    assert s.validate({"E_GPa": 70, "density_g_cm3": 3.2}) == {"E_GPa": 70.0, "density_g_cm3": 3.2}


def test_out_of_range_error_names_field_value_range():
    with pytest.raises(ConditionError) as info:
        make_schema().validate({"E_GPa": 999})
    err = info.value
    assert (err.field, err.value, err.allowed) == ("E_GPa", 999.0, "[70, 410] GPa")
    assert str(err) == "E_GPa = 999 GPa is outside the allowed range [70, 410] GPa"


@pytest.mark.parametrize(
    "condition, field, fragment",
    [
        ({"E_gpa": 100}, "E_gpa", "known fields are x_B, temperature_K"),
        ({"x_B": math.nan}, "x_B", "not finite"),
        ({"temperature_K": -math.inf}, "temperature_K", "not finite"),
        ({"time_s": "10"}, "time_s", "not a number"),
        ({"time_s": True}, "time_s", "not a number"),
        ({}, "condition", "is empty"),
        ({"x_B": None}, "condition", "is empty"),
        ({"x_B": 0.29}, "x_B", "outside the allowed range [0.3, 0.7]"),
    ],
)
def test_every_error_kind_names_field_and_allowed(condition, field, fragment):
    with pytest.raises(ConditionError) as info:
        make_schema().validate(condition)
    err = info.value
    assert err.field == field
    assert fragment in str(err)
    assert err.allowed and err.allowed in str(err)
    assert "\n" not in str(err)
    # picklable (crosses process boundaries in Prefect workers)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_not_a_mapping():
    with pytest.raises(ConditionError, match="mapping"):
        make_schema().validate([("x_B", 0.5)])


# ---------------------------------------------------------------- feasibility
def _modulus_bounded_by_density(cond: dict[str, float]) -> None:
    """Toy feasibility: E must stay below 100 · density."""
    if "E_GPa" in cond and "density_g_cm3" in cond and cond["E_GPa"] > 100.0 * cond["density_g_cm3"]:
        raise ConditionError("E_GPa", cond["E_GPa"], f"≤ {100 * cond['density_g_cm3']:g} GPa for that density")


def test_feasibility_hook_called_with_given_fields():
    calls = []
    s = make_schema(feasibility=calls.append)
    s.validate({"E_GPa": 100.0, "time_s": 20.0})
    assert calls == [{"time_s": 20.0, "E_GPa": 100.0}]


def test_feasibility_error_propagates_and_frame_reports_row():
    s = make_schema(_modulus_bounded_by_density)
    assert s.validate({"E_GPa": 250.0, "density_g_cm3": 3.0}) == {"E_GPa": 250.0, "density_g_cm3": 3.0}
    with pytest.raises(ConditionError, match="for that density") as info:
        s.validate({"E_GPa": 350.0, "density_g_cm3": 3.0})
    assert info.value.field == "E_GPa"
    df = pd.DataFrame({"E_GPa": [250.0, 350.0], "density_g_cm3": [3.0, 3.0]}, index=[10, 11])
    with pytest.raises(ConditionError) as info:
        s.validate_frame(df)
    assert info.value.row == 11 and str(info.value).startswith("row 11: E_GPa = 350")


# ---------------------------------------------------------------- validate_frame
def test_validate_frame_nan_means_not_given():
    s = make_schema()
    df = pd.DataFrame({"E_GPa": [100.0, np.nan], "x_B": [np.nan, 0.4]})
    out = s.validate_frame(df)
    assert list(out.columns) == ["x_B", "E_GPa"]  # schema order
    assert out.dtypes.eq("float64").all()
    pd.testing.assert_index_equal(out.index, df.index)


def test_validate_frame_errors_name_row():
    s = make_schema()
    with pytest.raises(ConditionError) as info:
        s.validate_frame(pd.DataFrame({"E_GPa": [100.0, 500.0]}, index=["a", "b"]))
    assert (info.value.row, info.value.field, info.value.value) == ("b", "E_GPa", 500.0)
    assert "row b" in str(info.value)
    with pytest.raises(ConditionError, match="row 1: x_B = 'x' is not a number"):
        s.validate_frame(pd.DataFrame({"x_B": [0.5, "x"]}))
    with pytest.raises(ConditionError, match="row 0: E_GPa = inf"):
        s.validate_frame(pd.DataFrame({"E_GPa": [np.inf]}))
    with pytest.raises(ConditionError, match="row 1: condition is empty"):
        s.validate_frame(pd.DataFrame({"E_GPa": [100.0, np.nan]}))


def test_validate_frame_extra_columns():
    s = make_schema()
    df = pd.DataFrame({"E_GPa": [100.0], "note": ["x"]})
    with pytest.raises(ConditionError) as info:
        s.validate_frame(df)
    assert info.value.field == "note" and "known fields are" in str(info.value)
    out = s.validate_frame(df, extra="ignore")
    assert list(out.columns) == ["E_GPa"]
    assert len(s.validate_frame(pd.DataFrame({"E_GPa": [np.nan]}), allow_empty=True)) == 1


# ---------------------------------------------------------------- encode / decode
def test_encode_normalises_ranges_to_unit_interval():
    s = make_schema()
    values, mask = s.encode([{"x_B": 0.3, "temperature_K": 1300.0, "E_GPa": 240.0}])
    assert values.dtype == torch.float32 and mask.dtype == torch.float32
    assert values.shape == mask.shape == (1, 5)
    torch.testing.assert_close(values[0], torch.tensor([-1.0, 1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(mask[0], torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]))


def test_encode_decode_round_trip():
    s = make_schema()
    rng = np.random.default_rng(0)
    lows = np.array([f.low for f in s.fields])
    highs = np.array([f.high for f in s.fields])
    phys = lows + rng.random((64, len(s))) * (highs - lows)
    drop = rng.random(phys.shape) < 0.3
    df = pd.DataFrame(np.where(drop, np.nan, phys), columns=list(s.names))
    df["sample_id"] = np.arange(64)  # non-field columns are ignored by encode
    values, mask = s.encode(df)
    assert values.shape == (64, 5)
    assert float(values.abs().max()) <= 1.0 + 1e-6
    np.testing.assert_array_equal(mask.numpy(), (~drop).astype(np.float32))
    assert float(values[mask == 0].abs().max()) == 0.0
    back = s.decode(values, mask)
    assert list(back.columns) == list(s.names)
    np.testing.assert_allclose(back.to_numpy(), df[list(s.names)].to_numpy(), rtol=1e-5)
    # without a mask every field is decoded (not-given ones to the range midpoint)
    mid = s.decode(torch.zeros(1, 5)).iloc[0]
    assert mid["E_GPa"] == pytest.approx(240.0)


@pytest.mark.parametrize("kind", ["processing", "property", "composition"])
def test_masks_for_each_subset(kind):
    s = make_schema()
    names = s.subset(kind)
    row = {n: (s.field(n).low + s.field(n).high) / 2 for n in names}
    _, mask = s.encode(pd.DataFrame([row]))
    expected = torch.tensor([[1.0 if n in names else 0.0 for n in s.names]])
    torch.testing.assert_close(mask, expected)


def test_encode_rejects_inf_and_decode_shape():
    s = make_schema()
    with pytest.raises(ConditionError, match="E_GPa = inf"):
        s.encode(pd.DataFrame({"E_GPa": [np.inf]}))
    with pytest.raises(ConditionError, match=r"shape \(B, 5\)"):
        s.decode(torch.zeros(2, 3))


# ---------------------------------------------------------------- persistence
def test_to_dict_from_dict_round_trip_json_safe():
    feas = _modulus_bounded_by_density
    s = make_schema(feas)
    d = json.loads(json.dumps(s.to_dict()))
    assert d == s.to_dict()
    back = ConditionSchema.from_dict(d)
    assert back == s  # equality is by fields
    assert back.feasibility is None
    assert ConditionSchema.from_dict(d, feasibility=feas).feasibility is feas
    assert all(type(f["low"]) is float and type(f["name"]) is str for f in d["fields"])
    with pytest.raises(SchemaError):
        ConditionSchema.from_dict({"fields": [{"name": "x"}]})


def test_schemas_with_different_ranges_differ():
    s = make_schema()
    d = s.to_dict()
    d["fields"][3]["high"] = 400.0
    assert ConditionSchema.from_dict(d) != s


def test_describe_lists_every_field_with_unit_and_range():
    text = make_schema().describe()
    lines = text.splitlines()
    assert len(lines) == 6
    assert "E_GPa" in lines[4] and "GPa" in lines[4] and "[70, 410]" in lines[4] and "property" in lines[4]
    assert "[0.3, 0.7]" in lines[1]
