"""CF₃ rotational disorder (phasing/disorder.py) against closed-form geometry."""

from __future__ import annotations

import math

import numpy as np

from xtalforge.crystal import Crystal
from xtalforge.phasing.atoms import multiplicities
from xtalforge.phasing.disorder import cf3_rotors, split_rotor

EDGE = 12.0  # Å, a cubic P1 cell
C_F, C_X, X_Y = 1.33, 1.50, 1.52  # Å
TETRAHEDRAL = math.radians(109.47)


def _cf3(u_f: float, third: int = 9) -> Crystal:
    """Y–X–CF₃ along z in a 12 Å P1 cube: C at the centre, X below it, the three terminal atoms
    at 109.47° from the C→X bond, azimuths 0°, 120°, 240° (the third of element ``third``)."""
    c = np.array([6.0, 6.0, 6.0])
    x = c - [0, 0, C_X]  # the C→X bond points along −z
    bend = np.array([math.sin(TETRAHEDRAL), 0.0, math.cos(TETRAHEDRAL)])  # X–Y, away from C
    y = x + X_Y * np.array([bend[0], 0.0, -abs(bend[2])])
    radial, height = C_F * math.sin(TETRAHEDRAL), -C_F * math.cos(TETRAHEDRAL)
    f = [
        c + np.array([radial * math.cos(phi), radial * math.sin(phi), height])
        for phi in np.radians([0.0, 120.0, 240.0])
    ]
    cart = np.vstack([c, x, y, *f])
    return Crystal(
        (EDGE, EDGE, EDGE, 90.0, 90.0, 90.0),
        "P 1",
        np.array([6, 6, 6, 9, 9, third]),
        cart / EDGE,
        np.array([0.04, 0.04, 0.04, u_f, u_f, u_f]),
    )


def _azimuth(v: np.ndarray) -> float:
    return math.degrees(math.atan2(v[1], v[0])) % 360.0


def test_a_smeared_cf3_is_found_and_an_ordered_one_is_not():
    rotors = cf3_rotors(_cf3(0.12))
    assert len(rotors) == 1
    assert rotors[0].carbon == 0 and rotors[0].axis_atom == 1
    assert sorted(rotors[0].terminal) == [3, 4, 5]
    assert cf3_rotors(_cf3(0.06)) == []  # F at 1.5 × the carbon's U: ordered
    # a smeared F typed O still makes a CF₃ with the two F; with two O it is not one
    assert len(cf3_rotors(_cf3(0.12, third=8))) == 1
    two_o = _cf3(0.12, third=8)
    two_o = two_o.copy(z=np.array([6, 6, 6, 9, 8, 8]))
    assert cf3_rotors(two_o) == []


def test_split_turns_the_fluorines_60_degrees_about_the_bond():
    crystal = _cf3(0.12, third=8)
    model, mask = split_rotor(crystal, cf3_rotors(crystal)[0], major=0.7)
    assert model.n_atoms == 9 and mask.tolist() == [False] * 3 + [True] * 6
    assert (model.z[mask] == 9).all()  # the smeared F typed O is an F again
    np.testing.assert_allclose(model.occ, [1, 1, 1, 0.7, 0.7, 0.7, 0.3, 0.3, 0.3])
    cart = model.frac * EDGE
    c, x = cart[0], cart[1]
    for k in range(6):
        v = cart[3 + k] - c
        assert math.isclose(np.linalg.norm(v), C_F, abs_tol=1e-9)  # C–F kept
        angle = math.degrees(math.acos(v @ (x - c) / (np.linalg.norm(v) * C_X)))
        assert math.isclose(angle, 109.47, abs_tol=1e-6)  # X–C–F kept
    azimuths = sorted(_azimuth(cart[3 + k] - c) for k in range(6))
    np.testing.assert_allclose(np.diff(azimuths), 60.0, atol=1e-6)  # staggered, 60° apart
    # the two parts count as one atom per site in the cell's content
    np.testing.assert_allclose(multiplicities(model)[mask].sum(), 3.0)
