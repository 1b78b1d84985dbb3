"""Reflections: ASU sets, ε, centric flags and absences against gemmi for all 230 groups."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from tests.builders import cell_for
from xtalforge import ReflectionError, reflections, structure_factors
from xtalforge.crystal.examples import random_crystal, sodium_chloride

SETTINGS = [
    "P 1 21/n 1",
    "P 1 21/a 1",
    "C 1 2/c 1",
    "I 1 2/a 1",
    "P 1 1 21",
    "B 1 1 2",
    "A 1 2/a 1",
    "P 21 21 2",
    "P c a b",
    "R 3 :R",
    "R -3 m :R",
    "F d -3 m :1",
    "P 4/n :1",
    "I 41/a :1",
    "P 1 1 21/b",
]
GROUPS = [gemmi.find_spacegroup_by_number(n) for n in range(1, 231)] + [
    gemmi.SpaceGroup(s) for s in SETTINGS
]


@pytest.mark.parametrize("sg", GROUPS, ids=lambda sg: sg.xhm())
def test_asu_epsilon_centric_equal_gemmi(sg):
    cell = cell_for(sg)
    refl = reflections(cell, 1.1, spacegroup=sg)
    ref = np.array(gemmi.make_miller_array(gemmi.UnitCell(*cell), sg, 1.1, 0, True))
    assert sorted(map(tuple, refl.hkl)) == sorted(map(tuple, ref))
    ops = sg.operations()
    np.testing.assert_array_equal(refl.epsilon, ops.epsilon_factor_array(refl.hkl))
    np.testing.assert_array_equal(refl.centric, ops.centric_flag_array(refl.hkl))
    assert not ops.systematic_absences(refl.hkl).any()
    d = gemmi.UnitCell(*cell).calculate_d_array(refl.hkl)
    np.testing.assert_allclose(refl.d, d, rtol=1e-9)


def test_d_range_and_multiplicities_closed_form():
    refl = reflections(sodium_chloride(), 0.9)
    form = {tuple(sorted(map(abs, h))): m for h, m in zip(refl.hkl, refl.multiplicity)}
    assert len(form) == len(refl)  # one ASU member per form {hkl}
    # m-3m powder multiplicities: {111} 8, {200} 6, {220} 12, {420} 24, {531} 48
    assert form[(1, 1, 1)] == 8 and form[(0, 0, 2)] == 6 and form[(0, 2, 2)] == 12
    assert form[(0, 2, 4)] == 24 and form[(1, 3, 5)] == 48
    assert refl.d.min() >= 0.9 and (0, 0, 1) not in form  # F-centring absence
    shell = reflections(sodium_chloride(), 1.0, d_max=2.0)
    assert shell.d.max() <= 2.0 and len(shell) < len(refl)


def test_expand_to_p1_matches_structure_factors_of_the_p1_cell():
    # Expanding ASU structure factors must give what a direct P1 computation of the whole
    # unit cell gives at every index of the sphere (phase shifts exp(-2πi h·t), Friedel mates).
    crystal = random_crystal("P 1 21/c 1", 6, seed=2)
    refl = reflections(crystal, 1.5)
    hkl, vals = refl.expand_to_p1(structure_factors(crystal, refl))
    p1 = crystal.expand_p1()
    direct = structure_factors(p1, reflections(p1, 1.5))
    full, f_full = reflections(p1, 1.5).expand_to_p1(direct)
    lookup = {tuple(h): v for h, v in zip(full, f_full)}
    np.testing.assert_allclose(vals, [lookup[tuple(h)] for h in hkl], rtol=1e-9, atol=1e-9)
    # what P1 has beyond the expansion are the systematic absences of P2_1/c: zero there
    extra = set(lookup) - {tuple(h) for h in hkl}
    assert extra and max(abs(lookup[h]) for h in extra) < 1e-9 * np.abs(vals).max()


def test_bad_arguments():
    with pytest.raises(ReflectionError, match="space group"):
        reflections((7, 8, 9, 90, 90, 90), 1.0)
    with pytest.raises(ReflectionError, match="d_min"):
        reflections(sodium_chloride(), -1.0)


@pytest.mark.parametrize("sg", ["P 1 21/c 1", "C 1 2 1", "P 63/m"])
def test_cached_candidates_match_gemmi_across_cell_sizes(sg):
    # the per-group candidate cache is grown and cut for every new index box
    group = gemmi.SpaceGroup(sg)
    base = np.array(cell_for(group))
    for scale in (2.0, 0.6, 1.3, 0.9, 2.6, 1.0):
        cell = (*(base[:3] * scale), *base[3:])
        refl = reflections(tuple(cell), 1.0, spacegroup=group)
        ref = gemmi.make_miller_array(gemmi.UnitCell(*cell), group, 1.0, 0, True)
        assert sorted(map(tuple, refl.hkl)) == sorted(map(tuple, np.array(ref)))
