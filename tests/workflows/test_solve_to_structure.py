"""``xtalforge solve`` on measured data ends in a refined structure: the space group found from
the data when only the cell is given, atoms with elements matched to the published model, R1,
and a .res that cctbx and this package read back."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.builders import has_cctbx, real_data, well_separated
from tests.io.test_shelx_model import assert_same_atoms, cctbx_atoms
from xtalforge.cli import app
from xtalforge.io import read_res, read_structure
from xtalforge.workflows.solve import solve_file


def test_measured_data_solved_with_the_space_group_found_unaided(tmp_path):
    hkl = real_data("hkl") / "cctbx_03srv209.hkl"
    res = CliRunner().invoke(
        app,
        [
            "solve",
            str(hkl),
            "--cell",
            "7.350 9.541 12.842 90 90 90",
            "--formula",
            "C8H10N2O4",
            "--out",
            str(tmp_path / "sol.res"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1\tP b c a" in res.output  # the candidates' table, best first
    assert "verdict\tsolved" in res.output
    model = read_res(tmp_path / "sol.res")
    assert model.spacegroup.xhm() == "P b c a"
    assert sorted(e for e in model.elements if e != "H") == ["C", "C", "C", "C", "N", "O", "O"]
    assert (tmp_path / "sol.cif").is_file() and (tmp_path / "sol.ccp4").is_file()
    assert (read_structure(tmp_path / "sol.cif").z > 1).sum() == 7  # and 5 riding H


@pytest.mark.parametrize("name", ["xharpy_lala", "fc_twin4", "fc_sh2185cu"])
def test_measured_data_match_the_published_model(tmp_path, name):
    """Scored against the published .res: ≥ 85 % of its non-H atoms within 0.3 Å with the
    right element, isotropic R1 ≤ 0.12 (no H, no anisotropic U)."""
    folder = real_data("hkl")
    out = solve_file(folder / f"{name}.hkl", tmp_path / "s.res", structure=folder / f"{name}.res")
    assert out.solved
    assert out.score is not None and out.score["atoms_matched"] >= 0.85
    assert out.structure is not None and out.structure.refinement.agreement.r1_gt <= 0.12


def test_fluorine_is_terminal_and_cf3_groups_are_split(tmp_path):
    """Measured dsr_p21n_cf3 (P2₁/n, two CF₃ groups with rotational disorder; the published
    single-orientation model refines to R1 0.164): the smeared F atoms look lighter than the
    ordered O atoms, and the likelihood alone typed the ether O and the CF₃ carbon F (and the
    F O or C), 75 % matched at R1 0.13. A site with two bonds to light atoms is not F (≥ 90 %
    matched, R1 0.11); each CF₃ in two orientations 60° apart, then typed again, gives every
    published atom with its element and R1 0.044."""
    folder = real_data("hkl")
    out = solve_file(
        folder / "dsr_p21n_cf3.hkl", tmp_path / "s.res", structure=folder / "dsr_p21n_cf3.res"
    )
    assert out.solved and out.structure is not None
    assert out.score is not None and out.score["atoms_matched"] >= 0.95
    assert out.structure.refinement.agreement.r1_gt <= 0.07
    assert any("CF3 group(s) in two orientations" in n for n in out.structure.notes)
    crystal = out.structure.crystal
    partial = crystal.occ < 1
    assert int(((crystal.z == 9) & partial).sum()) == 12  # two groups, two parts of three F
    occ = np.sort(crystal.occ[partial])  # each group: three F at a, three at 1 − a
    np.testing.assert_allclose(occ + occ[::-1], 1.0)
    from xtalforge.phasing.atoms import light_bonds

    ordered = crystal.copy(
        z=crystal.z[~partial], frac=crystal.frac[~partial], u_iso=crystal.u_iso[~partial],
        occ=crystal.occ[~partial], labels=None,
    )  # fmt: skip
    assert not ((ordered.z == 9) & (light_bonds(ordered) >= 2)).any()
    # the summary counts each split site by its occupancy: 6 F in the asymmetric unit
    atoms = dict(out.summary())["atoms (non-H)"]
    assert atoms.startswith("32: ") and "F6 " in atoms and "12 sites of partial occupancy" in atoms
    # the .res holds the two parts of each group as PART 1 / PART 2, and reads back
    text = (tmp_path / "s.res").read_text()
    assert "PART 1" in text and "PART 2" in text and "PART 0" in text
    back = read_res(tmp_path / "s.res")
    np.testing.assert_allclose(
        np.sort(back.occ[back.z == 9]), np.sort(crystal.occ[crystal.z == 9]), atol=1e-5
    )
    if has_cctbx():
        assert_same_atoms(back, cctbx_atoms(tmp_path / "s.res")[str(tmp_path / "s.res")])


def test_nacl_solved_when_the_first_phases_are_wrong(tmp_path):
    """Measured NaCl (Fm-3m, 2 atoms on special positions): the first start that passes the
    symmetry test is wrong; phasing again with new starts (ATTEMPTS) finds the published
    model (Na and Cl on 4a/4b) with a low R1."""
    folder = real_data("hkl")
    out = solve_file(
        folder / "hikari_nacl.hkl", tmp_path / "s.res", structure=folder / "hikari_nacl.res"
    )
    assert out.solved and out.structure is not None
    assert sorted(out.structure.crystal.elements) == ["Cl", "Na"]
    assert out.score is not None and out.score["atoms_matched"] == 1.0
    assert out.structure.refinement.agreement.r1_gt <= 0.05


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
def test_written_res_is_read_back_by_cctbx(tmp_path):
    folder = real_data("hkl")
    solve_file(folder / "xharpy_lala.hkl", tmp_path / "s.res", structure=folder / "xharpy_lala.res")
    assert_same_atoms(
        read_res(tmp_path / "s.res"), cctbx_atoms(tmp_path / "s.res")[str(tmp_path / "s.res")]
    )


def test_tied_groups_keep_the_higher_symmetry(tmp_path):
    """P1 and P-1 explain the same data (no absences, Laue class -1); both are solved and P-1
    is kept, since P1's extra parameters lower R1 only a little (ADDSYM's rule)."""
    folder = real_data("hkl")
    out = solve_file(
        folder / "fc_twin4.hkl",
        tmp_path / "s.res",
        cell=(8.1475, 9.4260, 11.6175, 79.430, 82.715, 79.618),
        formula="C23H21NO",
    )
    assert [c.symbol for c in out.candidates[:2]] == ["P -1", "P 1"]
    assert out.data.refl.spacegroup.xhm() == "P -1" and out.solved


def test_a_group_the_intensities_contradict_is_named(tmp_path):
    """Data of a P2 crystal in a cell with β = 90°, solved as P222 as an .ins says: the Laue
    check warns, naming the group and the correlation of the would-be equivalents."""
    import numpy as np

    from xtalforge.crystal import CellSymmetry
    from xtalforge.diffraction import reflections, structure_factors
    from xtalforge.io import write_hkl, write_ins
    from xtalforge.workflows.solve import check_laue

    c = well_separated("P 1 2 1", (7.0, 8.0, 9.0, 90, 90, 90), 6, 4)
    p1 = c.expand_p1()
    refl = reflections(p1, 1.0)
    i = np.abs(structure_factors(p1, refl)) ** 2
    write_hkl(tmp_path / "d.hkl", refl.hkl, i, 0.02 * i + 0.1)
    ins = tmp_path / "d.ins"
    write_ins(ins, CellSymmetry(c.cell, "P 2 2 2"), composition={"C": 24})
    with pytest.warns(UserWarning, match="contradict the Laue symmetry of P 2 2 2"):
        cc = check_laue(tmp_path / "d.hkl", ins, CellSymmetry(c.cell, "P 2 2 2").spacegroup)
    assert cc < 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own group: no warning
        assert check_laue(tmp_path / "d.hkl", None, c.spacegroup) > 0.99


def test_no_composition_is_said(tmp_path):
    """Cell and group but no formula: atoms are carbon, and the summary and the .res say so."""
    out = solve_file(
        real_data("hkl") / "xharpy_lala.hkl",
        tmp_path / "s.res",
        cell=(5.9279, 12.2597, 5.7939, 90, 90, 90),
        spacegroup="P 21 21 21",
    )
    rows = dict(out.summary())
    assert "every atom typed as carbon" in rows["notes"]
    assert "every atom typed as carbon" in (tmp_path / "s.res").read_text()
    assert set(read_res(tmp_path / "s.res").elements) == {"C", "H"}  # H ride on the C
