"""The command line as a user meets it: --help everywhere, one clear line and exit
code 2 for bad input, nothing written on failure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COMMANDS = ["simulate", "import", "up", "down", "deploy", "train", "reflow", "distill", "design", "recipes", "tasks", "validate", "loop", "serve"]


def genmat(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "genmat.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_lists_every_command():
    out = genmat("--help")
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert cmd in out.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    out = genmat(cmd, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def _one_line_error(out, *needles):
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in out.stderr
    text = " ".join(lines)
    for needle in needles:
        assert needle in text, text


def test_design_target_out_of_range_names_field_and_range(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")  # never read: the target is rejected first
    out = genmat("design", "--checkpoint", str(ckpt), "-t", "E_GPa=999", "-t", "density_g_cm3=2.9",
                 "--out", str(tmp_path / "out"), cwd=tmp_path)
    _one_line_error(out, "E_GPa", "999", "[90, 300]")
    assert not (tmp_path / "out").exists()


def test_design_unknown_field_lists_known_ones(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    out = genmat("design", "--checkpoint", str(ckpt), "-t", "hardness_HV=300", cwd=tmp_path)
    _one_line_error(out, "hardness_HV", "E_GPa")


def test_design_infeasible_modulus_for_density(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    # density 2.80 g/cm³ → φ ≈ 0.2: a 290 GPa modulus is far above the Hashin–Shtrikman bound
    out = genmat("design", "--checkpoint", str(ckpt), "-t", "E_GPa=290", "-t", "density_g_cm3=2.80", cwd=tmp_path)
    _one_line_error(out, "E_GPa", "Hashin")


def test_simulate_rejects_bad_processing_file_and_writes_nothing(tmp_path):
    bad = tmp_path / "processing.csv"
    bad.write_text("x_B,temperature_K,time_s\n0.5,2000,3600\n")
    out = genmat("simulate", "--dataset", str(tmp_path / "ds"), "--processing", str(bad), cwd=tmp_path)
    _one_line_error(out, "temperature_K", "2000", "[750, 900]")
    assert not (tmp_path / "ds").exists()  # refused before the dataset is created


def test_simulate_rejects_nonpositive_count(tmp_path):
    out = genmat("simulate", "--dataset", str(tmp_path / "ds"), "--n", "0", cwd=tmp_path)
    assert out.returncode == 2 and "n" in out.stderr


def test_loop_config_errors_name_the_field(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"n_targets": 0}))
    out = genmat("loop", "--config", str(cfg), "--no-prefect", "--no-tracking", cwd=tmp_path)
    _one_line_error(out, "n_targets", "0")
    cfg.write_text(json.dumps({"n_candidate": 4}))
    out = genmat("loop", "--config", str(cfg), "--no-prefect", "--no-tracking", cwd=tmp_path)
    _one_line_error(out, "n_candidate")
    # a task the loop cannot run, and guidance on a modality without a physics model: before any work
    out = genmat("loop", "--task", "spinodal-range", "--no-prefect", "--no-tracking", cwd=tmp_path)
    _one_line_error(out, "spinodal-range", "range", "genmat recipes --task")
    cfg.write_text(json.dumps({"modality": "eels", "physics_guidance": 3}))
    out = genmat("loop", "--config", str(cfg), "--no-prefect", "--no-tracking", cwd=tmp_path)
    _one_line_error(out, "physics_guidance = 3", "no differentiable physics model", "allowed: 0")
    assert not (tmp_path / "runs").exists()


def test_train_without_dataset_says_what_to_do(tmp_path):
    out = genmat("train", "--dataset", str(tmp_path / "missing"), cwd=tmp_path)
    _one_line_error(out, "does not exist", "genmat simulate")


@pytest.mark.parametrize("option, value, allowed", [
    ("--method", "wgan", "diffusion, vae, latent_diffusion, normalizing_flow, gan"),
    ("--path", "vp_quadratic", "rectified_flow, vp_linear, vp_cosine"),
    ("--prediction", "score", "eps, x0, v, velocity"),
    ("--sampler", "ddpmpp", "euler, heun, ddim, ddpm, dpmpp_2m, consistency"),
    ("--penalty", "fraction", "NAME=WEIGHT"),
    ("--penalty", "fraction=-1", "[0, ∞)"),
    ("--penalty", "s2=nan", "[0, ∞)"),
])
def test_train_rejects_an_unknown_family_path_prediction_or_sampler(tmp_path, option, value, allowed):
    out = genmat("train", option, value, cwd=tmp_path)
    _one_line_error(out, value, allowed)
    assert not (tmp_path / "runs").exists()


def test_spectrum_design_fractions_must_sum_to_one(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    out = genmat("design", "--modality", "xrd", "--checkpoint", str(ckpt), "-t", "frac_anatase=0.7",
                 "-t", "frac_rutile=0.7", "-t", "frac_ZnO=0", "--out", str(tmp_path / "out"), cwd=tmp_path)
    _one_line_error(out, "frac_anatase + frac_rutile + frac_ZnO", "1.4", "1 ± 0.01")
    assert not (tmp_path / "out").exists()


def test_spectrum_size_out_of_the_trained_range(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    out = genmat("design", "--modality", "xrd", "--checkpoint", str(ckpt), "-t", "size_nm=-3", cwd=tmp_path)
    _one_line_error(out, "size_nm", "-3", "[5, 30]")


def test_spectrum_unknown_phase_in_a_config(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"modality": "xrd", "modality_options": {"phases": ["anatase", "unobtainium"]}}))
    out = genmat("loop", "--config", str(cfg), "--no-prefect", "--no-tracking", cwd=tmp_path)
    _one_line_error(out, "unobtainium", "alpha_Fe")
    assert not (tmp_path / "runs").exists()


def test_a_nan_target_is_refused_not_dropped(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    out = genmat("design", "--checkpoint", str(ckpt), "-t", "E_GPa=nan", "-t", "density_g_cm3=2.95", cwd=tmp_path)
    _one_line_error(out, "E_GPa", "not a finite number")
    import genmat as api
    from genmat.conditions import ConditionError

    with pytest.raises(ConditionError, match="E_GPa = nan is not finite"):
        api.design({"E_GPa": float("nan"), "density_g_cm3": 2.95}, checkpoint=ckpt)


@pytest.mark.parametrize("target, needles", [
    ("E_GPa>=nan", ("E_GPa", "not finite")),
    ("k_W_mK in [110, 90]", ("k_W_mK", "is empty", "LOW ≤ HIGH")),
    ("hardness_HV>=3", ("hardness_HV", "allowed: E_GPa")),
    ("E_GPa~180", ("is not understood", "NAME>=VALUE")),
])
def test_recipe_targets_are_checked_before_any_work(tmp_path, target, needles):
    out = genmat("recipes", "-t", target, "--out", str(tmp_path / "out"), cwd=tmp_path)
    _one_line_error(out, *needles)
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_tasks_lists_the_registered_design_tasks(tmp_path):
    out = genmat("tasks", cwd=tmp_path)
    assert out.returncode == 0
    for name in ("spinodal-demo", "spinodal-tight", "spinodal-range", "spinodal-many"):
        assert name in out.stdout


@pytest.mark.slow
def test_recipes_for_an_interval_target_end_to_end(tmp_path):
    """E ≥ 200 GPa needs a B-rich composition: the verified recipe's simulated product meets it."""
    out = genmat("recipes", "-t", "E_GPa>=200", "-t", "density_g_cm3<=3.1", "--initial", "48", "--train-steps", "60",
                 "--rounds", "3", "--proposals", "16", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import pandas as pd

    recipes = pd.read_csv(tmp_path / "out" / "recipes.csv")
    assert recipes.loc[0, "hit"] and recipes.loc[0, "E_GPa"] >= 200 and recipes.loc[0, "density_g_cm3"] <= 3.1
    assert recipes.loc[0, "x_B"] > 0.5  # the stiff phase is B: a stiff material is B-rich
    assert (tmp_path / "out" / "products.png").exists()
    assert "oracle calls" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_command_exits_130_or_143_with_one_line(tmp_path, sig, code):
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "genmat.cli", "simulate", "--dataset", str(tmp_path / "ds"),
                          "--n", "50000"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # background jobs ignore it
    deadline = time.monotonic() + 120
    while not (tmp_path / "ds" / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the oracle is running once the dataset exists
    time.sleep(1.0)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err[-2000:]
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("genmat:")]
    assert len(lines) == 1 and "run the same command again to resume" in lines[0]
    assert "Traceback" not in err
    from genmat.data import DatasetStore

    ds = DatasetStore.open(tmp_path / "ds")
    ds.verify()  # nothing half-written: only whole chunks (256 samples each) are committed
    assert len(ds) % 256 == 0 and all(k.startswith("simulate/seed0/n50000/rows") for k in ds.batch_keys)


@pytest.mark.parametrize("var, command, needles", [
    ("MLFLOW_TRACKING_URI", ("recipes", "-t", "E_GPa>=200"), ("MLflow tracking server", "--no-tracking")),
    ("MLFLOW_TRACKING_URI", ("loop", "--no-prefect"), ("MLflow tracking server", "--no-tracking")),
    ("PREFECT_API_URL", ("loop", "--no-tracking"), ("Prefect API", "--no-prefect")),
])
def test_a_service_that_is_down_is_one_line_within_seconds(tmp_path, monkeypatch, var, command, needles):
    import socket
    import time

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(var, f"http://127.0.0.1:{port}" + ("/api" if var == "PREFECT_API_URL" else ""))
    t0 = time.monotonic()
    out = genmat(*command, "--workdir" if command[0] == "loop" else "--out", str(tmp_path / "w"), cwd=tmp_path)
    _one_line_error(out, f"127.0.0.1:{port}", "unreachable", *needles)
    assert time.monotonic() - t0 < 60  # not minutes of retries
    assert not (tmp_path / "w").exists()


def test_a_bug_keeps_its_traceback_and_exits_1_asking_for_a_report(monkeypatch, capsys):
    """Only genmat's own errors (and validation/OS errors) are one line and exit 2: anything
    else is a bug, and hiding its traceback would hide where it is."""
    import sys

    from genmat import cli

    def boom(verbose):
        raise KeyError("an internal slip")

    monkeypatch.setattr(cli, "_setup", boom)
    monkeypatch.setattr(sys, "argv", ["genmat", "tasks"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Traceback" in err and "an internal slip" in err and "this is a bug" in err


def test_the_cli_defaults_are_the_configuration_defaults():
    """One set of defaults: an option the CLI shares with a configuration class has the
    class's default (the CLI keeps literals so that `--help` does not import torch)."""
    import inspect

    from genmat import cli
    from genmat.generate import SamplerConfig
    from genmat.loop.steps import DesignParams
    from genmat.train import TrainConfig

    def default(command, name):
        return inspect.signature(command).parameters[name].default.default

    train, sampler, design = TrainConfig(), SamplerConfig(), DesignParams.model_fields
    assert (default(cli.train, "steps"), default(cli.train, "batch_size"), default(cli.train, "lr")) == (
        train.steps, train.batch_size, train.lr)
    assert (default(cli.train, "sampler"), default(cli.train, "sampler_steps")) == (sampler.method, sampler.steps)
    assert (default(cli.design, "n"), default(cli.design, "n_simulate")) == (
        design["n_candidates"].default, design["n_simulate"].default)
