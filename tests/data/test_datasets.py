"""Datasets (xtalforge.data): specs, seeds and splits, sharded builds (local, Dask), resume after
kill, verify, CIF and hkl import, the CLI's generate / verify / inspect."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.builders import SMALL, cli, kill_when, real_data
from xtalforge.cli import app
from xtalforge.crystal import Crystal
from xtalforge.data import (
    DatasetError,
    build_dataset,
    load_spec,
    sample_seed,
    split_of,
    verify_dataset,
)
from xtalforge.data.audit import audit_cif
from xtalforge.data.rows import crystal_from_row
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.generate import Generator
from xtalforge.io import read_cif, write_cif


def shard_hashes(root: Path) -> list[str]:
    return [
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "shards").glob("part-*.parquet"))
    ]


# --------------------------------------------------------------------------- specs and seeds
@pytest.mark.parametrize(
    "change, message",
    [
        ({"splits": {"train": 0.5, "val": 0.1}}, "sum to 1"),
        ({"splits": {"train": 0.9, "dev": 0.1}}, "unknown split"),
        ({"cif_dir": "/tmp"}, "exactly one source"),
        ({"compute": {"d_high": 1.0, "d_low": 0.9}}, "must exceed d_high"),
        (
            {
                "compute": {
                    "d_high": 1.0,
                    "patterson": [{"name": "x", "shape": [8, 8, 8], "d_min": 0.8}],
                }
            },
            "finer than d_high",
        ),
        ({"generator": "no-such-preset"}, "no generator preset"),
        ({"n": None}, "n \\(number"),
        ({"shard": 5}, "shard"),
    ],
)
def test_invalid_specs_name_the_field(change, message):
    with pytest.raises(DatasetError, match=message):
        load_spec({**SMALL, **change})


def test_presets_load():
    for name in ("tiny", "thesis-d1", "thesis-d2", "thesis-d3"):
        spec = load_spec(name)
        assert spec.n and spec.generator is not None
    assert load_spec("thesis-d3").compute.patterson[0].shape == (12, 12, 12)
    spec = load_spec("real-import", cif_dir="/tmp")
    assert spec.splits["test"] == 1.0
    # the D1 presets are their base sets' structures (same generator, seed, splits) to 0.8 Å
    for name in ("quick-p21", "monoclinic-20"):
        base, d1 = load_spec(name), load_spec(f"{name}-d1")
        assert (d1.generator, d1.seed, d1.n, d1.splits) == (
            base.generator,
            base.seed,
            base.n,
            base.splits,
        )
        assert (d1.compute.d_high, d1.compute.d_low) == (0.8, 1.5)
    # the bonded-molecule D1 preset differs from monoclinic-20-d1 only in placement (and names)
    uniform, mol = load_spec("monoclinic-20-d1"), load_spec("monoclinic-20-d1-mol")
    gu, gm = uniform.generator, mol.generator  # generator configs as mappings
    assert gm["placement"]["method"] == "molecule" != gu["placement"]["method"]
    assert {k for k in gu if gu[k] != gm[k]} == {"name", "placement"}
    assert (mol.seed, mol.n, mol.splits, mol.compute) == (
        uniform.seed,
        uniform.n,
        uniform.splits,
        uniform.compute,
    )


def test_seeds_and_splits_depend_only_on_seed_and_id():
    assert sample_seed(3, 10) == sample_seed(3, 10) != sample_seed(3, 11) != sample_seed(4, 10)
    fr = {"train": 0.7, "val": 0.2, "test": 0.1}
    splits = np.array([split_of(0, i, fr) for i in range(20000)])
    for name, p in fr.items():  # binomial: 5 σ
        assert abs((splits == name).mean() - p) < 5 * np.sqrt(p * (1 - p) / 20000)


# --------------------------------------------------------------------------- build and bytes
def test_shards_identical_for_one_and_two_workers_and_dask(tmp_path, small_dataset):
    two = tmp_path / "two"
    build_dataset(load_spec(SMALL), two, workers=2)
    assert shard_hashes(two) == shard_hashes(small_dataset)
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("dask.distributed is not installed (extra 'dask')")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        build_dataset(load_spec(SMALL), tmp_path / "dask", executor="dask", client=client)
    assert shard_hashes(tmp_path / "dask") == shard_hashes(small_dataset)
    assert verify_dataset(tmp_path / "dask") == []


def test_shards_readable_by_pandas_and_pyarrow_and_splits_disjoint(small_dataset):
    files = sorted((small_dataset / "shards").glob("*.parquet"))
    df = pd.concat([pd.read_parquet(f) for f in files])
    assert len(df) == 48 and sorted(df["id"]) == list(range(48))
    table = pq.read_table(files[0])
    assert table.schema.field("hkl").type.value_type.bit_width == 16
    for _, row in df.iterrows():
        assert len(row["hkl"]) == 3 * row["n_refl"] == 3 * len(row["F"]) == 3 * len(row["E"])
        assert len(row["patterson_low"]) == 8**3 and len(row["frac"]) == 3 * len(row["z"])
        assert row["split"] == split_of(5, row["id"], {"train": 0.8, "val": 0.1, "test": 0.1})
        assert row["seed"] == sample_seed(5, row["id"])
    ids = {s: set(df.loc[df["split"] == s, "id"]) for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    assert not (ids["val"] & ids["test"])
    m = (small_dataset / "manifest.json").read_text()
    assert '"status": "complete"' in m and '"git_commit"' in m and '"spec_hash"' in m


def test_k_fold_splits_test_every_sample_once():
    from xtalforge.data.spec import Folds

    k, n = 5, 400
    splits = [[split_of(3, i, {}, Folds(k=k, test=t)) for i in range(n)] for t in range(k)]
    for i in range(n):
        per_fold = [splits[t][i] for t in range(k)]
        # each sample: test in exactly one fold dataset, validation in one, training in k - 2
        assert per_fold.count("test") == 1 and per_fold.count("val") == 1
    sizes = [s.count("test") for s in splits]
    assert all(abs(m - n / k) < 4 * (n / k) ** 0.5 for m in sizes)  # folds of similar size
    spec = load_spec({**SMALL, "folds": {"k": 5, "test": 2}})
    assert spec.spec_hash() != load_spec(SMALL).spec_hash()
    assert "folds" not in load_spec(SMALL).resolved()  # specs without folds keep their hash
    with pytest.raises(DatasetError, match=r"folds\.test"):
        load_spec({**SMALL, "folds": {"k": 5, "test": 5}})


def test_rows_match_direct_structure_factors(small_dataset):
    gen = Generator.from_config("phai-p21c")
    row = pq.read_table(small_dataset / "shards" / "part-00001.parquet").slice(2, 1).to_pylist()[0]
    c = gen.sample(row["seed"])
    assert write_cif(crystal_from_row(row)) == write_cif(c)
    refl = reflections(c, 0.9)
    f = structure_factors(c, refl)  # float64 direct sum, checked against gemmi elsewhere
    np.testing.assert_array_equal(np.array(row["hkl"]).reshape(-1, 3), refl.hkl)
    np.testing.assert_allclose(row["F"], np.abs(f), rtol=2e-4, atol=2e-3 * np.abs(f).max())
    strong = np.abs(f) > 0.05 * np.abs(f).max()
    dphi = np.angle(np.exp(1j * (np.array(row["phase"]) - np.angle(f))))[strong]
    assert np.abs(dphi).max() < 1e-2


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, small_dataset):
    import yaml

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**SMALL, "shard_size": 2, "row_group_size": 2}))
    out = tmp_path / "killed"
    kill_when(
        cli("generate", spec_file, "--out", out),
        lambda: len(list((out / "shards").glob("*.json"))) >= 3,
        timeout=120,
    )
    done = len(list((out / "shards").glob("*.json")))
    assert 3 <= done < 24, "the kill should land mid-run"
    assert any("in_progress" in p for p in verify_dataset(out))
    # damage one finished shard as well: it must be detected and recomputed
    victim = sorted((out / "shards").glob("part-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    m = build_dataset(load_spec(spec_file), out)
    assert m["status"] == "complete" and m["last_run"]["shards_computed"] >= 24 - done + 1
    assert verify_dataset(out) == []
    clean = tmp_path / "clean"
    build_dataset(load_spec(spec_file), clean)
    assert shard_hashes(out) == shard_hashes(clean)
    ids = pd.concat(
        pd.read_parquet(f, columns=["id"]) for f in sorted((out / "shards").glob("*.parquet"))
    )["id"]
    assert sorted(ids) == list(range(48))


def test_verify_detects_corruption_and_other_specs_are_refused(tmp_path):
    spec = load_spec({**SMALL, "n": 8, "shard_size": 4})
    build_dataset(spec, tmp_path)
    assert verify_dataset(tmp_path) == []
    shard = tmp_path / "shards" / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert any("checksum" in p for p in verify_dataset(tmp_path))
    res = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert res.exit_code == 1 and "checksum" in res.stdout
    with pytest.raises(DatasetError, match="another dataset"):
        build_dataset(load_spec({**SMALL, "n": 8, "shard_size": 4, "seed": 6}), tmp_path)


# --------------------------------------------------------------------------- imports
def _write(c: Crystal, path: Path) -> Path:
    write_cif(c, path)
    return path


def test_import_cif_reports_fixes_and_skips_without_aborting(tmp_path):
    src = tmp_path / "cifs"
    src.mkdir()
    gen = Generator.from_config("phai-p21c")
    good = gen.sample(1)
    _write(good, src / "a_good.cif")
    _write(good.copy(u_iso=good.u_iso * 1e4), src / "b_u_times_1e4.cif")
    _write(good.copy(u_iso=good.u_iso / (1 / (8 * np.pi**2)) + 0.9), src / "c_b_as_u.cif")
    half = good.occ.copy()
    half[0] = 0.5
    _write(good.copy(occ=half), src / "d_partial.cif")
    two = good.copy(
        z=np.r_[good.z, good.z[0]],
        frac=np.r_[good.frac, good.frac[:1] + 0.02],
        u_iso=np.r_[good.u_iso, 0.02],
        occ=np.r_[good.occ, 1.0],
    )
    _write(two, src / "e_overlap.cif")
    dup = good.copy(
        z=np.r_[good.z, good.z[0]],
        frac=np.r_[good.frac, good.frac[:1] + 1.0],
        u_iso=np.r_[good.u_iso, good.u_iso[0]],
        occ=np.r_[good.occ, 1.0],
    )
    _write(dup, src / "f_duplicate.cif")
    shelx = Crystal(
        (6.0, 7.0, 8.0, 90, 100, 90),
        "P 1 2/c 1",
        ["Cu", "O"],
        [[0.0, 0.3, 0.25], [0.2, 0.1, 0.1]],
        [0.02, 0.03],
        [0.5, 1.0],
    )
    _write(shelx, src / "g_shelx_occ.cif")
    (src / "h_corrupt.cif").write_text("data_bad\n_cell_length_a 5\nloop_\n_atom_site_label\n")
    text, last = (src / "a_good.cif").read_text(), read_cif(src / "a_good.cif").labels[-1]
    end = text.index("\n", text.index(f"{last} "))
    (src / "i_qpeak.cif").write_text(text[:end] + "\nQ1 Q 0.5 0.5 0.5 0.05 Uiso 1" + text[end:])
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["import-cif", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.stdout
    report = pd.read_csv(out / "import-report.csv").set_index("file")
    assert report.loc["a_good.cif", "status"] == "ok"
    assert "10⁴" in report.loc["b_u_times_1e4.cif", "fixes"]
    assert "8π²" in report.loc["c_b_as_u.cif", "fixes"]
    assert "partial occupancy" in report.loc["d_partial.cif", "problems"]
    assert "overlapping" in report.loc["e_overlap.cif", "problems"]
    assert "merged" in report.loc["f_duplicate.cif", "fixes"]
    assert "SHELX" in report.loc["g_shelx_occ.cif", "fixes"]
    assert report.loc["h_corrupt.cif", "status"] == "skipped"
    assert report.loc["i_qpeak.cif", "status"] == "fixed"
    assert "dummy site" in report.loc["i_qpeak.cif", "fixes"]
    rows = pd.concat(pd.read_parquet(f) for f in sorted((out / "shards").glob("*.parquet")))
    assert set(rows["source"]) == {
        "a_good.cif",
        "b_u_times_1e4.cif",
        "c_b_as_u.cif",
        "f_duplicate.cif",
        "g_shelx_occ.cif",
        "i_qpeak.cif",
    }
    # the fixed structures give the original's structure factors
    ref = np.abs(structure_factors(read_cif(src / "a_good.cif"), 0.8))
    for name in ("a_good.cif", "b_u_times_1e4.cif", "f_duplicate.cif", "i_qpeak.cif"):
        f = np.asarray(rows.loc[rows["source"] == name, "F"].iloc[0])
        np.testing.assert_allclose(f, ref, rtol=1e-3, atol=1e-3 * ref.max())
    assert verify_dataset(out) == []


def test_import_cif_takes_every_structure_of_a_multi_block_file(tmp_path):
    src = tmp_path / "cifs"
    src.mkdir()
    gen = Generator.from_config("phai-p21c")
    first, second = gen.sample(11), gen.sample(12)
    texts = [write_cif(first, name="compound_1"), write_cif(second, name="compound_2")]
    (src / "paper.cif").write_text(
        "data_global\n_journal_name_full 'J. Test'\n\n" + "\n".join(texts)
    )
    _write(gen.sample(13), src / "single.cif")
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["import-cif", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.stdout
    report = pd.read_csv(out / "import-report.csv").set_index("file")
    assert list(report.index) == ["paper.cif [compound_1]", "paper.cif [compound_2]", "single.cif"]
    rows = pd.concat(pd.read_parquet(f) for f in sorted((out / "shards").glob("*.parquet")))
    rows = rows.set_index("source")
    for name, crystal in (("paper.cif [compound_1]", first), ("paper.cif [compound_2]", second)):
        ref = np.abs(structure_factors(crystal, 0.8))  # each block is its own structure
        np.testing.assert_allclose(
            np.asarray(rows.loc[name, "F"], float), ref, rtol=1e-4, atol=1e-4 * ref.max()
        )


def test_audit_on_the_cod_folder_never_raises():
    cod = real_data("cod")
    results = [audit_cif(p) for p in sorted(cod.glob("*.cif"))]
    assert len(results) == len(list(cod.glob("*.cif")))
    assert sum(r.status != "skipped" for r in results) > 60
    assert all(r.problems for r in results if r.status == "skipped")


def test_import_hkl_round_trip_with_unmerged_symmetry_mates(tmp_path):
    from xtalforge.io import write_hkl

    c = Generator.from_config("phai-p21c").sample(4)
    refl = reflections(c, 1.0)
    i_calc = np.abs(structure_factors(c, refl)) ** 2
    # write every reflection twice, once as the (h, -k, l) mate (2/m: same intensity)
    hkl = np.concatenate([refl.hkl, refl.hkl * np.array([1, -1, 1])])
    scale = write_hkl(tmp_path / "x.hkl", hkl, np.r_[i_calc, i_calc] / 10)
    write_cif(c, tmp_path / "x.cif")
    res = CliRunner().invoke(
        app, ["import-hkl", str(tmp_path / "x.hkl"), "--out", str(tmp_path / "ds")]
    )
    assert res.exit_code == 0, res.stdout
    row = pd.read_parquet(tmp_path / "ds" / "shards" / "part-00000.parquet").iloc[0]
    np.testing.assert_array_equal(np.asarray(row["hkl"]).reshape(-1, 3), refl.hkl)
    # F8.2 rounds I to 0.01: compare intensities
    np.testing.assert_allclose(
        np.asarray(row["F"], float) ** 2, i_calc / 10 * scale, rtol=1e-3, atol=0.006
    )
    assert "phase" not in row.index


def test_import_hkl_measured_data_agrees_with_the_model():
    hkl_dir, cod = real_data("hkl"), real_data("cod")
    from xtalforge.io.merge import merged_amplitudes

    c = read_cif(cod / "COD_1501469.cif")
    refl, fo, _, _ = merged_amplitudes(hkl_dir / "COD_1501469.hkl", c.cell, c.spacegroup)
    fc = np.abs(structure_factors(c, refl))
    k = (fo * fc).sum() / (fc * fc).sum()
    assert np.abs(fo - k * fc).sum() / fo.sum() < 0.2  # measured vs model R factor


# --------------------------------------------------------------------------- CLI
def test_cli_generate_verify_inspect(tmp_path):
    import yaml

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**SMALL, "n": 8, "shard_size": 4}))
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["generate", str(spec), "--out", str(out)])
    assert res.exit_code == 0, res.stdout
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0
    res = CliRunner().invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0, res.stdout
    assert (out / "card" / "card.md").is_file() and (out / "card" / "slices.png").is_file()
    bad = CliRunner().invoke(app, ["generate", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "no dataset preset" in bad.stdout


def test_seed_sequence_states_equal_numpy_for_every_lane():
    """The shard's vectorised SeedSequence hash against numpy's own, word for word: small and
    multi-word dataset seeds, indices up to 2³² − 1 and past it (numpy fallback)."""
    from xtalforge.data.seeds import seed_sequence_states
    from xtalforge.data.spec import Folds, sample_seeds, splits_of

    rng = np.random.default_rng(0)
    idx = np.concatenate([np.arange(300), rng.integers(0, 2**32, 200), [2**32 - 1, 2**32]])
    for seed in (0, 9, 2**33 + 1, 2**63 - 1):
        for tag, words in ((0xDA7A, 2), (0x5B17, 1), (7, 5)):
            ref = [np.random.SeedSequence([seed, int(i), tag]).generate_state(words) for i in idx]
            assert np.array_equal(seed_sequence_states(seed, idx, tag, words), np.array(ref))
        ids = idx.tolist()
        assert sample_seeds(seed, ids) == [sample_seed(seed, i) for i in ids]
        fr = {"train": 0.7, "val": 0.2, "test": 0.1}
        assert splits_of(seed, ids, fr) == [split_of(seed, i, fr) for i in ids]
        folds = Folds(k=5, test=2)
        assert splits_of(seed, ids, fr, folds) == [split_of(seed, i, fr, folds) for i in ids]
