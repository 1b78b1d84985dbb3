"""``xtalforge stats`` (fit a generator to CIFs) and ``xtalforge compare`` (generated vs real)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.builders import real_data
from xtalforge.cli import app
from xtalforge.crystal import Crystal
from xtalforge.crystal.examples import sodium_chloride
from xtalforge.generate import Generator, load_config
from xtalforge.generate.compare import compare_sets, distance_histogram
from xtalforge.generate.descriptors import interatomic_distances
from xtalforge.generate.fit import fit_config
from xtalforge.io import read_cif, write_cif


def test_interatomic_distances_rock_salt_shells():
    # NaCl, a = 5.64 Å: shells at a/2 (6), a/√2 (12), a√3/2 (8), a (6) around every atom
    nacl = sodium_chloride()
    a = nacl.cell[0]
    d = interatomic_distances(nacl, r_max=a + 0.01)
    per_atom = len(d) / nacl.n_atoms
    assert per_atom == 6 + 12 + 8 + 6
    for shell, count in ((a / 2, 6), (a / math.sqrt(2), 12), (a * math.sqrt(3) / 2, 8), (a, 6)):
        assert np.isclose(d, shell, atol=1e-6).sum() == count * nacl.n_atoms


def test_interatomic_distances_oblique_cell_matches_brute_force():
    c = Generator.from_config(
        {"spacegroups": ["P -1"], "atoms": [4, 6], "cell": {"a_min": 3.0, "a_max": 6.0}}
    ).sample(3)
    p1 = c.expand_p1()
    orth = p1.orthogonalization_matrix
    r = range(-3, 4)
    shifts = np.array([[i, j, k] for i in r for j in r for k in r])
    cloud = (p1.frac[None] + shifts[:, None]).reshape(-1, 3) @ orth.T
    centres = (c.frac % 1.0) @ orth.T
    d = np.linalg.norm(centres[:, None] - cloud[None], axis=-1).ravel()
    expected = np.sort(d[(d > 1e-3) & (d <= 4.0)])
    got = np.sort(interatomic_distances(c, r_max=4.0, hydrogens=True))
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_fit_recovers_known_generator_parameters():
    truth = {
        "spacegroups": {"P 1 21/c 1": 2.0, "P -1": 1.0},
        "atoms": None,
        "v_atom_count": [15.0, 20.0],
        "cell": {
            "strategy": "volume_first",
            "volume": {"mu": 7.0, "sigma": 0.3},
            "a_min": 4.0,
            "a_max": 30.0,
        },
        "composition": {"elements": {"C": 0.8, "O": 0.2}},
        "u_iso": [0.02, 0.04],
    }
    gen = Generator.from_config(truth)
    crystals = [gen.sample(s) for s in range(300)]
    cfg = fit_config(crystals).config
    assert abs(cfg.cell.volume.mu - 7.0) < 0.06 and abs(cfg.cell.volume.sigma - 0.3) < 0.05
    assert abs(cfg.spacegroups["P 1 21/c 1"] - 2 / 3) < 0.08
    assert abs(cfg.composition.elements["C"] - 0.8) < 0.05
    # V per atom: the generator floors N', so the realised values lie a little above 15–20 Å³
    assert 14.5 < cfg.v_atom_count[0] < 17 and 19 < cfg.v_atom_count[1] < 24
    assert 0.015 < cfg.u_iso[0] < 0.03 and 0.03 < cfg.u_iso[1] < 0.045
    assert cfg.composition.h_fraction is None  # no hydrogens in the input
    Generator.from_config(cfg).sample(0)  # the fitted config is ready to use


def test_stats_and_compare_on_the_cod_folder(tmp_path):
    cod = real_data("cod")
    out = tmp_path / "fitted.yaml"
    res = CliRunner().invoke(app, ["stats", str(cod), "--out", str(out)])
    assert res.exit_code == 0, res.stdout
    assert out.is_file() and out.with_suffix(".png").stat().st_size > 10_000
    cfg = load_config(out)
    # independent oracle: the volumes and space groups listed in the folder's index.csv
    with open(cod / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    log_v = np.log([float(r["volume"]) for r in rows])
    assert abs(cfg.cell.volume.mu - log_v.mean()) < 0.1
    assert abs(cfg.cell.volume.sigma - log_v.std()) < 0.1
    assert max(cfg.spacegroups, key=cfg.spacegroups.get) == "P 1 21/c 1"
    assert max(cfg.composition.elements, key=cfg.composition.elements.get) == "C"
    assert cfg.placement.method == "molecule"
    raw = yaml.safe_load(out.read_text())
    assert raw["name"] == "fitted"
    png = tmp_path / "cmp.png"
    res = CliRunner().invoke(app, ["compare", str(out), str(cod), "--n", "20", "--out", str(png)])
    assert res.exit_code == 0, res.stdout
    assert png.stat().st_size > 10_000 and "interatomic distance" in res.stdout


def test_compare_same_generator_is_close_and_molecules_differ_from_uniform(tmp_path):
    base = {
        "spacegroups": ["P 1 21/c 1"],
        "atoms": [8, 12],
        "composition": {"elements": {"C": 1.0}},
    }
    mol = Generator.from_config({**base, "placement": {"method": "molecule"}})
    uni = Generator.from_config({**base, "placement": {"method": "uniform"}})
    a = [mol.sample(s) for s in range(40)]
    b = [mol.sample(s) for s in range(1000, 1040)]
    u = [uni.sample(s) for s in range(40)]
    same = compare_sets(a, b)
    assert same.ks["volume (Å³)"] < 0.35 and same.ks["interatomic distance (Å)"] < 0.05
    centres, dens_mol = distance_histogram(compare_sets(a, u).generated["interatomic distance (Å)"])
    _, dens_uni = distance_histogram(compare_sets(u, a).generated["interatomic distance (Å)"])
    bond = (centres > 1.35) & (centres < 1.65)  # C–C: 0.9–1.1 × 1.52 Å
    trough = (centres > 1.75) & (centres < 2.05)  # forbidden 1.1–1.4 × 1.52 Å
    assert dens_mol[bond].mean() > 5 * dens_mol[trough].mean()
    assert dens_uni[trough].mean() > dens_uni[bond].mean()


def test_stats_rejects_an_empty_folder_clearly(tmp_path):
    res = CliRunner().invoke(app, ["stats", str(tmp_path), "--out", str(tmp_path / "x.yaml")])
    assert res.exit_code == 2 and "no *.cif files" in res.stdout
    (tmp_path / "bad.cif").write_text("data_x\n_cell_length_a 5\n")
    res = CliRunner().invoke(app, ["stats", str(tmp_path), "--out", str(tmp_path / "x.yaml")])
    assert res.exit_code == 2 and "at least 2 structures" in res.stdout


def test_read_back_of_fitted_cif_folder(tmp_path):
    gen = Generator.from_config("thesis-monoclinic")
    for s in range(4):
        write_cif(gen.sample(s), tmp_path / f"s{s}.cif")
    res = CliRunner().invoke(app, ["stats", str(tmp_path), "--out", str(tmp_path / "g.yaml")])
    assert res.exit_code == 0, res.stdout
    cfg = load_config(tmp_path / "g.yaml")
    assert set(cfg.spacegroups) <= {"P 1 21 1", "C 1 2 1"}
    assert set(cfg.composition.elements) <= {"C", "N", "O", "Cl", "Br"}
    assert isinstance(read_cif(tmp_path / "s0.cif"), Crystal)


@pytest.mark.parametrize("bad", ["P 7", "Q 21"])
def test_fitted_groups_are_validated(bad):
    with pytest.raises(ValueError):
        load_config({"spacegroups": [bad]})
