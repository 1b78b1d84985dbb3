"""Datasets: specs, sharded Parquet writing (local processes or Dask), CIF/hkl import, torch
datasets over shards or generated structures, one Lightning data module over them, and the
solve data of dataset entries."""

from xtalforge.data.build import build_dataset, build_shard, verify_dataset
from xtalforge.data.spec import DatasetError, DatasetSpec, load_spec, sample_seed, split_of

__all__ = [
    "DatasetError",
    "DatasetSpec",
    "build_dataset",
    "build_shard",
    "load_spec",
    "sample_seed",
    "split_of",
    "verify_dataset",
]
