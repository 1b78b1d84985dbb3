"""Reflection files (xtalforge.io: SHELX hkl/ins, MTZ, XDS_ASCII, CIF _refln, HKLF instructions)
and merging measured data (io.merge)."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from tests.builders import PDB_TEXT, real_data
from xtalforge import ReflectionFileError, reflections, structure_factors
from xtalforge.crystal.examples import random_crystal
from xtalforge.io import (
    parse_hkl_text,
    read_hkl,
    read_ins,
    read_mtz,
    read_reflections,
    write_hkl,
    write_ins,
)


@pytest.mark.parametrize("hklf", [4, 3])
def test_hkl_round_trip(tmp_path, hklf):
    c = random_crystal("P 1 21/c 1", 12, seed=4)
    refl = reflections(c, 1.0)
    amp = np.abs(structure_factors(c, refl))
    values = amp**2 if hklf == 4 else amp
    path = tmp_path / "x.hkl"
    scale = write_hkl(path, refl.hkl, values, hklf=hklf, batch=np.arange(len(refl)) % 3 + 1)
    data = read_hkl(path, hklf=hklf)
    assert data.kind == ("intensity" if hklf == 4 else "amplitude")
    np.testing.assert_array_equal(data.hkl, refl.hkl)
    np.testing.assert_allclose(data.values, values * scale, atol=0.006)
    np.testing.assert_array_equal(data.batch, np.arange(len(refl)) % 3 + 1)
    assert path.read_text().splitlines()[-1] == "   0   0   0    0.00    0.00"
    assert not data.notes


def test_hkl_large_values_are_scaled_to_fit_columns(tmp_path):
    path = tmp_path / "big.hkl"
    scale = write_hkl(path, np.array([[1, 0, 0], [0, 1, 0]]), np.array([2.5e6, 10.0]))
    assert scale == pytest.approx(0.01)
    assert read_hkl(path).values[0] == pytest.approx(25000.0)


def test_hkl_fixed_columns_without_spaces():
    data = parse_hkl_text(" -12 -13 -14 1234.56   12.34\n   0   0   0    0.00    0.00\n")
    np.testing.assert_array_equal(data.hkl, [[-12, -13, -14]])
    assert data.values[0] == pytest.approx(1234.56)


def test_truncated_hkl_names_file_and_line(tmp_path):
    path = tmp_path / "trunc.hkl"
    path.write_text("   1   0   0  100.00    1.00\n   2   0   0  200.00    2.00\n   3   0")
    with pytest.raises(ReflectionFileError, match=r"trunc\.hkl:3"):
        read_hkl(path)


def test_missing_terminator_warns(tmp_path):
    path = tmp_path / "noend.hkl"
    path.write_text("   1   0   0  100.00    1.00\n")
    with pytest.warns(UserWarning, match="truncated"):
        data = read_hkl(path)
    assert data.notes


def test_hkl_line_with_letters(tmp_path):
    path = tmp_path / "letters.hkl"
    path.write_text("   1   0   0  100.00    1.00\n   2   a   0  200.00    2.00\n")
    with pytest.raises(ReflectionFileError, match=r"letters\.hkl:2"):
        read_hkl(path)


def test_hkl_nan_value(tmp_path):
    path = tmp_path / "nan.hkl"
    path.write_text("   1   0   0     nan    1.00\n   0   0   0    0.00    0.00\n")
    with pytest.raises(ReflectionFileError, match=r"nan\.hkl:1.*finite"):
        read_hkl(path)


def test_binary_file_is_not_read_as_hkl(tmp_path):
    """A checkpoint (zip) or any binary passed as reflections is named as such, not parsed as
    hkl lines of garbage."""
    import torch

    torch.save({"w": torch.zeros(3)}, tmp_path / "model.ckpt")
    with pytest.raises(ReflectionFileError, match=r"model\.ckpt: a binary file \(a zip archive"):
        read_reflections(tmp_path / "model.ckpt")
    (tmp_path / "raw.hkl").write_bytes(b"   1   0   0\x00\x01\x02")
    with pytest.raises(ReflectionFileError, match=r"raw\.hkl: a binary file, not reflections"):
        read_reflections(tmp_path / "raw.hkl")


@pytest.mark.parametrize(
    "sg", ["P 1 21/n 1", "C 1 2 1", "P -1", "R -3 :H", "F d -3 m :2", "P 21 21 21", "I 41/a :2"]
)
def test_ins_round_trip(tmp_path, sg):
    c = random_crystal(sg, 3, seed=1)
    path = tmp_path / "x.ins"
    text = write_ins(path, c)
    ins = read_ins(path)
    assert ins.spacegroup.hall == c.spacegroup.hall, text
    np.testing.assert_allclose(ins.cell, c.cell, atol=1e-3)
    assert sum(ins.composition().values()) == pytest.approx(sum(c.composition().values()), abs=3)


def test_mtz_written_by_gemmi(tmp_path):
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1 21 1")
    mtz.set_cell_for_all(gemmi.UnitCell(7, 8, 9, 90, 100, 90))
    mtz.add_dataset("x")
    mtz.add_column("FP", "F")
    mtz.add_column("SIGFP", "Q")
    rows = np.array(
        [[1, 0, 0, 10.0, 1.0], [0, 1, 1, np.nan, np.nan], [1, 1, 1, 5.0, 0.5]], dtype=np.float32
    )
    mtz.set_data(rows)
    path = tmp_path / "x.mtz"
    mtz.write_to_file(str(path))
    data = read_reflections(path)
    assert data.kind == "amplitude" and len(data) == 2 and data.notes
    np.testing.assert_allclose(data.values, [10.0, 5.0])
    np.testing.assert_allclose(data.sigmas, [1.0, 0.5])
    assert data.spacegroup.number == 4
    with pytest.raises(ReflectionFileError, match="no column 'I'"):
        read_mtz(path, column="I")


def test_mtz_with_only_anomalous_pairs_gives_friedel_means(tmp_path):
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1 21 1")
    mtz.set_cell_for_all(gemmi.UnitCell(7, 8, 9, 90, 100, 90))
    mtz.add_dataset("x")
    for label, kind in (("I(+)", "K"), ("SIGI(+)", "M"), ("I(-)", "K"), ("SIGI(-)", "M")):
        mtz.add_column(label, kind)
    nan = np.nan
    rows = np.array(
        [
            [1, 0, 1, 10.0, 3.0, 14.0, 4.0],  # both mates
            [0, 1, 1, 7.0, 1.0, nan, nan],  # only I(+)
            [1, 1, 1, nan, nan, 5.0, 0.5],  # only I(-)
            [2, 1, 1, nan, nan, nan, nan],
        ],  # neither
        dtype=np.float32,
    )
    mtz.set_data(rows)
    path = tmp_path / "anom.mtz"
    mtz.write_to_file(str(path))
    data = read_reflections(path)
    assert data.kind == "intensity"
    np.testing.assert_array_equal(data.hkl, [[1, 0, 1], [0, 1, 1], [1, 1, 1]])
    np.testing.assert_allclose(data.values, [12.0, 7.0, 5.0])
    np.testing.assert_allclose(data.sigmas, [2.5, 1.0, 0.5])  # sqrt(3² + 4²) / 2
    assert any("I(+)/I(-)" in n for n in data.notes) and any("dropped 1" in n for n in data.notes)


def test_real_reflection_files():
    hkl = real_data("hkl")
    d = read_reflections(hkl / "COD_1501469.hkl")
    assert d.kind == "intensity" and len(d) > 1000 and d.spacegroup.number == 14
    assert d.cell[1] == pytest.approx(6.927)
    pdb = real_data("pdb")
    m = read_reflections(pdb / "PDB_5e5z.mtz")
    assert len(m) > 300 and m.spacegroup.number == 4
    s = read_reflections(pdb / "PDB_5wkd-sf.cif")
    assert s.kind == "amplitude" and s.spacegroup.number == 5


def test_cif_refln_round_trip_through_gemmi(tmp_path):
    doc = gemmi.cif.Document()
    b = doc.add_new_block("r")
    for key, v in zip(("a", "b", "c"), (7, 8, 9)):
        b.set_pair(f"_cell_length_{key}", str(v))
    for key in ("alpha", "beta", "gamma"):
        b.set_pair(f"_cell_angle_{key}", "90")
    b.set_pair("_symmetry_space_group_name_H-M", "'P 21 21 21'")
    loop = b.init_loop(
        "_refln_", ["index_h", "index_k", "index_l", "F_squared_meas", "F_squared_sigma"]
    )
    loop.add_row(["1", "2", "3", "100.5", "2.0"])
    loop.add_row(["2", "0", "0", "?", "?"])
    path = tmp_path / "r.cif"
    doc.write_file(str(path))
    d = read_reflections(path)
    assert d.kind == "intensity" and len(d) == 1 and d.values[0] == 100.5
    assert d.spacegroup.number == 19 and d.cell == (7, 8, 9, 90, 90, 90)


# --------------------------------------------------------------------------- HKLF instruction
# h(cell) = R h(file): the P2_1/c → P2_1/n change of basis of the SHELXL/PLATON example
HKLF_MATRIX = np.array([[1, 0, 1], [0, 1, 0], [-1, 0, 0]])


def _transformed_data(tmp_path, hklf_line: str, kind: int = 4):
    """A structure's calculated data written with file indices R⁻¹ h, and its .ins with
    ``hklf_line``; returns (crystal, |F| per cell index, hkl path, ins path)."""
    c = random_crystal("P 1 21/c 1", 6, seed=4)
    refl = reflections(c, 1.0)
    amp = np.abs(structure_factors(c, refl))
    file_hkl = np.rint(refl.hkl @ np.linalg.inv(HKLF_MATRIX).T).astype(int)
    hkl_path, ins_path = tmp_path / "x.hkl", tmp_path / "x.ins"
    scale = write_hkl(hkl_path, file_hkl, amp**2 if kind == 4 else amp, hklf=kind)
    text = write_ins(ins_path, c, hklf=kind).replace(f"HKLF {kind}", hklf_line)
    ins_path.write_text(text)
    truth = {
        tuple(h): a * (scale if kind == 3 else np.sqrt(scale))
        for h, a in zip(refl.hkl.tolist(), amp)
    }
    return c, truth, hkl_path, ins_path


def _r_against(truth, refl, amp):
    expected = np.array([truth[tuple(h)] for h in refl.hkl.tolist()])
    return np.abs(amp - expected).sum() / expected.sum()


def test_hklf_matrix_of_the_ins_transforms_the_indices(tmp_path):
    from xtalforge.io.merge import load_measured

    matrix = " ".join(str(v) for v in HKLF_MATRIX.ravel())
    _, truth, hkl_path, ins_path = _transformed_data(tmp_path, f"HKLF 4 1 {matrix}")
    assert np.array_equal(read_ins(ins_path).hklf.matrix, HKLF_MATRIX)
    refl, amp, _, notes, _ = load_measured(hkl_path, ins_path)
    assert len(refl) == len(truth)
    assert _r_against(truth, refl, amp) < 2e-3  # F8.2 rounding only
    assert any("HKLF matrix" in n for n in notes)
    # the same files read without the matrix are another data set: the test can fail
    ins_path.write_text(ins_path.read_text().replace(f"HKLF 4 1 {matrix}", "HKLF 4"))
    with pytest.warns(UserWarning, match="makes absent are observed"):  # and it says so
        refl, amp, _, _, _ = load_measured(hkl_path, ins_path)
    common = np.array([tuple(h) in truth for h in refl.hkl.tolist()])
    expected = np.array([truth[tuple(h)] for h in refl.hkl[common].tolist()])
    assert np.abs(amp[common] - expected).sum() / expected.sum() > 0.3


def test_hklf_3_scale_and_bad_instructions(tmp_path):
    from xtalforge.io.merge import load_measured

    c, truth, hkl_path, ins_path = _transformed_data(
        tmp_path, "HKLF 3 0.5 " + " ".join(str(v) for v in HKLF_MATRIX.ravel()), kind=3
    )
    refl, amp, _, notes, _ = load_measured(hkl_path, ins_path)
    assert _r_against(truth, refl, amp * 2) < 2e-3  # amplitudes, halved by s = 0.5
    assert any("HKLF scale 0.5" in n for n in notes)
    for line, message in (
        ("HKLF 4 1 -1 0 0 0 1 0 0 0 1", "determinant"),
        ("HKLF 4 1 1 0 0 0 1", "nine numbers"),
    ):
        ins_path.write_text(write_ins(ins_path, c).replace("HKLF 4", line))
        with pytest.raises(ReflectionFileError, match=rf"x\.ins:\d+: cannot read HKLF.*{message}"):
            read_ins(ins_path)
    ins_path.write_text(write_ins(ins_path, c).replace("HKLF 4", "HKLF 4 1 0.5 0 0 0 1 0 0 0 2"))
    with pytest.raises(ReflectionFileError, match="non-integer indices"):
        load_measured(hkl_path, ins_path)
    ins_path.write_text(write_ins(ins_path, c).replace("HKLF 4", "HKLF 5"))
    with pytest.raises(ReflectionFileError, match="HKLF 5"):
        load_measured(hkl_path, ins_path)


def test_hkl_embedded_in_a_cif_follows_its_res_file(tmp_path):
    matrix = " ".join(str(v) for v in HKLF_MATRIX.ravel())
    _, truth, hkl_path, ins_path = _transformed_data(tmp_path, f"HKLF 4 1 {matrix}")
    doc = gemmi.cif.Document()
    block = doc.add_new_block("x")
    block.set_pair("_shelx_res_file", gemmi.cif.quote(ins_path.read_text()))
    block.set_pair("_shelx_hkl_file", gemmi.cif.quote(hkl_path.read_text()))
    cif = tmp_path / "wrapped.hkl"
    doc.write_file(str(cif))
    data = read_reflections(cif)
    assert {tuple(h) for h in data.hkl.tolist()} == set(truth)
    assert any("HKLF matrix" in n for n in data.notes)
    # older IUCr CIFs keep the .res text under _iucr_refine_instructions_details
    text = cif.read_text().replace("_shelx_res_file", "_iucr_refine_instructions_details")
    cif.write_text(text)
    assert {tuple(h) for h in read_reflections(cif).hkl.tolist()} == set(truth)
    # only the HKLF line matters: a .res without CELL still gives its matrix
    block.set_pair("_shelx_res_file", gemmi.cif.quote(f"TITL x\nHKLF 4 1 {matrix}\nEND\n"))
    doc.write_file(str(cif))
    assert {tuple(h) for h in read_reflections(cif).hkl.tolist()} == set(truth)


def test_measured_data_with_a_pdb_model_for_cell_and_symmetry(tmp_path):
    from xtalforge.io import read_structure
    from xtalforge.io.merge import load_measured

    pdb = tmp_path / "model.pdb"
    pdb.write_text(PDB_TEXT)
    c = read_structure(pdb)
    assert c.spacegroup.xhm() == "P 1 21 1" and c.elements == ["C", "O", "N"]
    np.testing.assert_allclose(c.u_iso, np.array([10.0, 12.0, 11.0]) / (8 * np.pi**2))
    refl = reflections(c, 1.5)
    amp = np.abs(structure_factors(c, refl))
    scale = write_hkl(tmp_path / "x.hkl", refl.hkl, amp**2)
    got, f, _, _, _ = load_measured(tmp_path / "x.hkl", pdb)  # was parsed as a CIF: an error
    np.testing.assert_array_equal(got.hkl, refl.hkl)
    np.testing.assert_allclose(f**2, amp**2 * scale, rtol=1e-3, atol=0.006)  # F8.2 of I
    # a PDB file without the .pdb suffix is recognised by its content
    (tmp_path / "model.txt").write_text(PDB_TEXT)
    assert read_structure(tmp_path / "model.txt").spacegroup.number == 4


def _xds_ascii(cell, number: int, hkl: np.ndarray, i: np.ndarray, sig: np.ndarray) -> str:
    """An unmerged XDS_ASCII file (the 12 items XDS writes)."""
    items = ["H", "K", "L", "IOBS", "SIGMA(IOBS)", "XD", "YD", "ZD", "RLP", "PEAK", "CORR", "MAXC"]
    head = [
        "!FORMAT=XDS_ASCII    MERGE=FALSE    FRIEDEL'S_LAW=TRUE",
        f"!SPACE_GROUP_NUMBER={number:5d}",
        "!UNIT_CELL_CONSTANTS=" + "".join(f"{v:10.3f}" for v in cell),
        f"!NUMBER_OF_ITEMS_IN_EACH_DATA_RECORD={len(items)}",
        *(f"!ITEM_{name}={k + 1}" for k, name in enumerate(items)),
        "!END_OF_HEADER",
    ]
    rows = [
        f"{h:6d}{k:6d}{l:6d} {v:.4E} {s:.3E}  100.0  200.0   30.0 1.0 100 90 1000"
        for (h, k, l), v, s in zip(hkl.tolist(), i, sig)
    ]
    return "\n".join(head + rows + ["!END_OF_DATA", ""])


def test_xds_ascii_unmerged_data_merge_to_the_calculated_amplitudes(tmp_path):
    from xtalforge.io.merge import load_measured

    c = random_crystal("P 1 21 1", 6, seed=8)
    refl = reflections(c, 1.2)
    i_calc = np.abs(structure_factors(c, refl)) ** 2
    # every reflection twice: as itself and as its symmetry mate (h, -k, l) ...
    hkl = np.concatenate([refl.hkl, refl.hkl * np.array([1, -1, 1])])
    i_obs, sig = np.r_[i_calc, i_calc], np.r_[np.ones(len(refl)), np.ones(len(refl))]
    sig[0] = -1.0  # ... and one XDS misfit, which must not count
    i_obs[0] = 1e6
    path = tmp_path / "XDS_ASCII.HKL"
    path.write_text(_xds_ascii(c.cell, 4, hkl, i_obs, sig))
    data = read_reflections(path)
    assert data.spacegroup.number == 4 and data.cell == pytest.approx(c.cell, abs=1e-3)
    assert len(data) == 2 * len(refl) - 1 and "σ < 0" in data.notes[0]
    got, amp, _, _, _ = load_measured(path)  # cell and symmetry from the header
    np.testing.assert_array_equal(got.hkl, refl.hkl)
    np.testing.assert_allclose(amp**2, i_calc, rtol=1e-3, atol=1e-3)
    # recognised by content whatever its name, also by `xtalforge info`
    from typer.testing import CliRunner

    from xtalforge.cli import app

    other = tmp_path / "data.xds"
    other.write_text(path.read_text())
    res = CliRunner().invoke(app, ["info", str(other)])
    assert res.exit_code == 0 and str(2 * len(refl) - 1) in res.stdout, res.output


def test_observed_absences_warn_that_the_space_group_is_wrong(tmp_path):
    import warnings

    from xtalforge.io.merge import load_measured

    c = random_crystal("P 1 21 1", 8, seed=3)  # no c glide: its h0l, l odd are not absent
    p1 = reflections(c.expand_p1(), 1.0)
    i = np.abs(structure_factors(c.expand_p1(), p1)) ** 2
    write_hkl(tmp_path / "x.hkl", p1.hkl, i, np.sqrt(i) + 1.0)
    with pytest.warns(UserWarning, match=r"P 1 21/c 1 makes absent are observed"):
        load_measured(tmp_path / "x.hkl", cell=tuple(c.cell), spacegroup="P 1 21/c 1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        *_, notes, _ = load_measured(tmp_path / "x.hkl", cell=tuple(c.cell), spacegroup="P 1 21 1")
    assert not any("observed" in n for n in notes)
