"""Build a dataset folder from a spec: shards computed by local processes or a Dask cluster.

``build_dataset(spec, out)`` writes ``manifest.json`` and ``shards/part-*.parquet`` (see
:mod:`xtalforge.data.shards`). Every shard is a pure function of (spec, shard index): sample i
has seed ``sample_seed(spec.seed, i)`` and split ``split_of(spec.seed, i, splits)``, so shards are
byte-identical whatever the executor or worker count, and a rerun after an interruption only
computes the shards that are missing or corrupt. The parent keeps at most two shards per worker
in flight and receives only small summaries, so its memory does not grow with n.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from xtalforge.data.shards import (
    read_manifest,
    shard_done,
    write_manifest,
    write_shard,
    writer_lock,
)
from xtalforge.data.spec import DatasetError, DatasetSpec, sample_seed, sample_seeds, splits_of
from xtalforge.io.cif_structure import cif_entries, entry_name
from xtalforge.provenance import git_commit

__all__ = ["build_dataset", "build_shard", "verify_dataset"]


def build_shard(spec_data: dict, index: int, root: str) -> dict[str, Any]:
    """Compute and write shard ``index`` (run inside a worker process); returns its sidecar."""
    import sys

    from xtalforge.data.rows import compute_rows

    if "torch" in sys.modules:  # one thread per worker process
        sys.modules["torch"].set_num_threads(1)
    spec = DatasetSpec(**spec_data)
    assert spec.n is not None  # set for CIF imports by build_dataset
    start = index * spec.shard_size
    stop = min(start + spec.shard_size, spec.n)
    ids = list(range(start, stop))
    report: list[dict] = []
    sources: list[str] = []
    if spec.generator is not None:
        from xtalforge.generate import Generator

        gen = Generator.from_config(spec.generator_config())
        seeds = sample_seeds(spec.seed, ids)
        crystals = gen.sample_many(seeds)
    else:
        from xtalforge.data.audit import audit_cif

        entries = cif_entries(str(spec.cif_dir))
        crystals, kept, seeds = [], [], []
        for i in ids:
            res = audit_cif(entries[i][0], block=entries[i][1])
            report.append(res.as_dict())
            if res.crystal is not None:
                crystals.append(res.crystal)
                kept.append(i)
                seeds.append(sample_seed(spec.seed, i))
                sources.append(entry_name(*entries[i]))
        ids = kept
    splits = splits_of(spec.seed, ids, spec.splits, spec.folds)
    table = compute_rows(
        crystals, ids, seeds, splits, spec, sources=sources if spec.cif_dir is not None else None
    )
    summary = {
        "ids": [start, stop],
        "splits": dict(Counter(splits)),
        "spacegroups": dict(Counter(c.spacegroup.xhm() for c in crystals)),
        "max_edges": np.max([c.cell[:3] for c in crystals], axis=0).tolist() if crystals else None,
        "n_reflections": int(table.column("n_refl").to_numpy().sum()) if crystals else 0,
        "skipped_atoms": int(
            sum(
                c.metadata.get("skipped_atoms", 0) + c.metadata.get("skipped_hydrogens", 0)
                for c in crystals
            )
        ),
    }
    if report:
        summary["report"] = report
    return write_shard(Path(root), index, table, spec.row_group_size, summary)


def _local_executor(workers: int) -> Callable[[Callable, list[tuple]], Iterator[dict]]:
    def run(fn: Callable, jobs: list[tuple]) -> Iterator[dict]:
        if workers <= 1:
            for job in jobs:
                yield fn(*job)
            return
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        # fork where available: workers start at once and scripts need no __main__ guard; the
        # workers use numpy only (torch is never imported on this path), so inherited torch or
        # OpenMP state in the parent is never touched
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
            pending: set = set()
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    pending.add(pool.submit(fn, *queue.pop(0)))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()

    return run


def _dask_executor(client: Any) -> Callable[[Callable, list[tuple]], Iterator[dict]]:
    def run(fn: Callable, jobs: list[tuple]) -> Iterator[dict]:
        from distributed import as_completed

        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        queue = list(jobs)
        first = [
            client.submit(fn, *queue.pop(0), pure=False)
            for _ in range(min(len(queue), 2 * n_workers))
        ]
        stream = as_completed(first)
        for fut in stream:
            yield fut.result()
            fut.release()
            if queue:
                stream.add(client.submit(fn, *queue.pop(0), pure=False))

    return run


def _prepare_folder(root: Path, spec_hash: str, overwrite: bool) -> None:
    """Make ``root`` ready for the dataset of ``spec_hash``: refuse (or, with ``overwrite``,
    empty) a folder of another spec; drop temporary files a killed run left behind."""
    if (root / "manifest.json").is_file():
        old = read_manifest(root)
        if old.get("spec_hash") != spec_hash:
            if not overwrite:
                raise DatasetError(
                    f"{root} holds another dataset (spec hash "
                    f"{old.get('spec_hash')} ≠ {spec_hash}); choose another "
                    "folder or pass overwrite"
                )
            for p in (root / "shards").glob("*"):
                p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    for stale in (root / "shards").glob(".*.tmp-*"):
        stale.unlink()


def _new_manifest(spec: DatasetSpec, resolved: dict, spec_hash: str) -> dict[str, Any]:
    from xtalforge import __version__

    return {
        "format": "xtalforge-dataset",
        "format_version": 1,
        "name": spec.name,
        "spec_hash": spec_hash,
        "spec": resolved,
        "status": "in_progress",
        "version": __version__,
        "git_commit": git_commit(),
        "n": spec.n,
        "n_shards": spec.n_shards,
        "seed": spec.seed,
    }


@contextmanager
def _executor(
    executor: str, workers: int, scheduler: str | None, client: Any
) -> Iterator[Callable[[Callable, list[tuple]], Iterator[dict]]]:
    """The ``run(fn, jobs)`` of an executor; a Dask cluster started here is closed after."""
    if executor == "local":
        yield _local_executor(workers)
        return
    if executor != "dask":
        raise DatasetError(f"unknown executor {executor!r} (local or dask)")
    if client is not None:
        yield _dask_executor(client)
        return
    from distributed import Client, LocalCluster

    owned = (
        Client(scheduler)
        if scheduler
        else Client(
            LocalCluster(
                n_workers=max(1, workers),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
        )
    )
    try:
        yield _dask_executor(owned)
    finally:
        cluster = owned.cluster
        owned.close()
        if cluster is not None:
            cluster.close()


def build_dataset(
    spec: DatasetSpec,
    out: str | Path,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    client: Any = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write (or resume) the dataset of ``spec`` into ``out``; returns the manifest.

    ``executor``: ``local`` (``workers`` processes; 1 runs in this process) or ``dask`` (the
    cluster at ``scheduler``, a given ``client``, or a LocalCluster of ``workers`` processes).
    ``progress(done_structures, total)`` is called as shards finish. A folder holding another
    spec is refused unless ``overwrite``; one another process is writing, or one that cannot be
    written, is refused before any work (:func:`~xtalforge.data.shards.writer_lock`).
    """
    root = Path(out)
    with writer_lock(root):
        return _build_locked(spec, root, workers, executor, scheduler, client, overwrite, progress)


def _build_locked(
    spec: DatasetSpec,
    root: Path,
    workers: int,
    executor: str,
    scheduler: str | None,
    client: Any,
    overwrite: bool,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """:func:`build_dataset` while holding the folder's writer lock."""
    if spec.cif_dir is not None:
        spec = spec.model_copy(update={"n": len(cif_entries(spec.cif_dir))})
    resolved, spec_hash = spec.resolved(), spec.spec_hash()
    _prepare_folder(root, spec_hash, overwrite)
    manifest = _new_manifest(spec, resolved, spec_hash)
    write_manifest(root, manifest)
    infos: dict[int, dict] = {}
    for k in range(spec.n_shards):
        info = shard_done(root, k)
        if info is not None:
            infos[k] = info
    todo = [k for k in range(spec.n_shards) if k not in infos]
    done_count = sum(i["ids"][1] - i["ids"][0] for i in infos.values())
    if progress:
        progress(done_count, spec.n or 0)
    jobs = [(resolved, k, str(root)) for k in todo]  # generator inlined: no file lookups there
    t0 = time.perf_counter()
    with _executor(executor, workers, scheduler, client) as run:
        for info in run(build_shard, jobs):
            infos[info["index"]] = info
            done_count += info["ids"][1] - info["ids"][0]
            if progress:
                progress(done_count, spec.n or 0)
    shards = [infos[k] for k in sorted(infos)]
    manifest.update(_summarise(shards, spec))
    if spec.cif_dir is not None:
        _write_report(root, [r for s in shards for r in s.get("report", [])])
    manifest["status"] = "complete"
    manifest["last_run"] = {
        "executor": executor,
        "workers": workers,
        "shards_computed": len(todo),
        "seconds": round(time.perf_counter() - t0, 3),
        "pid": os.getpid(),
    }
    write_manifest(root, manifest)
    return manifest


def _write_report(root: Path, report: list[dict]) -> None:
    """``import-report.csv``: file, status, fixes and problems (``; ``-joined) per CIF."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file", "status", "fixes", "problems"])
    for r in report:
        writer.writerow([r["file"], r["status"], "; ".join(r["fixes"]), "; ".join(r["problems"])])
    (root / "import-report.csv").write_text(buf.getvalue())


def verify_dataset(root: str | Path) -> list[str]:
    """Problems found in a dataset folder (empty when intact): manifest complete, every shard
    present with the manifest's sha256 and row count, readable, sample ids unique."""
    import pyarrow.parquet as pq

    from xtalforge.data.shards import file_sha256

    root = Path(root)
    manifest = read_manifest(root)
    problems = []
    if manifest.get("status") != "complete":
        problems.append(f"status is {manifest.get('status')!r}: rerun the generation to finish")
    seen: set[int] = set()
    listed = set()
    for s in manifest.get("shards", []):
        path = root / s["file"]
        listed.add(path.name)
        if not path.is_file():
            problems.append(f"{s['file']}: missing")
            continue
        if file_sha256(path) != s["sha256"]:
            problems.append(f"{s['file']}: checksum mismatch (corrupt or modified)")
            continue
        try:
            ids = pq.read_table(path, columns=["id"]).column("id").to_numpy()
        except Exception as exc:
            problems.append(f"{s['file']}: unreadable: {exc}")
            continue
        if len(ids) != s["rows"]:
            problems.append(f"{s['file']}: {len(ids)} rows, manifest says {s['rows']}")
        dup = seen.intersection(ids.tolist())
        if dup:
            problems.append(f"{s['file']}: duplicated sample ids, e.g. {min(dup)}")
        seen.update(ids.tolist())
    if manifest.get("status") == "complete" and len(manifest.get("shards", [])) != manifest.get(
        "n_shards"
    ):
        problems.append(
            f"{len(manifest.get('shards', []))} shards listed, {manifest.get('n_shards')} expected"
        )
    extra = sorted(p.name for p in (root / "shards").glob("part-*.parquet") if p.name not in listed)
    if extra and manifest.get("status") == "complete":
        problems.append(f"shard files not in the manifest: {extra[:3]}")
    return problems


def _summarise(shards: list[dict], spec: DatasetSpec) -> dict[str, Any]:
    splits: Counter = Counter()
    groups: Counter = Counter()
    report: list[dict] = []
    edges = np.zeros(3)
    for s in shards:
        splits.update(s["splits"])
        groups.update(s["spacegroups"])
        report.extend(s.get("report", []))
        if s.get("max_edges"):
            edges = np.maximum(edges, s["max_edges"])
    out: dict[str, Any] = {
        "rows": int(sum(s["rows"] for s in shards)),
        "splits": {k: splits.get(k, 0) for k in ("train", "val", "test")},
        "spacegroups": dict(groups.most_common()),
        "max_edges": edges.tolist(),
        "n_reflections": int(sum(s["n_reflections"] for s in shards)),
        "skipped_atoms": int(sum(s["skipped_atoms"] for s in shards)),
        "shards": [{k: s[k] for k in ("index", "file", "rows", "sha256", "ids")} for s in shards],
    }
    if groups:
        from xtalforge.diffraction.hkl_grid import HKLGrid

        grid = HKLGrid.from_bounds(
            (float(edges[0]), float(edges[1]), float(edges[2])), spec.compute.d_high, list(groups)
        )
        out["hkl_grid"] = {
            "lower": list(grid.lower),
            "shape": list(grid.shape),
            "d_min": spec.compute.d_high,
        }
    if spec.cif_dir is not None:
        out["import_report"] = {
            "files": len(report),
            "status": dict(Counter(r["status"] for r in report)),
        }
    return out
