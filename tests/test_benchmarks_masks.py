"""The any-subset conditioning benchmark (benchmarks/masks.py): its scoring, its measured mask
frequencies against the mask scheme's analytic ones, and a tiny end-to-end run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import masks
from genmat.modalities import get_modality
from tests.conftest import tiny_loop_config


def test_masks_cover_property_subsets_the_recipe_and_everything():
    schema = get_modality("spinodal", grid=16).schema
    got = masks.masks_of(schema)
    props = schema.subset("property")
    assert len(got) == 2 ** len(props) - 1 + 2
    assert tuple(schema.subset("processing")) in got and tuple(schema.names) == got[-1]
    assert masks.checked_fields(("x_B", "temperature_K", "time_s"), {"E_GPa": 0, "k_W_mK": 0}) == ("E_GPa", "k_W_mK")
    assert masks.checked_fields(("x_B", "E_GPa"), {"E_GPa": 0, "k_W_mK": 0}) == ("E_GPa",)


def test_a_hit_is_every_checked_field_inside_its_band():
    bands = {"E": ("rel", 0.05), "rho": ("abs", 0.1)}
    ref = pd.DataFrame({"E": [100.0, 100.0, 100.0], "rho": [3.0, 3.0, 3.0]})
    got = pd.DataFrame({"E": [104.9, 105.1, 95.0], "rho": [3.09, 3.0, 3.2]})
    assert masks.hits(got, ref, ("E",), bands).tolist() == [True, False, True]
    assert masks.hits(got, ref, ("E", "rho"), bands).tolist() == [True, False, False]


class _Gen:  # what mask_frequency reads of a generator
    def __init__(self, schema, scheme, p):
        self.schema = schema
        self.config = type("C", (), {"cond_masks": scheme, "cond_dropout": p})()


@pytest.mark.parametrize("scheme", ["subsets", "independent"])
def test_measured_mask_frequency_matches_the_schemes_formula(scheme):
    schema = get_modality("spinodal", grid=16).schema
    n, p = len(schema.names), 0.1
    rng = np.random.default_rng(0)
    table = pd.DataFrame({f.name: rng.uniform(f.low, f.high, 400) for f in schema.fields})  # every field given
    mks = [("E_GPa",), ("E_GPa", "density_g_cm3"), tuple(schema.names)]
    freq = masks.mask_frequency(_Gen(schema, scheme, p), table, mks, draws=100)
    for m in mks:
        k = len(m)
        expect = ((1 - p) / n / math.comb(n, k) if scheme == "subsets" else p ** (n - k) * (1 - p) ** k)
        assert freq[m] == pytest.approx(expect, rel=0.15, abs=2e-4), m
    assert freq[()] == pytest.approx(p if scheme == "subsets" else p ** n, rel=0.15, abs=2e-4)


@pytest.mark.slow
def test_a_tiny_run_scores_every_mask_and_writes_files(tmp_path):
    from genmat.data import DatasetStore
    from genmat.generate import Generator
    from genmat.loop import ClosedLoop

    cfg = tiny_loop_config(tmp_path / "loop", max_iterations=1)
    ClosedLoop(cfg).run()
    gen = Generator.from_checkpoint(cfg.iteration_dir(0) / "model.ckpt")
    mod = get_modality(cfg.modality, **cfg.modality_options)
    result = masks.run(gen, mod, 3, [0, 1], frequency_draws=2, training=DatasetStore.open(cfg.dataset).table(),
                       physics_guidance=1.0)
    rows = pd.DataFrame(result["rows"])
    assert len(rows) == 2 * len(masks.masks_of(mod.schema))
    assert ((0 <= rows["hits"]) & (rows["hits"] <= 3) & (rows["unconditional_hits"] <= 3)).all()
    recipe = " + ".join(mod.schema.subset("processing"))
    assert rows.loc[rows["mask"] == recipe, "replicate_hits"].notna().all()
    assert rows.loc[rows["mask"] == "E_GPa", "replicate_hits"].isna().all()
    assert rows.loc[rows["mask"] == recipe, "guided_hits"].isna().all()  # no property to steer by
    e = rows[rows["mask"] == "E_GPa"]
    assert e["guided_hits"].between(0, 3).all() and (e["physics_evaluations"] > 0).all()
    assert rows["train_frequency"].between(0, 1).all()
    md = masks.markdown(result)
    assert md.count("\n| ") == len(masks.masks_of(mod.schema)) + 1
    masks.figure(result, tmp_path / "masks.png")
    assert (tmp_path / "masks.png").stat().st_size > 0
