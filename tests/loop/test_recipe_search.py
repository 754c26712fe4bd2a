"""Recipe search and the baselines on a toy process whose answers are known: recipe
(a, b) in the unit square, properties p = a + b and q = a − b (plus optional noise)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from genmat import baselines
from genmat.conditions import ConditionError, ConditionSchema, Field
from genmat.errors import InputError
from genmat.loop.recipes import CountingOracle, RecipeSearchConfig, search_recipes, verify_recipes
from genmat.loop.screening import GPSurrogate
from genmat.recipes import RecipeConfig
from genmat.tasks import TargetSet, Tolerance

TOL = {"p": Tolerance("abs", 0.03), "q": Tolerance("abs", 0.03)}


class Toy:
    name = "toy"
    sample_shape = (1, 4)
    schema = ConditionSchema(fields=(Field("a", "", 0.0, 1.0, "processing"), Field("b", "", 0.0, 1.0, "processing"),
                                     Field("p", "", 0.0, 2.0, "property"), Field("q", "", -1.0, 1.0, "property")))

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise

    def draw_processing(self, n, rng):
        return pd.DataFrame({"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n)})

    def simulate(self, processing, *, seed):
        a, b = processing["a"].to_numpy(), processing["b"].to_numpy()
        e = np.random.default_rng(seed).normal(0, self.noise, (2, len(a)))
        rows = processing.reset_index(drop=True).assign(p=a + b + e[0], q=a - b + e[1])
        return torch.zeros(len(a), *self.sample_shape), rows


def test_the_oracle_counts_every_sample_by_purpose_and_never_reuses_noise():
    oracle = CountingOracle(Toy(noise=0.1), seed=3)
    one = oracle.draw(5, "initial", seed=0)
    two = oracle(one[["a", "b"]], "design")
    assert oracle.calls == 10 and dict(oracle.by_purpose) == {"initial": 5, "design": 5}
    assert not np.allclose(one["p"], two["p"])  # same recipes, fresh process noise
    assert oracle.last_samples.shape == (5, 1, 4)


def test_gp_screen_hit_probability_is_high_on_the_answer_and_low_far_from_it():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (60, 2))
    gp = GPSurrogate(x, np.stack([x.sum(1), x[:, 0] - x[:, 1]], 1), seed=0)
    lo, hi = np.array([[0.95, -0.05]] * 2), np.array([[1.05, 0.05]] * 2)
    p = gp.hit_probability(np.array([[0.5, 0.5], [0.1, 0.2]]), lo, hi)
    assert p[0] > 0.9 and p[1] < 1e-3
    only_p = gp.hit_probability(np.array([[0.9, 0.1]]), lo[:1], np.array([[1.05, np.nan]]) * [1, 1])
    assert only_p[0] > 0.9  # q not asked (NaN ends) → only p counts


def test_random_library_and_lookup_report_the_first_hitting_draw():
    toy = Toy()
    targets = TargetSet.parse_many([["p in [0.9, 1.1]"], ["q>=0.9"]], TOL)
    lib = baselines.random_library(toy, targets, 300, seed=4)
    draws = toy.draw_processing(300, np.random.default_rng(4))  # the same prior draws, by hand
    s, d = (draws.a + draws.b).to_numpy(), (draws.a - draws.b).to_numpy()
    first = [int(np.argmax((s >= 0.9) & (s <= 1.1))) + 1, int(np.argmax(d >= 0.9)) + 1]
    assert lib.recipes["calls_at_hit"].tolist() == first
    assert lib.history[-1] == (300, 2) and lib.oracle_calls == 300
    lk = baselines.lookup(targets, lib.table.iloc[: min(first)])
    assert lk.recipes["hit"].sum() == 1 and lk.oracle_calls == 0


def test_bayes_opt_finds_a_point_target_and_stops_at_the_first_hit():
    targets = TargetSet.parse_many([["p=1.0", "q=0.2"]], TOL)  # the answer: a = 0.6, b = 0.4
    bo = baselines.bayes_opt(Toy(), targets, max_calls=25, seed=0, raw_samples=64)
    row = bo.recipes.iloc[0]
    assert row["hit"] and row["calls"] == bo.oracle_calls <= 25
    assert abs(row["a"] - 0.6) < 0.04 and abs(row["b"] - 0.4) < 0.04


@pytest.mark.slow
def test_recipe_search_hits_point_and_interval_targets_and_counts_its_calls():
    toy = Toy(noise=0.005)
    targets = TargetSet.parse_many([["p=1.0", "q=0.2"], ["p>=1.6"], ["p in [0.4, 0.5]", "q<=-0.3"], ["q=-0.5"]], TOL)
    cfg = RecipeSearchConfig(initial=64, rounds=4, proposals=32, train_steps=400, finetune_steps=50, batch_size=128,
                             recipe=RecipeConfig(width=64, depth=2, embed_dim=32))
    oracle = CountingOracle(toy, seed=0)
    res = search_recipes(toy, targets, cfg, oracle=oracle, seed=0)
    assert res.recipes["hit"].all()
    assert res.oracle_calls["initial"] == 64 and sum(res.oracle_calls.values()) == oracle.calls == len(res.table)
    calls, hits = zip(*res.history)
    assert list(calls) == sorted(calls) and list(hits) == sorted(hits) and calls[-1] == oracle.calls
    held = verify_recipes(toy, targets, res.recipes, seeds=3, oracle=CountingOracle(toy, seed=9))
    assert np.nanmean(held) > 0.6
    # amortised: a trained generator and its table design new targets with no initial draws
    again = search_recipes(toy, TargetSet.parse_many([["p=0.8", "q=0.0"]], TOL), cfg.replace(rounds=8),
                           table=res.table, generator=res.generator, seed=1)
    assert "initial" not in again.oracle_calls and again.recipes["hit"].all()


def test_search_config_is_checked_up_front():
    with pytest.raises(InputError, match="proposer = 'grid': input should be 'generator' or 'prior'"):
        RecipeSearchConfig(proposer="grid")
    with pytest.raises(InputError, match="rounds = 0 is outside the allowed range ≥ 1"):
        RecipeSearchConfig(rounds=0)


def test_empty_budgets_are_answers_not_crashes():
    targets = TargetSet.parse_many([["p in [0.9, 1.1]"]], TOL)
    lib = baselines.random_library(Toy(), targets, 0, seed=0)
    assert lib.oracle_calls == 0 and not lib.recipes["hit"].any() and lib.history == [(0, 0)]
    with pytest.raises(ConditionError, match="initial = 0 is not ≥ 1 when no table"):
        search_recipes(Toy(), targets, RecipeSearchConfig(initial=0))
    zero = TargetSet.parse_many([["q=0"]], {"q": Tolerance("rel", 0.05)})  # a relative tolerance of 0 is 0 wide
    assert np.isfinite(zero.violation(np.array([[0.5, 0.1]])[:, 1:])).all()
