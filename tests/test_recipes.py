"""The interval-conditioned recipe generator on cases whose answer is known.

Toy process: one recipe field x uniform on [-1, 1], property f = x² (the map folds, so
a range of f has two preimages). The exact answer to "x such that f(x) ∈ [a, b]" is x
uniform on the preimage: both branches, equally often, and nothing outside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genmat.conditions import ConditionError, ConditionSchema, Field
from genmat.errors import InputError
from genmat.recipes import IntervalQueryLoss, RecipeConfig, RecipeGenerator
from genmat.tasks import TargetSet, Tolerance
from genmat.train import TrainConfig

SCHEMA = ConditionSchema(fields=(Field("x", "", -1.0, 1.0, "processing"), Field("f", "", 0.0, 1.0, "property")))
TOL = {"f": Tolerance("abs", 0.02)}


def _table(n=2000, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    return pd.DataFrame({"x": x, "f": x**2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    table = _table()
    gen = RecipeGenerator.for_table(SCHEMA, table, ["f"], RecipeConfig(width=64, depth=2, embed_dim=32), seed=0)
    ckpt = tmp_path_factory.mktemp("recipe") / "recipe.ckpt"
    gen.fit(table, TrainConfig(steps=1500, batch_size=256, lr=3e-3, warmup_steps=20, log_every=500), checkpoint_path=ckpt)
    return gen, ckpt


@pytest.mark.slow
def test_interval_query_gives_both_preimages_uniformly(trained):
    gen, _ = trained
    targets = TargetSet.parse_many([["f in [0.25, 0.64]"]], TOL)  # x ∈ [-0.8, -0.5] ∪ [0.5, 0.8]
    x = gen.propose(targets, 2000, seed=1)["x"].to_numpy()
    inside = (np.abs(x) >= 0.47) & (np.abs(x) <= 0.83)
    assert inside.mean() > 0.9
    assert 0.4 < (x[inside] > 0).mean() < 0.6  # both branches, equally often
    assert np.abs(x[inside]).mean() == pytest.approx(0.65, abs=0.04)  # uniform on [0.5, 0.8]


@pytest.mark.slow
def test_one_sided_and_point_targets(trained, tmp_path):
    gen, ckpt = trained
    targets = TargetSet.parse_many([["f<=0.09"], ["f=0.49"]], TOL)  # |x| ≤ 0.3; |x| = 0.7 ± 0.014
    props = gen.propose(targets, 1000, seed=2)
    low = props.loc[props.target_id == 0, "x"].to_numpy()
    point = props.loc[props.target_id == 1, "x"].to_numpy()
    assert (np.abs(low) <= 0.33).mean() > 0.9 and np.abs(low).mean() == pytest.approx(0.15, abs=0.04)
    assert (np.abs(np.abs(point) - 0.7) < 0.05).mean() > 0.85
    again = RecipeGenerator.from_checkpoint(ckpt)  # the checkpoint rebuilds the same model
    pd.testing.assert_frame_equal(again.propose(targets, 8, seed=3), gen.propose(targets, 8, seed=3))


def test_training_queries_contain_their_anchor_and_picks_satisfy_them():
    table = _table(300)
    gen = RecipeGenerator.for_table(SCHEMA, table, ["f"], RecipeConfig(p_absent=0.2))
    props = torch.as_tensor(gen._norm_props(table[["f"]].to_numpy()), dtype=torch.float)
    loss = IntervalQueryLoss(props, torch.zeros(300, 1), gen.config)
    g = torch.Generator().manual_seed(0)
    anchors = torch.randint(0, 300, (512,), generator=g)
    lo, hi = loss.queries(anchors, g)
    given = ~torch.isnan(lo)
    v = props[anchors]
    assert ((v[given] >= lo[given]) & (v[given] <= hi[given])).all()
    assert 0.1 < (~given).float().mean() < 0.3  # p_absent
    assert torch.isinf(lo[given]).any() and torch.isinf(hi[given]).any()  # one-sided bounds occur


def test_unknown_fields_and_bad_configs_are_refused():
    gen = RecipeGenerator.for_table(SCHEMA, _table(20), ["f"])
    with pytest.raises(ConditionError, match="g is not a field this recipe model knows"):
        gen.encode(TargetSet.parse_many([["g>=1"]], {"g": Tolerance()}))
    with pytest.raises(InputError, match="p_absent = 1.0 is outside the allowed range < 1"):
        RecipeConfig(p_absent=1.0)
    with pytest.raises(ConditionError, match="are not columns"):
        RecipeGenerator.for_table(SCHEMA, _table(20), ["nope"])
