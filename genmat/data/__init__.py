"""Dataset store (manifest, shards, Parquet table, provenance, checksums) and a
torch Dataset over it. Imports only :mod:`genmat.conditions` from genmat."""

from genmat.data.store import PROVENANCES, DataIntegrityError, DatasetError, DatasetStore
from genmat.data.torch_dataset import SampleDataset

__all__ = ["DatasetStore", "DatasetError", "DataIntegrityError", "PROVENANCES", "SampleDataset"]
