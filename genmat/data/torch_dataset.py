"""A torch Dataset over the committed samples of a :class:`DatasetStore`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from genmat.conditions import ConditionSchema
from genmat.data.store import DatasetError, DatasetStore


class SampleDataset(Dataset):
    """Items ``(x, values, mask)``: the sample x (C, *S) float32 and its condition
    encoded by ``schema`` — values (F,) normalised to [-1, 1], mask (F,) with 1 where
    the field is known (NaN in the table = unknown, e.g. the processing of a
    relabelled sample, gives 0).

    ``schema`` defaults to the store's; a different one (e.g. a subset of fields) must
    name only columns of the store's table. ``ids`` picks sample_ids (default: all
    committed). Samples are read on first use and kept in memory.
    """

    def __init__(
        self,
        store: DatasetStore,
        schema: ConditionSchema | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
        *,
        verify: bool | None = None,
    ) -> None:
        self.store = store
        self.schema = schema if schema is not None else store.schema
        table = store.table()
        missing = [n for n in self.schema.names if n not in table.columns]
        if missing:
            raise DatasetError(
                "schema field", missing[0], f"one of the dataset columns {', '.join(store.columns)}", "is not"
            )
        if ids is None:
            self.ids = table["sample_id"].to_numpy(np.int64)
            rows = table
        else:
            self.ids = np.asarray(ids, dtype=np.int64).reshape(-1)
            known = table["sample_id"].to_numpy(np.int64)
            bad = self.ids[~np.isin(self.ids, known)]
            if bad.size:
                raise DatasetError("sample_id", int(bad[0]), f"[0, {len(known) - 1}]" if len(known) else "none",
                                   "is not in the dataset; committed ids are")
            rows = table.set_index("sample_id").loc[self.ids].reset_index()
        self.rows = rows.reset_index(drop=True)
        self.values, self.mask = self.schema.encode(self.rows[list(self.schema.names)])
        self._verify = verify
        self._x: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def x(self) -> torch.Tensor:
        """All samples (N, C, *S) float32, loaded once."""
        if self._x is None:
            self._x = torch.from_numpy(self.store.load(self.ids, verify=self._verify))
        return self._x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x[i], self.values[i], self.mask[i]

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (N, C, *S), values (N, F), mask (N, F)), all float32, for in-memory training."""
        return self.x, self.values, self.mask
