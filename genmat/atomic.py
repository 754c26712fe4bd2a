"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

Readers (and a resumed run) see the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step.

    The temporary name keeps the suffix, so writers that infer a format from it
    (pandas, numpy, matplotlib) behave as for ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
