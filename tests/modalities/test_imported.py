"""The lab's own data: `genmat import` of image files or spectra with a conditions CSV, and
the oracle-free modality that trains and designs on it (checks from the data and a learned
surrogate whose held-out error is measured)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import io

from genmat.data import DatasetStore
from genmat.errors import InputError
from genmat.modalities import ImportedModality, get_modality, import_folder, modality_of_dataset
from genmat.modalities.imported import ImportDataError, common_axis


def _stripes(fraction: float, size: int = 16, phase: int = 0) -> np.ndarray:
    """A two-phase uint8 image whose bright phase covers ``fraction`` of each row (exactly,
    in whole pixels), shifted by ``phase`` columns."""
    width = int(round(fraction * size))
    row = np.zeros(size, dtype=np.uint8)
    row[:width] = 255
    return np.tile(np.roll(row, phase), (size, 1))


def _image_folder(tmp_path, n=24, size=16, seed=0):
    rng = np.random.default_rng(seed)
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(n):
        width = int(rng.integers(2, size - 1))
        frac = width / size
        io.imsave(folder / f"m{i:02d}.png", _stripes(frac, size, int(rng.integers(size))), check_contrast=False)
        rows.append({"file": f"m{i:02d}.png", "bright_fraction": frac, "temperature_K": 700 + 10 * i})
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "conditions.csv", index=False)
    return folder, tmp_path / "conditions.csv", table


def test_phase_maps_import_as_plus_minus_one_with_a_schema_from_the_table(tmp_path):
    folder, csv, table = _image_folder(tmp_path)
    store = import_folder(folder, csv, tmp_path / "ds", kind="phase", processing=["temperature_K"])
    store.verify()
    x = store.load()
    assert x.shape == (24, 1, 16, 16) and set(np.unique(x)) == {-1.0, 1.0}
    # the bright phase is +1: its area fraction is the imported property, pixel for pixel
    np.testing.assert_allclose((x > 0).mean(axis=(1, 2, 3)), table["bright_fraction"], atol=0)
    f = store.schema.field("bright_fraction")
    assert (f.kind, f.low, f.high) == ("property", table["bright_fraction"].min(), table["bright_fraction"].max())
    assert store.schema.field("temperature_K").kind == "processing"
    name, options = modality_of_dataset(tmp_path / "ds")
    assert (name, options) == ("imported", {"dataset": str(tmp_path / "ds"), "tolerance": 0.05,
                                            "surrogate_steps": 1000})
    mod = get_modality(name, **options)
    assert mod.sample_shape == (1, 16, 16) and mod.target_fields == ("bright_fraction",)
    with pytest.raises(InputError, match="no oracle"):
        mod.simulate(table[["temperature_K"]], seed=0)


def test_grey_levels_are_scaled_by_the_integer_type_and_colour_goes_through_luminance(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    grey16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    io.imsave(folder / "a.tif", grey16, check_contrast=False)
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 1] = 255  # pure green: luminance 0.7152 (ITU-R BT.709, scikit-image rgb2gray)
    io.imsave(folder / "b.png", rgb, check_contrast=False)
    pd.DataFrame({"file": ["a.tif", "b.png"], "hardness": [1.0, 2.0]}).to_csv(tmp_path / "c.csv", index=False)
    x = import_folder(folder, tmp_path / "c.csv", tmp_path / "ds").load()
    np.testing.assert_allclose(x[0, 0], 2 * grey16.astype(float) / 65535 - 1, atol=1e-6)
    np.testing.assert_allclose(x[1, 0], 2 * 0.7152 - 1, atol=1e-3)


def test_spectra_are_resampled_onto_the_axis_they_share(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    peak = lambda x, mu: 100 * np.exp(-((x - mu) / 3) ** 2)  # noqa: E731
    axes = [np.linspace(10, 90, 401), np.linspace(5, 80, 301), np.linspace(12, 95, 350)]
    rows = []
    for i, (ax, mu) in enumerate(zip(axes, (30, 40, 50))):
        (folder / f"s{i}.xy").write_text("# 2theta counts\n2theta,counts\n" +
                                         "\n".join(f"{a:.6f},{b:.6f}" for a, b in zip(ax, peak(ax, mu))))
        rows.append({"file": f"s{i}.xy", "mu": mu})
    pd.DataFrame(rows).to_csv(tmp_path / "c.csv", index=False)
    store = import_folder(folder, tmp_path / "c.csv", tmp_path / "ds", kind="spectrum")
    x0, x1, n = store.simulator["axis"]
    assert (x0, x1) == (12, 80) and n == 344  # the common range at the median count, a multiple of 8
    axis = np.linspace(x0, x1, n)
    want = 2 * np.sqrt(np.stack([peak(axis, mu) for mu in (30, 40, 50)]) / store.simulator["y_max"]) - 1
    np.testing.assert_allclose(store.load()[:, 0], want, atol=0.01)
    same = [np.linspace(0, 1, 16)] * 2
    assert common_axis(same) is same[0]


@pytest.mark.parametrize("case, needle", [
    ("missing_file", "missing, e.g."),
    ("two_sizes", "every micrograph must have one size"),
    ("text_value", "'abc' is not a number"),
    ("infinite", "an infinite value"),
    ("no_file_column", "has no 'file' column"),
    ("constant", "has one value"),
    ("bad_kind", "kind = 'colour'"),
    ("not_an_image", "is not a readable image"),
])
def test_bad_imports_name_what_is_wrong_exit_2_and_write_nothing(tmp_path, case, needle):
    folder, csv, table = _image_folder(tmp_path, n=4)
    kind = "grey"
    if case == "missing_file":
        table.loc[2, "file"] = "nope.png"
    elif case == "two_sizes":
        io.imsave(folder / "m01.png", np.zeros((8, 16), dtype=np.uint8), check_contrast=False)
    elif case == "text_value":
        table["bright_fraction"] = table["bright_fraction"].astype(object)
        table.loc[1, "bright_fraction"] = "abc"
    elif case == "infinite":
        table.loc[1, "bright_fraction"] = np.inf
    elif case == "no_file_column":
        table = table.rename(columns={"file": "image"})
    elif case == "constant":
        table["temperature_K"] = 300.0
    elif case == "bad_kind":
        kind = "colour"
    elif case == "not_an_image":
        (folder / "m03.png").write_bytes(b"not a png")
    table.to_csv(csv, index=False)
    out = subprocess.run([sys.executable, "-m", "genmat.cli", "import", str(folder), "--conditions", str(csv),
                          "--dataset", str(tmp_path / "ds"), "--kind", kind], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and needle in out.stderr, out.stderr
    assert len([line for line in out.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "ds").exists()


def test_imported_data_trains_and_designs_checked_by_a_measured_surrogate(tmp_path):
    """End to end through the CLI: import → train → design. No oracle runs: the report says
    the candidates were checked by the surrogate, whose held-out error is measured and shown."""
    folder, csv, _ = _image_folder(tmp_path, n=40, seed=1)

    def run(*args):
        out = subprocess.run([sys.executable, "-m", "genmat.cli", *args], capture_output=True, text=True,
                             timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    run("import", str(folder), "--conditions", str(csv), "--dataset", "ds", "--kind", "phase", "--surrogate-steps",
        "200")
    run("train", "--dataset", "ds", "--checkpoint", "model.ckpt", "--steps", "150", "--batch-size", "16")
    text = run("design", "--checkpoint", "model.ckpt", "--dataset", "ds", "-t", "bright_fraction=0.5",
               "--n", "8", "--n-simulate", "2", "--out", "d")
    assert "surrogate checks (no oracle)" in text
    report = pd.read_parquet(tmp_path / "d" / "report.parquet")
    checked = report[report["simulated"]]
    assert len(checked) and (checked["checked_by"] == "surrogate").all()
    card = json.loads(next((tmp_path / "ds.surrogate").glob("regressor-*.json")).read_text())
    assert card["train"] == 32 and card["test"] == 8 and card["steps"] == 200  # the import's setting
    err = card["error"]["bright_fraction"]
    assert np.isfinite(err["rmse"]) and err["n"] == 8
    np.testing.assert_allclose(checked["surrogate_rmse_bright_fraction"], err["rmse"])


def test_the_surrogate_learns_a_property_the_images_show_and_reports_its_held_out_error(tmp_path):
    folder, csv, _ = _image_folder(tmp_path, n=60, seed=2)
    import_folder(folder, csv, tmp_path / "ds", kind="phase")
    mod = ImportedModality(tmp_path / "ds", surrogate_steps=300)
    _, error = mod.surrogate()
    e = error["bright_fraction"]
    assert e["n"] == 12 and e["r2"] > 0.8, e  # the bright area is in the picture: it must be learnt
    again = ImportedModality(tmp_path / "ds", surrogate_steps=300).surrogate()[1]  # kept beside the dataset
    assert again == error
    # physics checks from the data: an imported map passes, noise and a blank map do not
    x = torch.as_tensor(DatasetStore.open(tmp_path / "ds").load()[:2])
    bad = torch.stack([torch.randn(1, 16, 16) * 3, torch.full((1, 16, 16), -1.0)])
    checks = mod.physics_checks(torch.cat([x, bad]), pd.DataFrame(index=range(4)))
    assert checks["physics_pass"].tolist() == [True, True, False, False]


def test_a_dataset_that_is_not_imported_is_refused(tmp_path):
    from genmat.modalities import get_modality as gm

    spin = gm("spinodal", grid=16)
    DatasetStore.create(tmp_path / "sp", modality="spinodal", schema=spin.schema, sample_shape=spin.sample_shape,
                        simulator={})
    with pytest.raises(ImportDataError.__mro__[1], match="is a 'spinodal' dataset"):
        ImportedModality(tmp_path / "sp")
    with pytest.raises(InputError, match="needs its dataset"):
        ImportedModality()


def test_the_closed_loop_refuses_a_modality_without_an_oracle_before_writing(tmp_path):
    from genmat.loop import LoopConfig

    folder, csv, _ = _image_folder(tmp_path, n=12)
    import_folder(folder, csv, tmp_path / "ds")
    with pytest.raises(InputError, match="has no oracle"):
        LoopConfig(modality="imported", modality_options={"dataset": str(tmp_path / "ds")},
                   workdir=tmp_path / "loop")
    assert not (tmp_path / "loop").exists()
