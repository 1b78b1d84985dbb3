"""The space group from the data (the published group of every measured development data set
ranks first), chemical formulas and cell contents, and element typing held to a composition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.builders import real_data
from xtalforge.crystal.formula import cell_content_from_formula, parse_formula
from xtalforge.errors import CrystalError
from xtalforge.io import read_reflections
from xtalforge.io.shelx_ins import read_ins
from xtalforge.phasing.atoms import element_groups, type_by_likelihood, type_by_rank
from xtalforge.phasing.space_group import rank_space_groups


def test_published_groups_rank_first_from_the_data_alone():
    """Pbca, P2₁/n, P-1 (twice), P2₁2₁2₁ (twice), R-3c, P2₁/c: found from the intensities in
    the published cell, with Laue agreement and absences (files with and without absences)."""
    folder = real_data("hkl")
    names = [
        "cctbx_03srv209", "dsr_p21n_cf3", "fc_cod1550236", "fc_sh2185cu", "fc_twin4",
        "shx_2240189", "xharpy_hmamg", "xharpy_lala",
    ]  # fmt: skip
    for name in names:
        ins = read_ins(folder / f"{name}.res")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = read_reflections(folder / f"{name}.hkl", hklf=ins.hklf)
        ranked, e2 = rank_space_groups(data.hkl, data.values, data.sigmas, ins.cell)
        assert ranked[0].consistent
        assert ranked[0].spacegroup.hall == ins.spacegroup.hall, (name, ranked[0].symbol)
        assert 0.6 < e2 < 1.3


def test_groups_the_data_contradict_are_inconsistent():
    """F-centring of a primitive triclinic cell: its absent reflections are strong."""
    folder = real_data("hkl")
    ins = read_ins(folder / "fc_twin4.res")
    data = read_reflections(folder / "fc_twin4.hkl", hklf=ins.hklf)
    ranked, _ = rank_space_groups(data.hkl, data.values, data.sigmas, ins.cell)
    centred = [c for c in ranked if c.spacegroup.centring_type() != "P"]
    assert centred and not any(c.consistent for c in centred)
    assert all(c.absent_i_sigma > 3 for c in centred)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("C12H22O11", {"C": 12, "H": 22, "O": 11}),
        ("C8 H10 N2 O4", {"C": 8, "H": 10, "N": 2, "O": 4}),
        ("[Fe(H2O)6](ClO4)3·3H2O", {"Fe": 1, "H": 18, "O": 21, "Cl": 3}),
        ("C6H6·2H2O", {"C": 6, "H": 10, "O": 2}),
        ("NaCl", {"Na": 1, "Cl": 1}),
    ],
)
def test_formulas(text, expected):
    assert parse_formula(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["C12Xx3", "C(H2", "H2)O", "12", ""])
def test_bad_formulas_named(bad):
    with pytest.raises(CrystalError, match="formula"):
        parse_formula(bad)


def test_cell_content_from_the_volume():
    """C8H10N2O4 in Pbca (900.5 Å³, 8 operations): Z = 4, 16 Å³ per non-H atom; a formula
    that cannot fit any Z is refused with the figures; a dense inorganic cell (high-pressure
    FeN₄, COD 2242624: 26.72 Å³, 5.3 Å³ per atom) is Z = 1; a formula that is already the cell
    content (C44H46N2 in P-1, 854.8 Å³: 18.6 Å³ per atom) stays Z = 1, not the multiple of the
    two operations that would pack 9.3 Å³ per atom; in a centred cell Z gives every element a
    multiple of the lattice points."""
    content, z = cell_content_from_formula(parse_formula("C8H10N2O4"), 900.5, 8)
    assert z == 4 and content == {"C": 32, "H": 40, "N": 8, "O": 16}
    content, z = cell_content_from_formula(parse_formula("FeN4"), 26.72, 2)
    assert z == 1 and content == {"Fe": 1, "N": 4}
    content, z = cell_content_from_formula(parse_formula("C44H46N2"), 854.8, 2)
    assert z == 1 and content == {"C": 44, "H": 46, "N": 2}
    content, z = cell_content_from_formula(parse_formula("C22H23N"), 854.8, 2)
    assert z == 2 and content == {"C": 44, "H": 46, "N": 2}
    # rock salt (a = 5.641 Å, 179.5 Å³) in Fm-3m: 4 lattice points, so Z = 4, not 5
    content, z = cell_content_from_formula(parse_formula("NaCl"), 179.5, 192, 4)
    assert z == 4 and content == {"Na": 4, "Cl": 4}
    with pytest.raises(CrystalError, match="does not fit"):
        cell_content_from_formula(parse_formula("C60"), 200.0, 2)


def test_typing_held_to_the_composition():
    """Likeliest element per site, then the cheapest moves towards the counts: two sites that
    look like O where one O is expected give the O to the likelier one."""
    elements = [6, 7, 8]
    costs = np.array(
        [
            [5.0, 3.0, 1.0],  # O, clearly
            [4.0, 2.0, 1.9],  # O by a hair: the one to move
            [1.0, 4.0, 6.0],  # C
            [3.0, 1.0, 5.0],  # N
        ]
    )
    z = type_by_likelihood(costs, elements, {6: 1, 7: 2, 8: 1}, np.ones(4))
    np.testing.assert_array_equal(z, [8, 7, 6, 7])
    assert element_groups({6: 1, 7: 1, 8: 1, 17: 1, 28: 1}) == [[6, 7, 8], [17], [28]]
    # by height: the heaviest first, each element until its count (with multiplicities) is used
    z = type_by_rank(np.array([9.0, 5.0, 7.0, 1.0]), {28: 1, 8: 2, 6: 2}, np.array([1, 2, 2, 2]))
    np.testing.assert_array_equal(z, [28, 6, 8, 6])
