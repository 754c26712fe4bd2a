"""Fuzzing the user's inputs (hypothesis): every bad condition, target text, targets file
and loop configuration gets a genmat error naming what is wrong (or is accepted whole),
never another exception; the CLI answers bad ones with one line and exit 2 and writes
nothing."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from genmat.errors import GenmatError
from genmat.loop import LoopConfig
from genmat.loop.steps import read_table
from genmat.modalities import get_modality
from genmat.tasks import TargetSet

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
MOD = get_modality("spinodal")
NAMES = list(MOD.schema.names)

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12), st.booleans(), st.none(),
    st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "1e999", "", " ", "0x10", "1,5"]),
)
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=10))


@SETTINGS
@given(st.dictionaries(names, values, max_size=8))
def test_a_condition_is_accepted_whole_or_refused_naming_its_field(condition):
    try:
        out = MOD.schema.validate(condition)
    except GenmatError as err:
        assert err.field is not None and str(err)
        return
    for name, value in out.items():  # accepted: known fields, finite numbers inside their ranges
        f = MOD.schema.field(name)
        assert math.isfinite(value) and f.low <= value <= f.high


target_text = st.one_of(
    st.text(alphabet="EGPa_densityk WmK<>=[]in,.-+0123456789e", max_size=30),
    st.builds(lambda n, op, v: f"{n}{op}{v}", st.sampled_from(NAMES + ["E", "x"]),
              st.sampled_from(["=", ">=", "<=", " in ", ">", "=="]), values.map(str)),
)


def _tolerances():
    from genmat.modalities import get_task

    return get_task("spinodal-range").tolerances


@SETTINGS
@given(st.lists(st.lists(target_text, max_size=4), min_size=1, max_size=3))
def test_target_texts_parse_or_fail_with_a_genmat_error(texts):
    try:
        targets = TargetSet.parse_many(texts, _tolerances())
    except GenmatError as err:
        assert str(err)
        return
    assert len(targets) == len(texts)


cells = st.one_of(values, target_text)


@SETTINGS
@given(st.lists(st.dictionaries(st.sampled_from(NAMES[:6] + ["junk"]), cells, max_size=4), min_size=1, max_size=4),
       st.binary(max_size=40), st.booleans())
def test_targets_files_read_or_fail_with_a_genmat_error(tmp_path_factory, rows, junk, corrupt):
    path = tmp_path_factory.mktemp("targets") / "targets.csv"
    if corrupt:
        path.write_bytes(junk)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    try:
        TargetSet.from_frame(read_table(path), _tolerances())
    except GenmatError as err:
        assert str(err)


loop_fields = {
    "initial_samples": st.one_of(st.integers(-5, 300), values), "n_targets": st.one_of(st.integers(-2, 40), values),
    "max_iterations": values, "hit_rate_goal": values, "first_train_steps": values, "n_candidates": values,
    "modality": st.one_of(st.sampled_from(["spinodal", "xrd", "nope"]), values),
    "generator": st.one_of(values, st.fixed_dictionaries({}, optional={
        "method": st.sampled_from(["diffusion", "gan", "nope"]), "path": st.sampled_from(["vp_cosine", "x"]),
        "penalties": st.dictionaries(st.sampled_from(["fraction", "s2", "nope"]), values, max_size=2)})),
    "train": st.one_of(values, st.fixed_dictionaries({}, optional={"batch_size": values, "lr": values})),
    "bogus": values,
}


@SETTINGS
@given(st.fixed_dictionaries({}, optional=loop_fields))
def test_loop_configs_are_validated_whole_with_a_clear_error(config):
    try:
        LoopConfig.model_validate(config)
    except (ValidationError, GenmatError) as err:
        assert str(err)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({}, optional=loop_fields).filter(lambda c: c))
def test_the_cli_answers_a_bad_loop_config_with_one_line_and_exit_2_and_writes_nothing(tmp_path_factory, config):
    from genmat import cli

    tmp = tmp_path_factory.mktemp("cfg")
    try:
        LoopConfig.model_validate(config)
        return  # a valid config would start a run: not this test's business
    except (ValidationError, GenmatError):
        pass
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(config, default=str, allow_nan=True))
    workdir = tmp / "run"
    argv, sys.argv = sys.argv, ["genmat", "loop", "--config", str(cfg), "--workdir", str(workdir), "--no-prefect",
                                "--no-tracking"]
    err = io.StringIO()
    try:
        with pytest.raises(SystemExit) as exit_, contextlib.redirect_stderr(err):
            cli.main()
    finally:
        sys.argv = argv
    assert exit_.value.code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genmat: error: "), err.getvalue()
    assert not workdir.exists()
