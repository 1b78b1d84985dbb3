"""Structure files (xtalforge.io.cif_structure, io.pdb, io.readers): CIF round trips, DDLm names,
symmetry from operators, warnings and errors naming the file, the COD folder, PDB models."""

from __future__ import annotations

import csv
import math
import warnings

import gemmi
import numpy as np
import pytest

from tests.builders import real_data
from xtalforge import CrystalError
from xtalforge.crystal.examples import random_crystal
from xtalforge.io import read_cif, read_pdb, write_cif

MONO = (7.0, 8.0, 9.0, 90.0, 100.0, 90.0)


def test_cif_round_trip(tmp_path):
    c = random_crystal("C 1 2/c 1", 9, seed=3)
    path = tmp_path / "x.cif"
    write_cif(c, path)
    back = read_cif(path)
    assert back.spacegroup.hall == c.spacegroup.hall
    np.testing.assert_allclose(back.cell, c.cell, atol=1e-5)
    np.testing.assert_allclose(back.frac, c.frac, atol=1e-6)
    np.testing.assert_allclose(back.u_iso, c.u_iso, atol=1e-6)
    assert back.elements == c.elements
    assert back.metadata["block"]


CIF_OPS_ONLY = """data_t
_cell_length_a 7.0
_cell_length_b 8.0
_cell_length_c 9.0
_cell_angle_alpha 90
_cell_angle_beta 100
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_as_xyz
x,y,z
-x+1/2,y+1/2,-z+1/2
-x,-y,-z
x-1/2,-y-1/2,z-1/2
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_occupancy
Cl1 Cl- 0.1 0.2 0.3 ? 1
O1 O 0.3 0.2 0.1 0.02 0.5
H1 H 0.2 0.4 0.1 0.05 1
loop_
_atom_site_aniso_label
_atom_site_aniso_U_11
_atom_site_aniso_U_22
_atom_site_aniso_U_33
_atom_site_aniso_U_12
_atom_site_aniso_U_13
_atom_site_aniso_U_23
Cl1 0.02 0.03 0.04 0 0 0
"""


def test_cif_symmetry_from_operators_p21n_uaniso_and_hydrogens(tmp_path):
    path = tmp_path / "ops.cif"
    path.write_text(CIF_OPS_ONLY)
    c = read_cif(path)
    assert c.spacegroup.xhm() == "P 1 21/n 1"
    assert c.elements == ["Cl", "O", "H"]
    # U_eq = 1/3 Σ U^ij a*_i a*_j a_i·a_j; with U12 = U13 = U23 = 0 in a monoclinic cell
    # a*·a = c*·c = 1/sin β and b*·b = 1 (closed form).
    sin_b = math.sin(math.radians(100))
    ueq = (0.02 / sin_b**2 + 0.03 + 0.04 / sin_b**2) / 3
    assert c.u_iso[0] == pytest.approx(ueq, rel=1e-6)
    assert c.occ[1] == 0.5 and c.u_iso[1] == 0.02


def test_cif_missing_u_is_filled_with_a_warning(tmp_path):
    text = CIF_OPS_ONLY.split("loop_\n_atom_site_aniso_label")[0]
    path = tmp_path / "nou.cif"
    path.write_text(text)
    with pytest.warns(UserWarning, match="no displacement parameter"):
        c = read_cif(path, default_u_iso=0.03)
    assert c.u_iso[0] == 0.03
    assert any("Cl1" in w for w in c.metadata["warnings"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("data_x\n_cell_length_a 5\nloop_\n_a\n_b\n1\n", "malformed CIF"),
        (CIF_OPS_ONLY.replace("_cell_length_b 8.0\n", ""), "_cell_length_b"),
        (
            CIF_OPS_ONLY.replace(
                "loop_\n_symmetry_equiv_pos_as_xyz\nx,y,z\n-x+1/2,y+1/2,-z+1/2\n"
                "-x,-y,-z\nx-1/2,-y-1/2,z-1/2\n",
                "",
            ),
            "missing symmetry",
        ),
        (CIF_OPS_ONLY.replace("Cl1 Cl- ", "Xx1 Xx "), "unknown element"),
    ],
)
def test_bad_cif_names_the_file(tmp_path, text, message):
    path = tmp_path / "bad.cif"
    path.write_text(text)
    with pytest.raises(CrystalError, match=message) as err:
        read_cif(path)
    assert "bad.cif" in str(err.value)


def _dotted(text: str) -> str:
    """The same CIF with DDLm/CIF2 names (``_cell.length_a``, ``_atom_site.fract_x``)."""
    out = []
    for line in text.splitlines():
        for cat in ("_atom_site_aniso_", "_atom_site_", "_cell_", "_symmetry_equiv_"):
            if line.startswith(cat):
                line = cat[:-1] + "." + line[len(cat) :]
                break
        out.append(line)
    return "\n".join(out) + "\n"


def test_ddlm_dotted_names_read_like_ddl1(tmp_path):
    plain, dotted = tmp_path / "plain.cif", tmp_path / "dotted.cif"
    plain.write_text(CIF_OPS_ONLY)
    dotted.write_text(_dotted(CIF_OPS_ONLY))
    assert "_atom_site.fract_x" in dotted.read_text()
    assert len(gemmi.make_small_structure_from_block(gemmi.cif.read(str(dotted))[0]).sites) == 0
    a, b = read_cif(plain), read_cif(dotted)
    assert b.spacegroup.hall == a.spacegroup.hall == gemmi.SpaceGroup("P 1 21/n 1").hall
    np.testing.assert_array_equal(b.cell, (7.0, 8.0, 9.0, 90.0, 100.0, 90.0))
    np.testing.assert_array_equal(b.frac, a.frac)
    np.testing.assert_array_equal(b.u_iso, a.u_iso)  # U_eq from the aniso loop in both
    assert b.elements == ["Cl", "O", "H"]


def test_residual_peaks_and_dummy_sites_are_skipped_with_a_warning(tmp_path):
    text = CIF_OPS_ONLY.replace(
        "H1 H 0.2 0.4 0.1 0.05 1\n",
        "H1 H 0.2 0.4 0.1 0.05 1\nQ1 Q 0.6 0.6 0.6 0.05 1\nQ12 Q 0.7 0.6 0.6 0.05 1\n",
    )
    path = tmp_path / "q.cif"
    path.write_text(text)
    with pytest.warns(UserWarning, match=r"skipped 2 dummy site\(s\).*Q1, Q12"):
        c = read_cif(path)
    assert c.labels == ["Cl1", "O1", "H1"]
    flagged = CIF_OPS_ONLY.replace(
        "_atom_site_occupancy\n", "_atom_site_occupancy\n_atom_site_calc_flag\n"
    )
    flagged = flagged.replace(" 1\nO1", " 1 d\nO1").replace(" 0.5\nH1", " 0.5 .\nH1")
    flagged = flagged.replace("0.05 1\n", "0.05 1 dum\n")
    path.write_text(flagged)
    with pytest.warns(UserWarning, match="H1"):
        assert read_cif(path).labels == ["Cl1", "O1"]


def test_symmetry_generated_copies_are_dropped_split_sites_kept(tmp_path):
    """A file that also lists the inversion image of a full atom (COD's ``C1B*``) holds one
    atom there, not two; two halves of a disordered site at one position are both kept."""
    text = CIF_OPS_ONLY.replace(
        "H1 H 0.2 0.4 0.1 0.05 1\n",
        "H1 H 0.2 0.4 0.1 0.05 1\nC1 C 0.40 0.10 0.05 0.02 1\nC1B* C -0.40 -0.10 -0.05 0.02 1\n"
        "O1B O 0.30 0.20 0.10 0.02 0.5\n",
    )
    path = tmp_path / "g.cif"
    path.write_text(text)
    with pytest.warns(UserWarning, match=r"duplicated site\(s\) merged: .*C1B\* = C1"):
        c = read_cif(path)
    assert c.labels == ["Cl1", "O1", "H1", "C1", "O1B"]


@pytest.mark.parametrize(
    "name, formula",
    [
        ("COD_2000056", {"C": 4, "H": 48, "N": 4, "Na": 4, "O": 28, "P": 4}),  # Z = 2
        ("COD_2000000", {"C": 16, "H": 44, "Co": 1, "Nd": 2, "O": 26}),  # Z = 1
    ],
)
def test_cod_files_listing_generated_atoms_hold_their_formula(name, formula):
    """Two COD files list the symmetry-generated half of a centrosymmetric molecule or
    complex: the cell content read equals Z × ``_chemical_formula_sum`` (the file's own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = read_cif(real_data("cod") / f"{name}.cif")
    assert c.composition() == pytest.approx(formula)


def test_negative_u_of_a_hydrogen_is_replaced_with_a_warning(tmp_path):
    """SHELXL refines free H atoms to U = −0.004(10) at times (COD 5000332): such an H gets
    the default U, named in a warning; a negative U of a heavier atom stays an error."""
    path, h1 = tmp_path / "u.cif", "H1 H 0.2 0.4 0.1 "
    path.write_text(CIF_OPS_ONLY.replace(h1 + "0.05 1", h1 + "-0.004 1"))
    with pytest.warns(UserWarning, match=r"negative U_iso of 1 hydrogen atom\(s\) \(H1\)"):
        c = read_cif(path)
    assert c.u_iso[2] == 0.025
    path.write_text(CIF_OPS_ONLY.replace("O1 O 0.3 0.2 0.1 0.02", "O1 O 0.3 0.2 0.1 -0.02"))
    with pytest.raises(CrystalError, match=r"u\.cif.*O1.*negative"):
        read_cif(path)


def test_refined_occupancy_slightly_above_one_is_taken_as_one(tmp_path):
    path, h1 = tmp_path / "o.cif", "H1 H 0.2 0.4 0.1 0.05 "
    path.write_text(CIF_OPS_ONLY.replace(h1 + "1\n", h1 + "1.03\n"))
    with pytest.warns(UserWarning, match=r"occupancy above 1.*taken as 1.*\(H1\)"):
        c = read_cif(path)
    assert c.occ.tolist() == [1.0, 0.5, 1.0]
    path.write_text(CIF_OPS_ONLY.replace(h1 + "1\n", h1 + "1.2\n"))
    with pytest.raises(CrystalError, match=r"o\.cif: atom H1: occupancy 1\.2"):
        read_cif(path)


def test_operators_contradicting_the_symbol_warn(tmp_path):
    path = tmp_path / "c.cif"
    path.write_text(
        CIF_OPS_ONLY.replace(
            "loop_\n_symmetry", "_symmetry_space_group_name_H-M 'C 2/c'\nloop_\n_symmetry", 1
        )
    )
    with pytest.warns(UserWarning, match=r"generate P 1 21/n 1 \(No. 14\).*No. 15"):
        c = read_cif(path)
    assert c.spacegroup.number == 14
    # another setting of the same type is not a conflict
    path.write_text(
        CIF_OPS_ONLY.replace(
            "loop_\n_symmetry", "_symmetry_space_group_name_H-M 'P 21/c'\nloop_\n_symmetry", 1
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*no displacement")
        assert read_cif(path).spacegroup.xhm() == "P 1 21/n 1"


def test_missing_file():
    with pytest.raises(CrystalError, match="no such file"):
        read_cif("/nonexistent/x.cif")


def test_every_cod_cif_loads_or_raises_crystal_error():
    folder = real_data("cod")
    files = sorted(folder.glob("*.cif"))
    loaded, failed = 0, []
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = read_cif(f)
            assert c.n_atoms > 0 and c.volume > 0
            loaded += 1
        except CrystalError as exc:
            assert f.name in str(exc)
            failed.append((f.name, str(exc)))
    # the files that fail are the folder's really inconsistent ones, each for its own reason:
    # an a-unique symbol (I 2/c 1 1) on a b-unique cell and an operator list the index flags
    # as inconsistent (x,y,x); COD 5000332's H9 with U = −0.004(10) loads with a warning
    why = dict(failed)
    assert set(why) == {"COD_2000318.cif", "COD_2001507.cif"}, why
    assert "does not fit the monoclinic lattice" in why["COD_2000318.cif"]
    assert "'x,y,x' is not a rotation" in why["COD_2001507.cif"]
    flags = {r["file"]: r["flags"] for r in csv.DictReader(open(folder / "index.csv"))}
    assert "sg_symops_inconsistent" in flags["COD_2001507.cif"]
    assert loaded + len(failed) == len(files)


def test_cod_cell_matches_index_volume():
    folder = real_data("cod")
    import csv

    rows = {r["file"]: r for r in csv.DictReader(open(folder / "index.csv"))}
    checked = 0
    for name, row in rows.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = read_cif(folder / name)
        except CrystalError:
            continue
        assert c.volume == pytest.approx(float(row["volume"]), rel=2e-3)
        assert c.spacegroup.number == int(row["sg_number"])
        checked += 1
    assert checked > 50


def test_pdb_crambin():
    c = read_pdb(real_data("pdb") / "PDB_1crn.pdb")
    assert c.spacegroup.number == 4 and c.n_atoms == 327
    st = gemmi.read_structure(str(real_data("pdb") / "PDB_1crn.pdb"))
    pos = st[0][0][0][0].pos  # fractional through the file's SCALE matrix, as gemmi does
    np.testing.assert_allclose(c.frac[0], st.cell.fractionalize(pos).tolist(), atol=1e-6)
    assert c.u_iso[0] == pytest.approx(st[0][0][0][0].b_iso / (8 * math.pi**2), rel=1e-6)
