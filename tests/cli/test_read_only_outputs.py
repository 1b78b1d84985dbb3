"""A read-only output folder is refused at once, before any work, with the path and the reason,
by every command that writes. Run on a read-only tmpfs in a user namespace (so it also holds as
root, as CI runs), or with a mode-555 folder for a normal user."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.builders import cli, cli_env, well_separated
from xtalforge.io import write_cif


def _read_only_runner(folder):
    """A function running a command line with ``folder`` read-only, or None where this machine
    cannot make one (root without user namespaces)."""
    folder.mkdir()
    if shutil.which("unshare"):
        probe = subprocess.run(
            ["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {folder} && true"],
            capture_output=True,
        )
        if probe.returncode == 0:

            def run(args):
                script = f'mount -t tmpfs -o ro tmpfs {folder} && exec "$@"'
                return subprocess.run(
                    ["unshare", "-Urm", "sh", "-c", script, "sh", *args],
                    env={**cli_env(), "COLUMNS": "400"},
                    capture_output=True,
                    text=True,
                )

            return run
    if os.geteuid() != 0:
        folder.chmod(0o555)
        env = {**cli_env(), "COLUMNS": "400"}
        return lambda args: subprocess.run(args, env=env, capture_output=True, text=True)
    return None


def test_every_writer_refuses_a_read_only_folder_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    run = _read_only_runner(ro)
    if run is None:
        pytest.skip("root without user namespaces (unshare): no folder is read-only to root")
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    c = well_separated("P 1 21/c 1", (6.0, 7.0, 8.0, 90, 95, 90), 4, 0)
    write_cif(c, cifs / "s.cif")
    cases = {
        "generate": cli("generate", "quick-p21", "--out", ro / "ds", "-n", "8"),
        "import-cif": cli("import-cif", cifs, "--out", ro / "imp"),
        "solve": cli("solve", cifs / "s.cif", "--out", ro / "x.res"),
        "benchmark": cli("benchmark", "solve", "--data", cifs, "--json", ro / "b.json"),
        "train": cli("train", "quick-unet3d", f"output_dir={ro / 'runs'}", "data.spec=quick-p21"),
        "sf": cli("sf", cifs / "s.cif", "--out", ro / "f.mtz"),
    }
    for name, args in cases.items():
        t0 = time.perf_counter()
        res = run(args)
        text = " ".join((res.stdout + res.stderr).split())  # rich wraps long messages
        assert res.returncode == 2, (name, text)
        assert time.perf_counter() - t0 < 30, name
        assert str(ro) in text.replace("│ ", "").replace(" │", ""), (name, text)
        assert "Read-only" in text or "Permission denied" in text, (name, text)
        assert "Traceback" not in text, (name, text)
