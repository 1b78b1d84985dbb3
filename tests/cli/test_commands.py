"""The xtalforge command line."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.builders import gemmi_sf
from xtalforge import __version__, reflections, structure_factors
from xtalforge.cli import app
from xtalforge.crystal.examples import random_crystal
from xtalforge.io import read_cif, read_hkl, write_cif

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_info_and_sf(tmp_path):
    c = random_crystal("P 1 21 1", 8, seed=9)
    cif = tmp_path / "s.cif"
    write_cif(c, cif)
    result = runner.invoke(app, ["info", str(cif)])
    assert result.exit_code == 0, result.stdout
    assert "P 1 21 1" in result.stdout and str(len(reflections(c, 1.0))) in result.stdout
    c = read_cif(cif)  # what the command reads (coordinates to 6 decimals)
    refl = reflections(c, 1.0)
    amp = np.abs(structure_factors(c, refl))
    out = tmp_path / "f.parquet"
    assert runner.invoke(app, ["sf", str(cif), "--d-min", "1.0", "--out", str(out)]).exit_code == 0
    table = pq.read_table(out).to_pandas()
    np.testing.assert_allclose(table["F"], amp, rtol=1e-5)
    hkl = tmp_path / "f.hkl"
    assert runner.invoke(app, ["sf", str(cif), "--d-min", "1.0", "--out", str(hkl)]).exit_code == 0
    assert len(read_hkl(hkl)) == len(refl)
    result = runner.invoke(app, ["info", str(hkl)])
    assert result.exit_code == 0 and str(len(refl)) in result.stdout


def test_sf_writes_mtz_and_cif_that_gemmi_reads(tmp_path):
    import gemmi

    cif = tmp_path / "s.cif"
    write_cif(random_crystal("P 1 21/c 1", 6, seed=5), cif)
    c = read_cif(cif)
    refl = reflections(c, 1.2)
    oracle = gemmi_sf(c, refl.hkl)  # gemmi's own structure factors
    strong = np.abs(oracle) > 0.05 * np.abs(oracle).max()

    def check(hkl, amp, phase_deg):
        np.testing.assert_array_equal(hkl, refl.hkl)
        np.testing.assert_allclose(amp, np.abs(oracle), rtol=1e-4, atol=1e-4)
        dphi = np.angle(np.exp(1j * np.radians(phase_deg)) / np.exp(1j * np.angle(oracle)))
        assert np.abs(np.degrees(dphi[strong])).max() < 0.05

    mtz_path = tmp_path / "f.mtz"
    res = runner.invoke(app, ["sf", str(cif), "--d-min", "1.2", "-o", str(mtz_path)])
    assert res.exit_code == 0, res.output
    mtz = gemmi.read_mtz_file(str(mtz_path))
    assert [col.label for col in mtz.columns] == ["H", "K", "L", "FC", "PHIC", "E"]
    assert mtz.spacegroup.hall == c.spacegroup.hall
    np.testing.assert_allclose(mtz.cell.parameters, c.cell, atol=1e-4)
    check(
        np.array(mtz.make_miller_array()),
        np.array(mtz.column_with_label("FC")),
        np.array(mtz.column_with_label("PHIC")),
    )
    e = np.array(mtz.column_with_label("E"))
    assert np.mean(e**2) == pytest.approx(1.0, abs=0.15)  # ⟨|E|²⟩ ≈ 1

    cif_path = tmp_path / "f_calc.cif"
    res = runner.invoke(app, ["sf", str(cif), "--d-min", "1.2", "-o", str(cif_path)])
    assert res.exit_code == 0, res.output
    block = gemmi.cif.read(str(cif_path)).sole_block()
    table = block.find("_refln_", ["index_h", "index_k", "index_l", "F_calc", "phase_calc"])
    values = np.array([[float(v) for v in row] for row in table])
    check(values[:, :3].astype(int), values[:, 3], values[:, 4])
    ops = [gemmi.Op(v.strip("'")) for v in block.find_values("_space_group_symop_operation_xyz")]
    assert gemmi.find_spacegroup_by_ops(gemmi.GroupOps(ops)).hall == c.spacegroup.hall


def test_info_on_an_ins_file_and_a_folder(tmp_path):
    from xtalforge.io import write_ins

    c = random_crystal("P 1 21/c 1", 4, seed=1)
    ins = tmp_path / "x.ins"
    ins.write_text(write_ins(ins, c).replace("HKLF 4", "HKLF 4 1 1 0 1 0 1 0 -1 0 0"))
    res = runner.invoke(app, ["info", str(ins)])
    assert res.exit_code == 0, res.output
    assert "P 1 21/c 1" in res.stdout and "matrix 1 0 1 / 0 1 0 / -1 0 0" in res.stdout
    res = runner.invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 2 and "xtalforge inspect" in res.stdout


def test_warnings_are_one_line_on_stderr(tmp_path):
    c = random_crystal("P 1 21 1", 4, seed=2)
    cif = tmp_path / "q.cif"
    write_cif(c, cif)
    text, last_label = cif.read_text(), read_cif(cif).labels[-1]
    last_atom = text.index("\n", text.index(f"{last_label} "))
    cif.write_text(text[:last_atom] + "\nQ1 Q 0.5 0.5 0.5 0.05 Uiso 1" + text[last_atom:])
    result = runner.invoke(app, ["info", str(cif)])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stderr and "skipped 1 dummy site(s)" in result.stderr
    assert "UserWarning" not in result.output and "cif_io.py" not in result.output
    assert f"{c.n_atoms}" in result.stdout


def test_bad_input_gives_a_clear_message(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\nloop_\n_a\n_b\n1\n")
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 2
    assert "bad.cif" in result.stdout and "Traceback" not in result.stdout
    result = runner.invoke(app, ["sf", str(tmp_path / "none.cif"), "--out", "x.hkl"])
    assert result.exit_code == 2 and "no such file" in result.stdout
