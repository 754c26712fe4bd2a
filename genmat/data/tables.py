"""A user's tables (targets, processing, the conditions of imported data): CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genmat.errors import InputError


def read_table(path: Path) -> pd.DataFrame:
    """A user's table (targets, processing): CSV by suffix, else Parquet; InputError naming
    the file when it is missing or unreadable as such."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist (or is not a file)", field="path", value=str(path),
                         allowed="an existing .csv or .parquet file")
    kind = "CSV" if path.suffix == ".csv" else "Parquet"
    try:
        frame = pd.read_csv(path) if kind == "CSV" else pd.read_parquet(path)
    except OSError:
        raise
    except Exception as err:  # pandas/pyarrow parse errors, bad encodings, not a table at all
        raise InputError(f"{path} is not a readable {kind} table ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
    if frame.columns.has_duplicates:
        raise InputError(f"{path}: column(s) {sorted(set(frame.columns[frame.columns.duplicated()]))} appear twice")
    return frame
