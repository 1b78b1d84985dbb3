"""Parquet shards written atomically, with checksums, and the dataset manifest.

A shard ``shards/part-00000.parquet`` is written to a temporary name, flushed to disk and
renamed; its sidecar ``part-00000.json`` (rows, sha256, summary) is written the same way after
it. A shard counts as done only when the sidecar exists and the file's sha256 matches it, so a
run killed at any moment (even ``kill -9``) resumes without losing, duplicating or trusting a
corrupt shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from xtalforge.data.spec import DatasetError

__all__ = [
    "atomic_write_bytes",
    "file_sha256",
    "read_manifest",
    "shard_done",
    "shard_path",
    "write_manifest",
    "write_shard",
]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: Only these string columns are dictionary-encoded (numeric lists compress better without).
DICTIONARY_COLUMNS = ("split", "spacegroup", "source")


def shard_path(root: Path, index: int) -> Path:
    return Path(root) / "shards" / f"part-{index:05d}.parquet"


def sidecar_path(root: Path, index: int) -> Path:
    return Path(root) / "shards" / f"part-{index:05d}.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_shard(
    root: Path, index: int, table: pa.Table, row_group_size: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """Write shard ``index`` (zstd Parquet, fixed row groups, no timestamps) and its sidecar;
    returns the sidecar's content."""
    path = shard_path(root, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        row_group_size=row_group_size,
        use_dictionary=[c for c in DICTIONARY_COLUMNS if c in table.column_names],
        write_statistics=False,
        store_schema=True,
    )
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    sha = file_sha256(tmp)
    os.replace(tmp, path)
    info = {
        "index": index,
        "file": str(path.relative_to(root)),
        "rows": table.num_rows,
        "sha256": sha,
        **summary,
    }
    atomic_write_bytes(sidecar_path(root, index), json.dumps(info, sort_keys=True).encode())
    return info


def shard_done(root: Path, index: int) -> dict[str, Any] | None:
    """The sidecar of a finished, intact shard, or None (missing, partial or corrupt)."""
    side, path = sidecar_path(root, index), shard_path(root, index)
    if not (side.is_file() and path.is_file()):
        return None
    try:
        info = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info if file_sha256(path) == info.get("sha256") else None


def read_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root}: not a dataset (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: corrupt manifest: {exc}") from None


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(
        Path(root) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=False, default=str).encode()
    )
