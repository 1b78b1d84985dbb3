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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, writers are not serialised
    fcntl = None  # type: ignore[assignment]

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
    "writer_lock",
]

MANIFEST = "manifest.json"
LOCK = ".lock"
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
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.replace(tmp, path)


def write_shard(
    root: Path, index: int, table: pa.Table, row_group_size: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """Write shard ``index`` (zstd Parquet, fixed row groups, no timestamps) and its sidecar;
    returns the sidecar's content."""
    path = shard_path(root, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
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
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(
            f"{path}: cannot write the shard ({exc.strerror or exc}); the shards finished "
            "before it are intact: free space and rerun to resume"
        ) from None
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


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the dataset folder ``root`` for writing: an advisory lock on ``root/.lock``,
    released by the system when the process ends in any way (even SIGKILL), so a second
    writer is refused at once and a killed run never leaves the folder locked. A folder that
    cannot be written is refused here, before any work."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fh = open(root / LOCK, "a+")  # held for the whole block
    except OSError as exc:
        raise DatasetError(f"{root}: cannot write the dataset folder ({exc.strerror})") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatasetError(
                    f"{root}: another process is writing this dataset (it holds {root / LOCK}); "
                    "wait for it to finish or choose another folder"
                ) from None
        yield
    finally:
        fh.close()  # closing releases the lock
