"""Modalities as plug-ins: a package of its own (tests/plugin, the example of
docs/modalities.md) installed into a temporary folder registers a modality through the
``genmat.modalities`` entry point group, and genmat runs it end to end without a line of
genmat changed. Broken and incomplete plug-ins get one clear error."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """tests/plugin built and installed (pip, offline, no dependencies) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(PLUGIN, root / "src")  # the build writes egg-info beside the sources
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(src)], check=True, capture_output=True, text=True, timeout=300)
    assert list(target.glob("genmat_peaks-*.dist-info"))
    return target


def _env(*paths) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}


def _dist_info(site: Path, name: str, entry: str) -> None:
    """A minimal installed distribution (what pip leaves) declaring one modality entry point."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[genmat.modalities]\n{entry}\n")


def test_an_installed_plugin_is_found_and_conforms(site, monkeypatch):
    from genmat.modalities import BUILTIN, get_modality, missing_members, modality_names

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert modality_names() == (*BUILTIN, "peaks")
    mod = get_modality("peaks")
    assert type(mod).__module__ == "genmat_peaks" and missing_members(mod) == []
    assert mod.physics_model() is None and mod.design_tasks == ()  # ModalityBase's defaults


def test_a_plugin_runs_through_simulate_train_design_validate(site, tmp_path):
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "modalities"], capture_output=True, text=True,
                         env=_env(site), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "peaks  (plug-in, samples (1, 32))" in out.stdout and "position" in out.stdout
    config = {"initial_samples": 48, "n_targets": 3, "max_iterations": 1, "first_train_steps": 300,
              "next_train_steps": 50, "n_candidates": 3, "acquire_per_target": 2,
              "generator": {"unet": {"spatial_dims": 1, "base_channels": 8, "channel_mults": [1, 2], "embed_dim": 32,
                                     "padding_mode": "replicate"}, "sampler": {"steps": 8, "method": "heun"}},
              "train": {"batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "log_every": 50, "checkpoint_every": 100}}
    (tmp_path / "loop.json").write_text(json.dumps(config))
    work = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "loop", "--modality", "peaks", "--config",
                          str(tmp_path / "loop.json"), "--workdir", str(work), "--no-prefect", "--no-tracking"],
                         capture_output=True, text=True, env=_env(site), cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads((work / "state.json").read_text())
    assert [row["iteration"] for row in state["history"]] == [0]
    last = state["history"][-1]
    assert last["targets"] == 3 and 0 <= last["hit_rate"] <= 1
    assert max(row["physics_pass_rate"] for row in state["history"]) > 0.5  # it learnt peaks
    assert "position_mape" in last and "spread_mape" in last  # generic metrics from the plug-in's own columns
    from genmat.data import DatasetStore

    table = DatasetStore.open(work / "dataset").table()
    assert len(table) >= 48 and {"centre", "width", "position", "spread"} <= set(table.columns)
    report = json.loads((work / "state.json").read_text())["steps"]
    assert "iter0/design" in report
    assert (work / "report.md").exists() and (work / "iter_00" / "pictures" / "designs.png").exists()


def test_a_broken_plugin_is_one_line_naming_it(tmp_path):
    _dist_info(tmp_path, "broken_modality", "broken = no_such_module_xyz:Thing")
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "loop", "--modality", "broken", "--workdir",
                          str(tmp_path / "w")], capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "modality plug-in 'broken' (no_such_module_xyz:Thing) could not be loaded" in out.stderr
    assert not (tmp_path / "w").exists()
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "modalities"], capture_output=True, text=True,
                         env=_env(tmp_path), timeout=120)
    assert out.returncode == 0 and "broken  (plug-in; cannot be used" in out.stdout


def test_an_incomplete_plugin_names_what_it_lacks(tmp_path, monkeypatch):
    from genmat.errors import InputError
    from genmat.modalities import get_modality

    (tmp_path / "half_modality.py").write_text("class Half:\n    name = 'half'\n    sample_shape = (1, 8)\n")
    _dist_info(tmp_path, "half_modality", "half = half_modality:Half")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(InputError, match="modality 'half' lacks .*simulate.*ModalityBase"):
        get_modality("half")


def test_a_plugin_cannot_shadow_a_builtin(tmp_path, monkeypatch):
    from genmat.modalities import SpinodalModality, get_modality

    _dist_info(tmp_path, "shadow_modality", "spinodal = no_such_module_xyz:Thing")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert isinstance(get_modality("spinodal"), SpinodalModality)


def test_the_default_modality_is_one_name_everywhere():
    import inspect

    import genmat
    from genmat import cli
    from genmat.modalities import DEFAULT_MODALITY

    assert cli.DEFAULT_MODALITY == DEFAULT_MODALITY  # the CLI keeps a copy to start without the simulators
    for fn in (genmat.api.design, genmat.api.simulate, genmat.api.design_recipes):
        assert inspect.signature(fn).parameters["modality"].default == DEFAULT_MODALITY
