"""Append-only dataset store: a directory of sample shards, a Parquet table and a manifest.

Layout of a dataset directory::

    manifest.json            the commit point: schema, sample shape, shards + sha256, table digest
    shards/shard-00000.npy   float32 (n, *sample_shape), np.save, no pickle
    table.parquet            one row per sample: ids, conditions, extras, provenance

An append writes, each atomically (temp file, fsync, ``os.replace``), first the shard,
then the table, then the manifest. Only what the manifest lists is committed: table
rows and shard files it does not reference (left by a crash) are ignored on read and
cleaned by the next append. Appends are idempotent by ``batch_key``.

Several writers (processes or threads) may append at once: an append holds an exclusive
``fcntl.flock`` on ``.lock`` in the dataset directory from reading the manifest to
committing it, so appends are serialised, shard names and sample ids never collide, the
clean-up of a crashed append never touches another writer's files, and every append that
returns is in the dataset exactly once. The kernel drops the lock when a writer dies, so
a killed writer never blocks the next. Readers take no lock: a reader reads the manifest
first and keeps only the rows it lists, so it always sees one committed state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from genmat.conditions import ConditionSchema
from genmat.errors import InputError, IntegrityError

log = logging.getLogger(__name__)

FORMAT = "genmat-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLE = "table.parquet"
SHARDS = "shards"
PROVENANCES = ("simulated", "relabelled")
# Bookkeeping columns of the table, in order; the caller may not pass these.
RESERVED = ("sample_id", "shard", "row", "provenance", "iteration", "source_run", "batch_key")
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.npy$")

# Shards hashed in this process: (real path, sha256, size, mtime_ns). Reads verify a
# shard the first time they touch it; verify() always re-hashes.
_VERIFIED: set[tuple[str, str, int, int]] = set()


class DatasetError(InputError):
    """Bad input to the store, or a dataset that does not match what was asked.

    Attributes ``field``, ``value`` and ``allowed`` (human text) name the problem.
    """

    def __init__(self, field: str, value: Any, allowed: str, problem: str = "is not allowed; expected") -> None:
        super().__init__(" ".join(f"{field} = {value} {problem} {allowed}".split()), field=field, value=value,
                         allowed=allowed)


class DataIntegrityError(IntegrityError):
    """A committed file is missing or its content does not match the manifest."""

    def __init__(self, file: str | Path, detail: str) -> None:
        self.file = str(file)
        super().__init__(f"{self.file}: {detail}")


# ----------------------------------------------------------------------------- atomic io
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` via ``write(fileobj)`` on a temp file in the same directory,
    fsync, then ``os.replace``: readers see the old or the new file, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _verify_key(path: Path, sha: str) -> tuple[str, str, int, int]:
    st = path.stat()
    return (str(path.resolve()), sha, st.st_size, st.st_mtime_ns)


# ----------------------------------------------------------------------------- the store
class DatasetStore:
    """One dataset directory. Build with :meth:`create` or :meth:`open`.

    Every read re-reads the manifest, so a store object sees appends made by other
    processes. ``verify`` (default True) hashes each shard the first time this
    process reads it; pass ``verify=False`` to reads to skip, or call :meth:`verify`
    to re-hash everything.
    """

    def __init__(self, path: str | Path, *, _schema: ConditionSchema | None = None, verify: bool = True) -> None:
        self.path = Path(path)
        self.verify_reads = bool(verify)
        manifest = self._read_manifest()
        self.modality: str = manifest["modality"]
        self.sample_shape: tuple[int, ...] = tuple(int(s) for s in manifest["sample_shape"])
        self.simulator: dict = manifest["simulator"]
        stored = ConditionSchema.from_dict(manifest["schema"])
        # keep the caller's schema object (it carries the feasibility check) when it matches
        self.schema: ConditionSchema = _schema if _schema is not None and _schema == stored else stored

    # ------------------------------------------------------------------ building
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        modality: str,
        schema: ConditionSchema,
        sample_shape: Sequence[int],
        simulator: Mapping[str, Any],
        extra_columns: Sequence[str] | None = None,
        exist_ok: bool = False,
    ) -> "DatasetStore":
        """A new empty dataset at ``path`` (or, with ``exist_ok``, the existing one if
        its modality, schema and sample shape match).

        ``extra_columns`` names the measured-property columns rows may carry besides
        the schema fields (e.g. ``volume_fraction``); ``None`` lets the first append
        fix them. ``simulator`` is JSON-safe settings and version of the oracle.
        """
        path = Path(path)
        if not isinstance(schema, ConditionSchema):
            raise DatasetError("schema", type(schema).__name__, "a ConditionSchema", "is not")
        if not isinstance(modality, str) or not modality:
            raise DatasetError("modality", repr(modality), "a non-empty name such as 'spinodal'", "is not")
        shape = _check_shape(sample_shape)
        try:
            simulator = json.loads(json.dumps(dict(simulator)))
        except (TypeError, ValueError) as err:
            raise DatasetError("simulator", type(simulator).__name__, "a JSON-safe dict", f"is not ({err});") from None
        extras = None if extra_columns is None else _check_extra_names(extra_columns, schema)
        if (path / MANIFEST).exists():
            if not exist_ok:
                raise DatasetError("path", str(path), "a new or empty directory (or exist_ok=True)",
                                   "already holds a dataset;")
            store = cls(path, _schema=schema)
            found = store._read_manifest()
            for name, want, have in (
                ("modality", modality, found["modality"]),
                ("schema", schema.to_dict(), found["schema"]),
                ("sample_shape", list(shape), found["sample_shape"]),
            ):
                if want != have:
                    raise DatasetError(name, _short(want), f"{_short(have)} as stored in {path / MANIFEST}",
                                       "does not match the existing dataset:")
            if extras is not None and found["extra_columns"] is not None and extras != found["extra_columns"]:
                raise DatasetError("extra_columns", _short(extras), f"{_short(found['extra_columns'])} as stored",
                                   "does not match the existing dataset:")
            changed = _settings_diff(found["simulator"], simulator)
            if changed:
                log.warning("dataset %s was made with other simulator settings; now appending with: %s",
                            path, "; ".join(changed)[:400])
            return store
        if path.exists() and (not path.is_dir() or any(_leftover(p) for p in path.iterdir())):
            raise DatasetError("path", str(path), "a new or empty directory", "is not a dataset and not empty;")
        (path / SHARDS).mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "modality": modality,
            "schema": schema.to_dict(),
            "sample_shape": list(shape),
            "simulator": simulator,
            "extra_columns": extras,
            "n_samples": 0,
            "shards": [],
        }
        _atomic_write(path / MANIFEST, lambda fh: fh.write(_manifest_bytes(manifest)))
        (path / ".lock").touch(mode=0o664)  # the writers' lock file (see the module docstring)
        return cls(path, _schema=schema)

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> "DatasetStore":
        """The existing dataset at ``path``; DatasetError if there is none."""
        return cls(path, verify=verify)

    # ------------------------------------------------------------------ manifest
    def _read_manifest(self) -> dict:
        file = self.path / MANIFEST
        if not file.exists():
            raise DatasetError("path", str(self.path), f"a dataset directory with {MANIFEST}", "is not")
        try:
            manifest = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise DataIntegrityError(file, f"unreadable manifest ({err})") from None
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise DataIntegrityError(
                file, f"format {manifest.get('format')!r} v{manifest.get('format_version')!r}; "
                f"this genmat reads {FORMAT!r} v{FORMAT_VERSION}"
            )
        return manifest

    def _write_manifest(self, manifest: dict) -> None:
        _atomic_write(self.path / MANIFEST, lambda fh: fh.write(_manifest_bytes(manifest)))

    @property
    def manifest(self) -> dict:
        """A copy of the committed manifest."""
        return self._read_manifest()

    @property
    def extra_columns(self) -> tuple[str, ...] | None:
        """Measured-property columns besides the schema fields (None until fixed)."""
        extras = self._read_manifest()["extra_columns"]
        return None if extras is None else tuple(extras)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns ``append`` rows may carry: schema fields, then extras."""
        return tuple(self.schema.names) + (self.extra_columns or ())

    @property
    def batch_keys(self) -> tuple[str, ...]:
        return tuple(s["batch_key"] for s in self._read_manifest()["shards"])

    def has_batch(self, batch_key: str) -> bool:
        """Whether a batch with this key is committed."""
        return batch_key in self.batch_keys

    def __len__(self) -> int:
        return int(self._read_manifest()["n_samples"])

    @property
    def digest(self) -> str:
        """What the committed data are, in 16 hex digits: the sha256 of every shard's sha256
        and of the table's digest, in commit order. Equal digests, equal samples and rows; it
        changes with every append (the dataset lineage MLflow records on training runs)."""
        manifest = self._read_manifest()
        parts = [s["sha256"] for s in manifest["shards"]] + [manifest.get("table_sha256", "")]
        return _sha256("\n".join(parts).encode())[:16]

    def __repr__(self) -> str:
        return f"DatasetStore({str(self.path)!r}, modality={self.modality!r}, n={len(self)})"

    # ------------------------------------------------------------------ append
    def append(
        self,
        samples: np.ndarray | torch.Tensor,
        rows: pd.DataFrame,
        *,
        provenance: str,
        iteration: int,
        source_run: str,
        batch_key: str,
    ) -> np.ndarray:
        """Append ``samples`` (n, *sample_shape) with their ``rows`` (n rows: condition
        columns in physical units, NaN = unknown, plus extra measured columns).

        Returns the new ``sample_id`` s (int64, n). If ``batch_key`` is already
        committed, returns that batch's ids and writes nothing. All input is checked
        before anything is written.
        """
        array = self._check_samples(samples)
        n = array.shape[0]
        if provenance not in PROVENANCES:
            raise DatasetError("provenance", repr(provenance), f"one of {', '.join(PROVENANCES)}")
        if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) or iteration < 0:
            raise DatasetError("iteration", repr(iteration), "an integer ≥ 0")
        for name, value in (("source_run", source_run), ("batch_key", batch_key)):
            if not isinstance(value, str) or (name == "batch_key" and not value):
                raise DatasetError(name, repr(value), "a non-empty string" if name == "batch_key" else "a string")
        with self._writer_lock():
            return self._append_locked(array, rows, n, provenance, int(iteration), source_run, batch_key)

    @contextlib.contextmanager
    def _writer_lock(self):
        """Exclusive advisory lock on ``.lock``: one append at a time, across processes."""
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _append_locked(self, array: np.ndarray, rows: pd.DataFrame, n: int, provenance: str, iteration: int,
                       source_run: str, batch_key: str) -> np.ndarray:
        manifest = self._read_manifest()
        frame = self._check_rows(rows, n, manifest)

        for shard in manifest["shards"]:
            if shard["batch_key"] == batch_key:
                if shard["n"] != n:
                    log.warning("batch %r is already committed with %d samples (asked to append %d); "
                                "returning the committed ids", batch_key, shard["n"], n)
                else:
                    log.info("batch %r already committed; nothing written", batch_key)
                return np.arange(shard["first_id"], shard["first_id"] + shard["n"], dtype=np.int64)
        if n == 0:
            return np.empty(0, dtype=np.int64)

        old = self._committed_table(manifest)  # checked before anything is written
        self._clean_uncommitted(manifest)
        first_id = int(manifest["n_samples"])
        name = f"shard-{len(manifest['shards']):05d}.npy"
        ids = np.arange(first_id, first_id + n, dtype=np.int64)

        # 1. shard
        data = _npy_bytes(array)
        sha = _sha256(data)
        shard_path = self.path / SHARDS / name
        _atomic_write(shard_path, lambda fh: fh.write(data))
        _VERIFIED.add(_verify_key(shard_path, sha))

        # 2. table: committed rows + new rows (rows of a crashed append are dropped)
        extras = manifest["extra_columns"]
        if extras is None:  # the first append fixes the extra columns
            extras = [c for c in frame.columns if c not in self.schema.names]
        new = pd.DataFrame(
            {
                "sample_id": ids,
                "shard": [name] * n,
                "row": np.arange(n, dtype=np.int64),
            }
        )
        for col in (*self.schema.names, *extras):
            new[col] = frame[col].to_numpy(np.float64) if col in frame.columns else np.full(n, np.nan)
        new["provenance"] = [provenance] * n
        new["iteration"] = np.full(n, int(iteration), dtype=np.int64)
        new["source_run"] = [source_run] * n
        new["batch_key"] = [batch_key] * n
        table = new if old.empty else pd.concat([old.reindex(columns=new.columns), new], ignore_index=True)
        _atomic_write(self.path / TABLE, lambda fh: table.to_parquet(fh, index=False))

        # 3. manifest: the commit (with the digest of the committed table: edited labels are refused)
        manifest = dict(manifest)
        manifest["table_sha256"] = _table_digest(table)
        manifest["extra_columns"] = extras
        manifest["shards"] = [
            *manifest["shards"],
            {"file": name, "sha256": sha, "n": n, "batch_key": batch_key, "first_id": first_id},
        ]
        manifest["n_samples"] = first_id + n
        self._write_manifest(manifest)
        log.info("dataset %s: +%d samples (%s, batch %r), %d in all", self.path, n, provenance, batch_key, first_id + n)
        return ids

    def _check_samples(self, samples) -> np.ndarray:
        if isinstance(samples, torch.Tensor):
            samples = samples.detach().cpu()
            if samples.dtype == torch.bfloat16:
                samples = samples.float()
            samples = samples.numpy()
        if not isinstance(samples, np.ndarray):
            raise DatasetError("samples", type(samples).__name__, "a numpy array or torch tensor", "is not")
        if not np.issubdtype(samples.dtype, np.floating):
            raise DatasetError("samples.dtype", str(samples.dtype), "a floating dtype (stored as float32)")
        want = ("n", *self.sample_shape)
        if samples.ndim != len(want) or tuple(samples.shape[1:]) != self.sample_shape:
            raise DatasetError("samples.shape", tuple(samples.shape),
                               f"({', '.join(str(s) for s in want)}) for this dataset",
                               "does not match")
        array = np.ascontiguousarray(samples, dtype=np.float32)
        finite = np.isfinite(array).reshape(array.shape[0], -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise DatasetError("samples", f"NaN/inf in sample {bad[0]} ({len(bad)} samples in all)",
                               "finite float32 values", "has")
        return array

    def _check_rows(self, rows: pd.DataFrame, n: int, manifest: dict) -> pd.DataFrame:
        if not isinstance(rows, pd.DataFrame):
            raise DatasetError("rows", type(rows).__name__, "a pandas DataFrame", "is not")
        if len(rows) != n:
            raise DatasetError("len(rows)", len(rows), f"{n} (one row per sample)", "does not match the samples:")
        if rows.columns.has_duplicates:
            dup = sorted(set(rows.columns[rows.columns.duplicated()].map(str)))
            raise DatasetError("rows.columns", ", ".join(dup), "unique column names", "are duplicated;")
        reserved = [c for c in rows.columns if c in RESERVED]
        if reserved:
            raise DatasetError(
                "rows column", reserved[0], f"a name other than {', '.join(RESERVED)} (set by the store)",
                "is reserved; use",
            )
        extras = manifest["extra_columns"]
        if extras is None:
            _check_extra_names([c for c in rows.columns if c not in self.schema.names], self.schema)
        else:
            known = (*self.schema.names, *extras)
            unknown = [c for c in rows.columns if c not in known]
            if unknown:
                raise DatasetError("rows column", repr(unknown[0]), f"one of {', '.join(known)}",
                                   "is not a column of this dataset; expected")
        out = pd.DataFrame(index=range(n))
        for col in rows.columns:
            s = rows[col]
            if pd.api.types.is_bool_dtype(s.dtype) or not (
                pd.api.types.is_numeric_dtype(s.dtype) or s.isna().all()
            ):
                raise DatasetError(f"rows[{col!r}]", f"dtype {s.dtype}", "numbers (NaN = unknown)", "is not")
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(x).any():
                i = int(np.flatnonzero(np.isinf(x))[0])
                raise DatasetError(f"rows[{col!r}]", f"{x[i]} at row {i}", "a finite number or NaN (unknown)", "is not")
            out[col] = x
        return out

    def _clean_uncommitted(self, manifest: dict) -> None:
        """Remove shard files and temp files a crashed append left behind (the table's
        uncommitted rows are dropped when the table is rewritten)."""
        committed = {s["file"] for s in manifest["shards"]}
        for p in (self.path / SHARDS).iterdir():
            stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
            if stale_tmp or (_SHARD_RE.match(p.name) and p.name not in committed):
                log.warning("dataset %s: removing uncommitted %s", self.path, p.name)
                p.unlink(missing_ok=True)
        for p in self.path.glob(".*.tmp"):
            p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    def _committed_table(self, manifest: dict) -> pd.DataFrame:
        file = self.path / TABLE
        if not manifest["shards"]:
            return self._empty_table(manifest)
        if not file.exists():
            raise DataIntegrityError(file, f"missing, but {MANIFEST} lists {manifest['n_samples']} samples")
        table = pd.read_parquet(file)
        n_of = {s["file"]: s["n"] for s in manifest["shards"]}
        keep = table["shard"].map(n_of)
        table = table[keep.notna().to_numpy() & (table["row"].to_numpy() < keep.fillna(0).to_numpy())]
        table = table.sort_values("sample_id", kind="stable").reset_index(drop=True)
        expected = np.arange(manifest["n_samples"], dtype=np.int64)  # committed rows match the manifest exactly
        if len(table) != len(expected) or not np.array_equal(table["sample_id"].to_numpy(), expected):
            raise DataIntegrityError(
                file, f"holds {len(table)} committed rows, {MANIFEST} lists {manifest['n_samples']} samples"
            )
        if "table_sha256" in manifest and _table_digest(table) != manifest["table_sha256"]:
            raise DataIntegrityError(file, f"committed rows do not match the table_sha256 of {MANIFEST} "
                                           "(labels edited or corrupted)")
        return table

    def _empty_table(self, manifest: dict) -> pd.DataFrame:
        cols: dict[str, pd.Series] = {
            "sample_id": pd.Series(dtype="int64"), "shard": pd.Series(dtype=object), "row": pd.Series(dtype="int64")
        }
        for name in (*self.schema.names, *(manifest["extra_columns"] or ())):
            cols[name] = pd.Series(dtype="float64")
        cols.update(
            provenance=pd.Series(dtype=object), iteration=pd.Series(dtype="int64"),
            source_run=pd.Series(dtype=object), batch_key=pd.Series(dtype=object),
        )
        return pd.DataFrame(cols)

    def table(self) -> pd.DataFrame:
        """One row per committed sample, sorted by ``sample_id`` (the order of :meth:`load`)."""
        return self._committed_table(self._read_manifest())

    def summary(self) -> pd.DataFrame:
        """Sample counts by iteration and provenance (columns: iteration, provenance, n)."""
        t = self.table()
        if t.empty:
            return pd.DataFrame({"iteration": pd.Series(dtype="int64"), "provenance": pd.Series(dtype=object),
                                 "n": pd.Series(dtype="int64")})
        return t.groupby(["iteration", "provenance"]).size().rename("n").reset_index()

    def load(self, ids: Sequence[int] | np.ndarray | None = None, *, verify: bool | None = None) -> np.ndarray:
        """Samples (len(ids), *sample_shape) float32 in the order of ``ids`` (all
        committed samples in id order when None)."""
        manifest = self._read_manifest()
        total = int(manifest["n_samples"])
        verify = self.verify_reads if verify is None else bool(verify)
        if ids is None:
            ids = np.arange(total, dtype=np.int64)
        else:
            ids = np.asarray(ids)
            if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
                raise DatasetError(
                    "ids", f"{ids.dtype} array of shape {ids.shape}", "a 1-D sequence of integer sample_ids", "is not"
                )
            ids = ids.astype(np.int64)
            bad = (ids < 0) | (ids >= total)
            if bad.any():
                committed = f"[0, {total - 1}]" if total else "none (the dataset is empty)"
                raise DatasetError("sample_id", int(ids[bad][0]), committed, "is not in the dataset; committed ids are")
        out = np.empty((len(ids), *self.sample_shape), dtype=np.float32)
        firsts = np.array([s["first_id"] for s in manifest["shards"]], dtype=np.int64)
        which = np.searchsorted(firsts, ids, side="right") - 1
        for k in np.unique(which):
            shard = manifest["shards"][k]
            sel = np.flatnonzero(which == k)
            data = self._read_shard(shard, verify=verify)
            out[sel] = data[ids[sel] - shard["first_id"]]
        return out

    def _read_shard(self, shard: dict, *, verify: bool, force: bool = False) -> np.ndarray:
        path = self.path / SHARDS / shard["file"]
        if not path.exists():
            raise DataIntegrityError(path, "missing shard listed in the manifest")
        if verify and (force or _verify_key(path, shard["sha256"]) not in _VERIFIED):
            data = path.read_bytes()
            if _sha256(data) != shard["sha256"]:
                raise DataIntegrityError(path, f"sha256 does not match {MANIFEST} (corrupted or modified)")
            _VERIFIED.add(_verify_key(path, shard["sha256"]))
            array = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        want = (shard["n"], *self.sample_shape)
        if array.shape != want or array.dtype != np.float32:
            raise DataIntegrityError(path, f"holds {array.dtype} {array.shape}, {MANIFEST} says float32 {want}")
        return array

    def verify(self) -> None:
        """Re-hash every committed shard and check the table; DataIntegrityError naming
        the first bad file."""
        manifest = self._read_manifest()
        for shard in manifest["shards"]:
            self._read_shard(shard, verify=True, force=True)
        self._committed_table(manifest)


# ----------------------------------------------------------------------------- helpers
def _check_shape(sample_shape: Sequence[int]) -> tuple[int, ...]:
    allowed = "a non-empty sequence of positive ints such as (1, 32, 32)"
    try:
        shape = tuple(sample_shape)
    except TypeError:
        raise DatasetError("sample_shape", repr(sample_shape), allowed, "is not") from None
    if not shape or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape):
        raise DatasetError("sample_shape", repr(sample_shape), allowed, "is not")
    return tuple(int(s) for s in shape)


def _check_extra_names(names: Sequence[str], schema: ConditionSchema) -> list[str]:
    out = []
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise DatasetError("extra column", repr(name), "an identifier such as 'volume_fraction'", "is not")
        if name in RESERVED:
            raise DatasetError("extra column", name, f"a name other than {', '.join(RESERVED)}", "is reserved; use")
        if name in schema.names:
            raise DatasetError("extra column", name, "a name that is not a condition field", "is a schema field; use")
        if name not in out:
            out.append(name)
    return out


def _leftover(p: Path) -> bool:
    """Whether ``p`` in a directory without a manifest is more than an interrupted create."""
    if p.name == ".lock":
        return False
    if p.name == SHARDS and p.is_dir():
        return any(not (q.name.startswith(".") and q.name.endswith(".tmp")) for q in p.iterdir())
    return not (p.name.startswith(".") and p.name.endswith(".tmp"))


def _table_digest(table: pd.DataFrame) -> str:
    """sha256 of a table's content, independent of how Parquet stored it: per column its
    name, then float64 bytes (one canonical NaN) for numbers or the text of each cell."""
    h = hashlib.sha256()
    for col in table.columns:
        h.update(f"\x1e{col}\x1f".encode())
        s = table[col]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            h.update(np.where(np.isnan(x), np.nan, x).astype("<f8").tobytes())
        else:
            h.update("\x1f".join(map(str, s.tolist())).encode())
    return h.hexdigest()


def _manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _flatten(settings, prefix: str = "") -> dict:
    out = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _settings_diff(stored: dict, now: dict) -> list[str]:
    """The simulator settings that differ, as ``key: stored → now``. A key that only one side
    has and that is empty on the other (``modality_options`` {} against a manifest written
    before it was recorded) is no difference."""
    a, b = _flatten(stored), _flatten(now)
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, missing), b.get(key, missing)
        if x == y or (x is missing and y in ({}, None)) or (y is missing and x in ({}, None)):
            continue
        out.append(f"{key}: {'(none)' if x is missing else x} → {'(none)' if y is missing else y}")
    return out


def _short(obj: Any, limit: int = 200) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str) if not isinstance(obj, str) else repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."
