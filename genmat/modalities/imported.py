"""The lab's own data: micrographs (image files) or spectra (two-column text files) with a
CSV of their conditions, imported into a dataset of the store — a modality with no oracle.

``genmat import`` (:func:`import_folder`) reads a folder and a conditions CSV (one row per
file: a ``file`` column, then one numeric column per condition) and writes a dataset whose
manifest says how to rebuild this modality (``modality_options`` in its ``simulator``
settings). Normalisation, stated once here and in docs/lab_data.md:

- **grey** micrographs: x = 2 I / I_max − 1, with I_max the largest value of the image's
  integer type (255 for 8-bit, 65535 for 16-bit); float images must lie in [0, 1]; colour
  images are converted to luminance first (scikit-image ``rgb2gray``);
- **phase** micrographs (two-phase maps): the grey image thresholded by Otsu's method,
  x = +1 above the threshold and −1 below (the spinodal order parameter's convention);
- **spectra**: every file's (x, y) resampled linearly onto one axis (the first file's when all
  axes agree, else the range every file covers at the median point count) and
  x = 2 √(y / y_max) − 1, with y_max the largest intensity of the whole import (the square
  root stabilises counting noise, as for the simulated spectra).

The condition schema is the CSV's columns: ranges [min, max] of the imported values (a
design target outside what was measured is refused), no unit, kind ``property`` unless
named with ``processing=``; or a schema JSON (``ConditionSchema.to_dict`` format) with units
and ranges. Empty cells are unknown values (masked in training).

Without an oracle, a candidate is checked by

- **physics checks** from the data: finite values, pixels (points) inside the imported
  value range widened by a quarter of its width on each side (≤ 1 % outside), and a per-sample mean and standard deviation inside the envelope of the
  imported samples (their 0.5–99.5 % range widened by 10 % of its width);
- a **learned property surrogate** instead of the simulator check: a
  :class:`genmat.regressor.PropertyRegressor` trained on 80 % of the data (seeded split), its
  error measured on the other 20 % (MAE, RMSE, R² per field) and written beside the dataset
  (``<dataset>.surrogate/``; retrained when the dataset changes). A property passes when the
  surrogate's prediction is within the tolerance (``tolerance`` × the field's range, 5 % by
  default) of the target. The report says so: ``checked_by`` = ``surrogate``, with the
  surrogate's held-out RMSE beside each field. A surrogate hit is a claim about the
  surrogate, not a measurement: make and measure the designs that matter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from genmat.atomic import atomic_write
from genmat.conditions import ConditionSchema, Field
from genmat.data import DatasetStore
from genmat.data.tables import read_table
from genmat.errors import InputError
from genmat.modalities.base import ModalityBase, sample_grid
from genmat.validate import NoveltyConfig

log = logging.getLogger(__name__)

NAME = "imported"
KINDS = ("grey", "phase", "spectrum")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
SURROGATE_VERSION = 1


class ImportDataError(InputError):
    """A file or table of an import that does not match (names the file, field and what is allowed)."""


def _check_options(tolerance, surrogate_steps) -> None:
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance <= 1):
        raise InputError(field="tolerance", value=tolerance, allowed="(0, 1] (a fraction of the field's range)")
    if not (isinstance(surrogate_steps, int) and surrogate_steps >= 1):
        raise InputError(field="surrogate_steps", value=surrogate_steps, allowed="an integer ≥ 1")


# ---------------------------------------------------------------------------- reading files
def read_image(path: Path, kind: str) -> np.ndarray:
    """One micrograph (H, W) in [-1, 1] by the module's normalisation for ``kind``."""
    from skimage import color, filters, io

    try:
        image = io.imread(path)
    except Exception as exc:  # unreadable, truncated, not an image
        raise ImportDataError(f"{path} is not a readable image ({type(exc).__name__}: {exc})", field="file",
                           value=str(path), allowed="TIFF, PNG, JPEG or BMP images") from None
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = color.rgb2gray(image[..., :3])  # float in [0, 1]
    if image.ndim != 2:
        raise ImportDataError(f"{path}: an image of shape {image.shape}; allowed: one grey or colour plane",
                           field="file", value=str(path), allowed="(H, W), (H, W, 3) or (H, W, 4)")
    if np.issubdtype(image.dtype, np.integer):
        grey = image.astype(np.float64) / np.iinfo(image.dtype).max
    elif np.issubdtype(image.dtype, np.bool_):
        grey = image.astype(np.float64)
    else:
        grey = image.astype(np.float64)
        if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
            raise ImportDataError(f"{path}: float pixel values in [{np.nanmin(grey):.3g}, {np.nanmax(grey):.3g}]; "
                               "allowed: finite values in [0, 1]", field="file", value=str(path), allowed="[0, 1]")
    if kind == "phase":
        if grey.min() == grey.max():
            return np.where(grey > 0.5, 1.0, -1.0).astype(np.float32)
        return np.where(grey > filters.threshold_otsu(grey), 1.0, -1.0).astype(np.float32)
    return (2.0 * grey - 1.0).astype(np.float32)


def read_spectrum(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a two-column text file (comma, tab or space separated; lines starting with
    ``#`` and a header line are skipped); x strictly increasing, y finite and ≥ 0."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportDataError(f"{path} is not a readable text file ({type(exc).__name__})", field="file",
                           value=str(path), allowed="two-column text") from None
    rows = []
    for line in text.splitlines():
        parts = line.replace(",", " ").replace(";", " ").split()
        if not parts or line.lstrip().startswith("#"):
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if rows:
                raise ImportDataError(f"{path}: line {line!r} is not two numbers", field="file", value=str(path),
                                   allowed="two numeric columns") from None
            continue  # a header line
        if len(values) != 2:
            raise ImportDataError(f"{path}: a line with {len(values)} columns; allowed: two (x, intensity)",
                               field="file", value=str(path), allowed="two numeric columns")
        rows.append(values)
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    if len(data) < 16:
        raise ImportDataError(f"{path}: {len(data)} points; allowed: at least 16", field="file", value=str(path),
                           allowed="≥ 16 points")
    x, y = data[:, 0], data[:, 1]
    if not (np.isfinite(data).all() and (np.diff(x) > 0).all() and (y >= 0).all()):
        raise ImportDataError(f"{path}: x must increase strictly and intensities be finite and ≥ 0", field="file",
                           value=str(path), allowed="increasing x, finite y ≥ 0")
    return x, y


def common_axis(axes: Sequence[np.ndarray], multiple: int = 8) -> np.ndarray:
    """The first axis when every axis equals it; else the range all of them cover at the
    median point count, rounded down to a multiple of ``multiple``."""
    first = axes[0]
    if all(len(a) == len(first) and np.allclose(a, first, rtol=0, atol=1e-9 * max(1.0, abs(first).max()))
           for a in axes) and len(first) % multiple == 0:
        return first
    lo, hi = max(a[0] for a in axes), min(a[-1] for a in axes)
    if not lo < hi:
        raise ImportDataError(f"the spectra's x ranges do not overlap (common range [{lo:g}, {hi:g}])",
                           field="file", value=None, allowed="x ranges that overlap")
    n = int(np.median([len(a) for a in axes])) // multiple * multiple
    return np.linspace(lo, hi, max(n, multiple))


# ---------------------------------------------------------------------------- the import
def _schema_from_table(table: pd.DataFrame, processing: Sequence[str]) -> ConditionSchema:
    fields = []
    for name in table.columns:
        values = table[name].to_numpy(dtype=float)
        known = values[np.isfinite(values)]
        if not len(known):
            raise ImportDataError(f"column {name!r} has no values", field=name, value=None, allowed="numbers")
        lo, hi = float(known.min()), float(known.max())
        if lo == hi:
            raise ImportDataError(f"column {name!r} has one value ({lo:g}); a condition must vary (leave it out)",
                               field=name, value=lo, allowed="at least two distinct values")
        fields.append(Field(name, "", lo, hi, "processing" if name in processing else "property",
                            "imported: range = the measured values'"))
    return ConditionSchema(fields=tuple(fields))


def _read_conditions(conditions: Path, file_column: str, processing: Sequence[str]) -> pd.DataFrame:
    table = read_table(conditions)
    if file_column not in table.columns:
        raise ImportDataError(f"{conditions} has no {file_column!r} column (the file of each row); columns: "
                           f"{', '.join(map(str, table.columns))}", field=file_column, value=None,
                           allowed="a column naming each row's file")
    if table.empty:
        raise ImportDataError(f"{conditions} has no rows", field="conditions", value=str(conditions),
                           allowed="one row per file")
    dup = table[file_column][table[file_column].duplicated()]
    if len(dup):
        raise ImportDataError(f"{conditions}: file {dup.iloc[0]!r} is listed twice", field=file_column,
                           value=dup.iloc[0], allowed="each file once")
    for name in table.columns.drop(file_column):
        if not str(name).isidentifier():
            raise ImportDataError(f"column {name!r} is not a valid field name (letters, digits and _, e.g. E_GPa)",
                               field=str(name), value=name, allowed="a Python identifier")
        numbers = pd.to_numeric(table[name], errors="coerce")
        bad = table[name][numbers.isna() & table[name].notna()]
        if len(bad):
            raise ImportDataError(f"column {name!r}, row {int(bad.index[0]) + 1}: {bad.iloc[0]!r} is not a number",
                               field=str(name), value=bad.iloc[0], allowed="numbers (empty = unknown)")
        if np.isinf(numbers).any():
            raise ImportDataError(f"column {name!r}: an infinite value", field=str(name), value=float("inf"),
                               allowed="finite numbers (empty = unknown)")
        table[name] = numbers.astype(float)
    unknown = sorted(set(processing) - set(table.columns))
    if unknown:
        raise ImportDataError(f"processing fields {unknown} are not columns of {conditions}", field="processing",
                           value=unknown, allowed=", ".join(map(str, table.columns.drop(file_column))))
    return table


def import_folder(folder: str | Path, conditions: str | Path, dataset: str | Path, *, kind: str = "grey",
                  file_column: str = "file", processing: Sequence[str] = (), schema: ConditionSchema | None = None,
                  source_run: str = "import", tolerance: float = 0.05, surrogate_steps: int = 1000) -> DatasetStore:
    """Import ``folder``'s files named in the ``conditions`` table into a new dataset at
    ``dataset`` (module docstring). Every file and value is checked before anything is
    written; an error names the file or column and what is allowed. ``tolerance`` and
    ``surrogate_steps`` are the imported modality's options, kept in the manifest."""
    folder, conditions, dataset = Path(folder), Path(conditions), Path(dataset)
    if kind not in KINDS:
        raise InputError(f"kind = {kind!r}; allowed: {', '.join(KINDS)}", field="kind", value=kind,
                         allowed=", ".join(KINDS))
    if not folder.is_dir():
        raise ImportDataError(f"{folder} is not a folder", field="folder", value=str(folder), allowed="a folder of files")
    if (dataset / "manifest.json").exists():
        raise ImportDataError(f"{dataset} already holds a dataset; import into a new folder", field="dataset",
                           value=str(dataset), allowed="a new or empty folder")
    table = _read_conditions(conditions, file_column, processing)
    files = [folder / str(name) for name in table[file_column]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ImportDataError(f"{len(missing)} file(s) named in {conditions} are missing, e.g. {missing[0]}",
                           field=file_column, value=missing[0], allowed=f"files in {folder}")
    conds = table.drop(columns=[file_column]).reset_index(drop=True)
    schema = schema or _schema_from_table(conds, processing)
    if set(schema.names) != set(conds.columns):
        raise ImportDataError(f"the schema's fields {sorted(schema.names)} are not the table's columns "
                           f"{sorted(conds.columns)}", field="schema", value=sorted(schema.names),
                           allowed=", ".join(conds.columns))
    conds = schema.validate_frame(conds[list(schema.names)], allow_empty=True)
    _check_options(tolerance, surrogate_steps)
    settings: dict = {"version": f"import-{kind}-1", "kind": kind, "source": str(folder.resolve()),
                      "conditions": str(conditions.resolve()),
                      "modality_options": {"dataset": ".", "tolerance": tolerance, "surrogate_steps": surrogate_steps}}
    if kind == "spectrum":
        read = [read_spectrum(f) for f in files]
        axis = common_axis([x for x, _ in read])
        y = np.stack([np.interp(axis, x, yy) for x, yy in read])
        scale = float(y.max())
        if not scale > 0:
            raise ImportDataError("every imported intensity is 0", field="file", value=None, allowed="some counts")
        samples = (2.0 * np.sqrt(y / scale) - 1.0).astype(np.float32)[:, None, :]
        settings.update(axis=[float(axis[0]), float(axis[-1]), int(len(axis))], y_max=scale)
    else:
        images = [read_image(f, kind) for f in files]
        first = images[0].shape
        odd = next(((f, im.shape) for f, im in zip(files, images) if im.shape != first), None)
        if odd is not None:
            (path, (h, w)) = odd
            raise ImportDataError(f"{path}: {w}×{h} pixels; {files[0].name} is {first[1]}×{first[0]}: every "
                                  "micrograph must have one size", field="file", value=str(path),
                                  allowed=f"{first[1]}×{first[0]} pixels")
        samples = np.stack(images)[:, None]
    store = DatasetStore.create(dataset, modality=NAME, schema=schema, sample_shape=samples.shape[1:],
                                simulator=settings, extra_columns=())
    store.append(samples, conds, provenance="simulated", iteration=0, source_run=source_run,
                 batch_key=f"import-{hashlib.sha256(samples.tobytes()).hexdigest()[:16]}")
    log.info("imported %d %s samples of shape %s into %s", len(samples), kind, samples.shape[1:], dataset)
    return store


# ---------------------------------------------------------------------------- the modality
class ImportedModality(ModalityBase):
    """The modality of one imported dataset (module docstring): no oracle; checks from the
    data and a learned property surrogate."""

    name = NAME
    checked_by = "surrogate"
    relabel_failures = False  # nothing can measure a failed candidate
    novelty = NoveltyConfig()

    def __init__(self, dataset: str | Path | None = None, tolerance: float = 0.05, surrogate_steps: int = 1000,
                 seed: int = 0) -> None:
        if dataset is None:
            raise InputError("modality 'imported' needs its dataset (modality_options {\"dataset\": PATH}; "
                             "`genmat train/design --dataset PATH` finds it)", field="dataset", value=None,
                             allowed="the folder `genmat import` wrote")
        _check_options(tolerance, surrogate_steps)
        self.dataset = Path(dataset)
        self.store = DatasetStore.open(self.dataset, verify=False)
        if self.store.modality != NAME:
            raise InputError(f"{self.dataset} is a {self.store.modality!r} dataset, not an imported one",
                             field="dataset", value=str(self.dataset), allowed="a dataset `genmat import` wrote")
        self.settings = dict(self.store.simulator)
        self.kind = self.settings.get("kind", "grey")
        self.tolerance, self.surrogate_steps, self.seed = float(tolerance), surrogate_steps, int(seed)
        self.schema = self.store.schema
        self.sample_shape = self.store.sample_shape
        props = tuple(self.schema.subset("property"))
        self.target_fields = self.checked_fields = props or tuple(self.schema.names)
        spectrum = len(self.sample_shape) == 2
        unet = ({"spatial_dims": 1, "base_channels": 16, "channel_mults": [1, 2, 4, 4], "padding_mode": "replicate",
                 "position_features": 8} if spectrum else
                {"base_channels": 16, "channel_mults": [1, 2, 4], "padding_mode": "reflect"})
        # a lab's micrographs are not periodic cells: reflect at the edges; spectra as in docs/spectra.md
        self.loop_defaults = {"generator": {"unet": unet}, "train": {"batch_size": 32}}
        self._surrogate = None
        self._envelope = None

    @property
    def design_tolerances(self) -> dict:
        from genmat.tasks import Tolerance

        return {f: Tolerance("abs", self.tolerance * (self.schema.field(f).high - self.schema.field(f).low))
                for f in self.checked_fields}

    @property
    def tolerance_bands(self) -> dict:
        return {f: ("abs", t.value) for f, t in self.design_tolerances.items()}

    @property
    def report_metrics(self) -> tuple[str, ...]:
        return tuple(f"surrogate_rmse_{f}" for f in self.checked_fields)

    # ------------------------------------------------------------------ no oracle
    def simulator_settings(self) -> dict:
        return self.settings

    def _no_oracle(self, *_, **__):
        raise InputError("imported data has no oracle: it cannot simulate new samples (train and design on the "
                         "imported dataset; `genmat loop` needs a modality with a simulator)", field="modality",
                         value=NAME, allowed="a modality with an oracle")

    draw_processing = perturb = simulate = _no_oracle

    # ------------------------------------------------------------------ the learned surrogate
    def surrogate(self):
        """(regressor, its held-out error {field: {mae, rmse, r2, n}}), trained on first use
        and kept beside the dataset until the dataset changes."""
        if self._surrogate is None:
            self._surrogate = _load_or_fit_surrogate(self)
        return self._surrogate

    def measure(self, samples: torch.Tensor) -> pd.DataFrame:
        """The surrogate's predictions of the property fields (no oracle measures here)."""
        regressor, _ = self.surrogate()
        return regressor.predict_frame(samples)[list(self.checked_fields)]

    # ------------------------------------------------------------------ checks
    def _data_envelope(self) -> dict:
        if self._envelope is None:
            data = torch.as_tensor(self.store.load())
            flat = data.flatten(1).double()
            mean, std = flat.mean(1).numpy(), flat.std(1).numpy()

            def band(v):
                lo, hi = np.quantile(v, [0.005, 0.995])
                pad = 0.1 * max(hi - lo, 1e-6)
                return float(lo - pad), float(hi + pad)

            self._envelope = {"value": (float(flat.min()), float(flat.max())), "mean": band(mean), "std": band(std)}
        return self._envelope

    def physics_checks(self, samples: torch.Tensor, conditions: pd.DataFrame) -> pd.DataFrame:
        env = self._data_envelope()
        flat = samples.detach().flatten(1).double().cpu()
        finite = torch.isfinite(flat).all(1).numpy()
        safe = torch.nan_to_num(flat)
        lo, hi = env["value"]
        pad = 0.25 * (hi - lo)  # a generator overshoots a saturated level a little (cf. the spinodal |c| ≤ 1.5)
        outside = ((safe < lo - pad) | (safe > hi + pad)).double().mean(1).numpy()
        mean, std = safe.mean(1).numpy(), safe.std(1).numpy()
        mean_ok = (mean >= env["mean"][0]) & (mean <= env["mean"][1])
        std_ok = (std >= env["std"][0]) & (std <= env["std"][1])
        frame = pd.DataFrame({"finite": finite, "outside_fraction": outside, "in_value_range": outside <= 0.01,
                              "sample_mean": mean, "sample_std": std, "mean_in_data": mean_ok,
                              "std_in_data": std_ok})
        frame["physics_pass"] = finite & (outside <= 0.01) & mean_ok & std_ok
        frame["physics_reason"] = np.select(
            [~finite, outside > 0.01, ~mean_ok, ~std_ok],
            ["non-finite values", "values outside the imported range", "mean outside the data's envelope",
             "contrast (std) outside the data's envelope"], "")
        return frame

    def simulator_checks(self, samples: torch.Tensor, targets: pd.DataFrame) -> pd.DataFrame:
        """The learned surrogate instead of an oracle: ``sim_<field>`` its prediction,
        ``<field>_pass`` within the tolerance, ``surrogate_rmse_<field>`` its held-out error."""
        regressor, error = self.surrogate()
        predicted = regressor.predict_frame(samples)
        targets = targets.reset_index(drop=True)
        frame = pd.DataFrame({"checked_by": ["surrogate"] * len(samples)})
        tol = self.design_tolerances
        n_targets = np.zeros(len(samples), dtype=np.int64)
        ok = np.ones(len(samples), dtype=bool)
        for f in self.checked_fields:
            want = targets[f].to_numpy(float) if f in targets else np.full(len(samples), np.nan)
            got = predicted[f].to_numpy(float)
            targeted = np.isfinite(want)
            passed = np.where(targeted, np.abs(got - want) <= tol[f].value, True)
            frame[f"sim_{f}"] = got
            frame[f"target_{f}"] = want
            frame[f"{f}_abs_err"] = np.where(targeted, got - want, np.nan)
            frame[f"{f}_pass"] = passed
            frame[f"surrogate_rmse_{f}"] = error[f]["rmse"]
            n_targets += targeted
            ok &= passed
        frame["n_targets"] = n_targets
        frame["sim_pass"] = ok & (n_targets > 0)
        return frame

    def design_metrics(self, report: pd.DataFrame, designs: pd.DataFrame) -> dict[str, float]:
        _, error = self.surrogate()
        return {f"surrogate_rmse_{f}": float(error[f]["rmse"]) for f in self.checked_fields}

    def plot_samples(self, samples: torch.Tensor, titles: Sequence[str], ncols: int = 8, conditions=None):
        """Micrographs in grey (as imaged) or spectra on the imported axis."""
        n = samples.shape[0]
        data = samples[:, 0].detach().cpu().numpy()
        fig, axes = sample_grid(n, ncols, (2.6, 1.9) if data.ndim == 2 else (1.6, 1.75))
        for i, ax in enumerate(axes.flat[:n]):
            if data.ndim == 2:
                x0, x1, m = self.settings["axis"]
                counts = self.settings["y_max"] * ((np.clip(data[i], -1, None) + 1) / 2) ** 2
                ax.plot(np.linspace(x0, x1, int(m)), counts, lw=0.7, color="k")
                ax.tick_params(labelsize=5)
            else:
                ax.imshow(data[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
                ax.axis("off")
            ax.set_title(titles[i] if i < len(titles) else "", fontsize=6)
        fig.tight_layout()
        return fig


def _load_or_fit_surrogate(modality: ImportedModality):
    from genmat.data import SampleDataset
    from genmat.nn import UNetConfig
    from genmat.regressor import PropertyRegressor
    from genmat.train import TrainConfig

    store, fields = modality.store, list(modality.checked_fields)
    digest = hashlib.sha256(json.dumps([store.manifest.get("table_sha256"), store.manifest.get("n_samples"),
                                        modality.surrogate_steps, modality.seed, SURROGATE_VERSION]).encode()
                            ).hexdigest()[:16]
    folder = modality.dataset.with_name(modality.dataset.name + ".surrogate")
    ckpt, card = folder / f"regressor-{digest}.ckpt", folder / f"regressor-{digest}.json"
    if ckpt.exists() and card.exists():
        return PropertyRegressor.from_checkpoint(ckpt, device="cpu"), json.loads(card.read_text())["error"]
    x, values, mask = SampleDataset(store, modality.schema).as_tensors()[:3]
    n = len(x)
    order = np.random.default_rng(modality.seed).permutation(n)
    n_test = max(1, int(round(0.2 * n)))
    test, train = order[:n_test], order[n_test:]
    if len(train) < 8:
        raise InputError(f"{n} imported samples are too few for a property surrogate (8 to train, 1 to test)",
                         field="dataset", value=n, allowed="≥ 10 samples")
    unet = UNetConfig(**modality.loop_defaults["generator"]["unet"])  # the generator's network, as a regressor
    regressor = PropertyRegressor(modality.schema, modality.sample_shape, unet, device="cpu")
    log.info("training the property surrogate of %s on %d samples (%d held out to measure its error)",
             modality.dataset, len(train), len(test))
    folder.mkdir(parents=True, exist_ok=True)
    tr = torch.as_tensor(train)
    config = TrainConfig(steps=modality.surrogate_steps, batch_size=min(32, len(train)), lr=2e-3, warmup_steps=50,
                         seed=modality.seed, device="cpu", checkpoint_every=max(1, modality.surrogate_steps))
    regressor.fit((x[tr], values[tr], mask[tr]), config, checkpoint_path=ckpt, progress=False)
    predicted = regressor.predict_frame(x[torch.as_tensor(test)])
    truth = store.table().iloc[test]
    error = {}
    for f in fields:
        t, p = truth[f].to_numpy(float), predicted[f].to_numpy(float)
        ok = np.isfinite(t)
        res = p[ok] - t[ok]
        var = float(np.var(t[ok])) if ok.sum() > 1 else float("nan")
        error[f] = {"mae": float(np.abs(res).mean()) if ok.any() else float("nan"),
                    "rmse": float(np.sqrt((res ** 2).mean())) if ok.any() else float("nan"),
                    "r2": float(1 - (res ** 2).mean() / var) if ok.sum() > 1 and var > 0 else float("nan"),
                    "n": int(ok.sum())}
    atomic_write(card, lambda tmp: Path(tmp).write_text(json.dumps(
        {"error": error, "train": len(train), "test": len(test), "steps": modality.surrogate_steps,
         "seed": modality.seed}, indent=1)))
    log.info("surrogate held-out error: %s", ", ".join(f"{f} RMSE {e['rmse']:.3g} (R² {e['r2']:.2f})"
                                                        for f, e in error.items()))
    return regressor, error


def surrogate_card(dataset: str | Path) -> dict | None:
    """The newest surrogate error card beside ``dataset`` (None before the first design)."""
    folder = Path(dataset).with_name(Path(dataset).name + ".surrogate")
    cards = sorted(folder.glob("regressor-*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return json.loads(cards[-1].read_text()) if cards else None


__all__ = ["ImportDataError", "ImportedModality", "import_folder", "read_image", "read_spectrum", "common_axis",
           "surrogate_card"]
