from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from genmat.conditions import ConditionSchema, Field
from genmat.data import DatasetError, DatasetStore, SampleDataset

SHAPE = (1, 3, 3)


def schema() -> ConditionSchema:
    return ConditionSchema(
        (
            Field("temperature_K", "K", 900.0, 1300.0, "processing"),
            Field("E_GPa", "GPa", 70.0, 410.0, "property"),
        )
    )


@pytest.fixture
def store(tmp_path):
    s = DatasetStore.create(tmp_path / "ds", modality="toy", schema=schema(), sample_shape=SHAPE, simulator={})
    x = np.arange(4 * 9, dtype=np.float32).reshape(4, *SHAPE)
    rows = pd.DataFrame({"temperature_K": [900.0, 1300.0, np.nan, 1100.0], "E_GPa": [70.0, np.nan, 410.0, 240.0]})
    s.append(x, rows, provenance="simulated", iteration=0, source_run="r", batch_key="b0")
    return s


def test_items_encode_conditions_and_mask_nan(store):
    ds = SampleDataset(store, schema())
    assert len(ds) == 4
    x, values, mask = ds[1]
    assert x.shape == SHAPE and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.arange(9, 18, dtype=torch.float32).reshape(SHAPE))
    torch.testing.assert_close(values, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(mask, torch.tensor([1.0, 0.0]))
    X, V, M = ds.as_tensors()
    assert X.shape == (4, *SHAPE) and V.shape == M.shape == (4, 2)
    torch.testing.assert_close(M, torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    torch.testing.assert_close(V, torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert [b.shape[0] for b in batch] == [3, 3, 3]


def test_ids_subset_and_schema_subset(store):
    sub = ConditionSchema((schema().field("E_GPa"),))
    ds = SampleDataset(store, sub, ids=[3, 0])
    X, V, M = ds.as_tensors()
    np.testing.assert_array_equal(X.numpy(), store.load([3, 0]))
    torch.testing.assert_close(M, torch.ones(2, 1))
    torch.testing.assert_close(V, torch.tensor([[0.0], [-1.0]]))
    with pytest.raises(DatasetError, match="sample_id = 9"):
        SampleDataset(store, ids=[9])
    other = ConditionSchema((Field("k_W_mK", "W/(m·K)", 100.0, 200.0, "property"),))
    with pytest.raises(DatasetError, match="k_W_mK"):
        SampleDataset(store, other)
