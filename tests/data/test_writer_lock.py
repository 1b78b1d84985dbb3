"""Datasets: one writer per folder. A second `generate` on a folder another process is writing
is refused at once with a clear message and changes nothing; a killed writer leaves no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from tests.builders import SMALL
from xtalforge.cli import app
from xtalforge.data.build import build_dataset
from xtalforge.data.shards import LOCK
from xtalforge.data.spec import DatasetError, load_spec

_HOLDER = """
import sys, time
from pathlib import Path
from xtalforge.data.shards import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX")
def test_a_second_writer_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "ds"
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**SMALL, "n": 8, "shard_size": 4}))
    holder = _hold(out)
    try:
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, ["generate", str(spec), "--out", str(out)])
        assert res.exit_code != 0 and time.perf_counter() - t0 < 30
        assert "another process is writing" in res.output and str(out) in res.output
        assert not (out / "manifest.json").exists()  # refused before any work
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    manifest = build_dataset(load_spec({**SMALL, "n": 8, "shard_size": 4}), out)
    assert manifest["status"] == "complete"


def test_a_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot write the dataset folder") as err:
        build_dataset(load_spec(SMALL), blocker / "ds")
    assert str(blocker / "ds") in str(err.value)


def _full_disk(limit_bytes: int):
    """preexec_fn: files may not grow past ``limit_bytes`` (writes then fail with EFBIG, the
    signal that would kill the process ignored), as on a full disk."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_gives_a_clear_error_and_no_shard_counted_done(tmp_path, small_dataset):
    from xtalforge.data.build import verify_dataset
    from xtalforge.data.shards import shard_done

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SMALL))
    sizes = [p.stat().st_size for p in (small_dataset / "shards").glob("*.parquet")]
    out = tmp_path / "ds"
    res = subprocess.run(
        [sys.executable, "-m", "xtalforge", "generate", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_full_disk(min(sizes) // 2),
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "cannot write" in res.stdout + res.stderr and "Traceback" not in res.stderr
    n_shards = load_spec(SMALL).n_shards
    assert all(shard_done(out, k) is None for k in range(n_shards))
    assert not list((out / "shards").glob(".*.tmp-*"))  # no partial file left behind
    build_dataset(load_spec(SMALL), out)  # with space again it resumes and completes
    assert verify_dataset(out) == []
