"""``import-cif`` killed with SIGKILL mid-run and started again finishes with the same shards,
byte for byte, as a run that was never interrupted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.builders import cli, cli_env, kill_when, well_separated
from xtalforge.data.build import build_dataset, verify_dataset
from xtalforge.data.spec import load_spec
from xtalforge.io import write_cif


def _cif_folder(folder: Path, n: int) -> Path:
    folder.mkdir()
    for k in range(n):
        c = well_separated("P 1 21/c 1", (6.0 + 0.1 * k, 7.0, 8.0, 90, 95, 90), 4, k)
        write_cif(c, folder / f"s{k:02d}.cif")
    return folder


def _hashes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "shards").glob("*.parquet"))}


def test_import_cif_killed_and_run_again(tmp_path):
    cifs = _cif_folder(tmp_path / "cifs", 24)
    spec_file = tmp_path / "import.yaml"
    spec = yaml.safe_load(
        (
            Path(load_spec.__code__.co_filename).parents[1] / "configs/datasets/real-import.yaml"
        ).read_text()
    )
    spec.update(shard_size=2, row_group_size=2)
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "killed"
    cmd = cli("import-cif", cifs, "--out", out, "--spec", spec_file)
    kill_when(cmd, lambda: len(list((out / "shards").glob("*.json"))) >= 2, timeout=120)
    done = len(list((out / "shards").glob("*.json")))
    assert 2 <= done < 12, "the kill should land mid-run"
    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert verify_dataset(out) == []
    clean = tmp_path / "clean"
    build_dataset(load_spec(spec_file, cif_dir=str(cifs.resolve()), generator=None), clean)
    assert _hashes(out) == _hashes(clean)


def test_benchmark_solve_killed_leaves_no_partial_rows_and_reruns_the_same(tmp_path):
    """Killed mid-run, ``benchmark solve --json`` leaves no file (never a partial one); run
    again it writes the rows an uninterrupted run writes."""
    import json

    cifs = _cif_folder(tmp_path / "cifs", 6)
    base = cli("benchmark", "solve", "--data", cifs, "--methods", "cf")
    base += ["--resolutions", "1.0,1.2", "-n", "6"]
    killed = tmp_path / "killed.json"
    # killed after 4 s: imports done, solving under way
    kill_when([*base, "--json", str(killed)], lambda: False, timeout=4.0)
    assert not killed.exists() and not list(tmp_path.glob(".killed.json*"))
    again = subprocess.run([*base, "--json", str(killed)], env=cli_env(), capture_output=True)
    whole = tmp_path / "whole.json"
    once = subprocess.run([*base, "--json", str(whole)], env=cli_env(), capture_output=True)
    assert again.returncode == once.returncode == 0

    def figures(path: Path) -> list[dict]:
        rows = json.loads(path.read_text())
        for r in rows:  # wall times differ between runs; every other figure is the same
            r.pop("seconds_per_structure")
            r.pop("atom_seconds")
        return rows

    assert figures(killed) == figures(whole)
