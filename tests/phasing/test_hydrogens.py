"""Riding H atoms against closed-form geometry (benzene, ethane, methanol, SHELXL's X–H
distances and tetrahedral angles), against data calculated from known H positions (a methyl
turned off its staggered torsion, an N–H present or absent), and against the H atoms of a
published structure."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.builders import real_data
from xtalforge.crystal import Crystal
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.phasing.hydrogens import place_hydrogens
from xtalforge.phasing.peaks import min_image_distances
from xtalforge.phasing.solve import calculated_sigmas

CELL = (12.0, 13.0, 14.0, 90.0, 90.0, 90.0)


def _crystal(z: list[int], cart: np.ndarray, u: float = 0.02) -> Crystal:
    """Atoms at Cartesian positions (Å) about the middle of a P1 box."""
    frac = np.asarray(cart, float) / np.array(CELL[:3]) + 0.5
    return Crystal(CELL, "P 1", np.array(z), frac, np.full(len(z), u))


def _cart(frac: np.ndarray) -> np.ndarray:
    return (np.asarray(frac) - 0.5) * np.array(CELL[:3])


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    u, v = a - b, c - b
    return float(np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))))


def _rotate_about(p: np.ndarray, axis_from: np.ndarray, axis_to: np.ndarray, deg: float):
    k = (axis_to - axis_from) / np.linalg.norm(axis_to - axis_from)
    v = p - axis_from
    t = np.radians(deg)
    return axis_from + v * np.cos(t) + np.cross(k, v) * np.sin(t) + k * (k @ v) * (1 - np.cos(t))


def test_benzene_takes_one_h_per_carbon_along_the_ring_radius():
    ang = np.radians(np.arange(6) * 60.0)
    ring = 1.39 * np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], 1)
    h = place_hydrogens(_crystal([6] * 6, ring))
    assert len(h) == 6 and set(h.afix) == {43}
    cart = _cart(h.frac)
    np.testing.assert_allclose(np.linalg.norm(cart, axis=1), 1.39 + 0.95, atol=1e-6)
    np.testing.assert_allclose(cart[:, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(h.u_iso, 1.2 * 0.02)


def _torsion(a, b, c, d) -> float:
    b1, b2, b3 = b - a, c - b, d - c
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    m = np.cross(n1, b2 / np.linalg.norm(b2))
    return float(np.degrees(np.arctan2(m @ n2, n1 @ n2)))


def test_propane_methyls_are_tetrahedral_and_staggered_and_ch2_takes_two():
    t = np.radians(112.0)
    cart = np.array([[1.53, 0, 0], [0.0, 0, 0], [1.53 * np.cos(t), 1.53 * np.sin(t), 0]])
    h = place_hydrogens(_crystal([6, 6, 6], cart))
    assert len(h) == 8 and list(np.bincount(h.parent)) == [3, 2, 3]
    assert list(h.afix[h.parent == 1]) == [23, 23]
    h_cart = _cart(h.frac)
    for k, far in ((0, 2), (2, 0)):
        mine = h_cart[h.parent == k]
        np.testing.assert_allclose(np.linalg.norm(mine - cart[k], axis=1), 0.98, atol=1e-6)
        for x in mine:
            assert _angle(x, cart[k], cart[1]) == pytest.approx(109.47, abs=0.05)
        for a in range(3):
            for b in range(a + 1, 3):
                assert _angle(mine[a], cart[k], mine[b]) == pytest.approx(109.47, abs=0.1)
        # staggered: one H anti to the far carbon, the others at ±60°
        torsions = sorted(abs(_torsion(x, cart[k], cart[1], cart[far])) for x in mine)
        assert torsions == pytest.approx([60.0, 60.0, 180.0], abs=0.1)
    ch2 = h_cart[h.parent == 1]
    np.testing.assert_allclose(np.linalg.norm(ch2, axis=1), 0.99, atol=1e-6)
    assert _angle(ch2[0], cart[1], ch2[1]) == pytest.approx(109.47, abs=0.05)
    assert ch2[0][2] == pytest.approx(-ch2[1][2])  # mirror images through the C–C–C plane


def test_methanol_oh_and_a_ketone_oxygen():
    """C–O 1.43 Å takes an OH (0.84 Å, C–O–H 109.5°); C=O 1.21 Å takes none."""
    cart = np.array([[0.0, 0, 0], [1.43, 0, 0], [-0.5, 1.4, 0], [-0.5, -1.4, 0]])
    h = place_hydrogens(_crystal([6, 8, 6, 6], cart))
    oh = h.frac[h.parent == 1]
    assert len(oh) == 1 and h.afix[h.parent == 1][0] == 147
    x = _cart(oh)[0]
    assert np.linalg.norm(x - cart[1]) == pytest.approx(0.84)
    assert _angle(x, cart[1], cart[0]) == pytest.approx(109.47, abs=0.05)
    ketone = np.array([[0.0, 0, 0], [1.21, 0, 0], [-0.7, 1.3, 0], [-0.7, -1.3, 0]])
    h = place_hydrogens(_crystal([6, 8, 6, 6], ketone))
    assert not (h.parent == 1).any()  # no H on the carbonyl O, none on the sp2 C either
    assert len(h) == 6  # the two methyls


def _data(truth: Crystal, d_min: float = 0.8):
    refl = reflections(truth, d_min)
    i_obs, sigma = calculated_sigmas(np.abs(structure_factors(truth, refl)) ** 2)
    return refl, i_obs, sigma


def test_a_methyl_turns_to_the_torsion_of_the_data():
    """Data calculated with the methyl H turned 40° off staggered: the group placed with the
    data sits on the true H (< 0.15 Å), the one placed by geometry alone does not."""
    heavy_cart = np.array([[0.0, 0, 0], [1.52, 0, 0], [2.0, 1.40, 0]])  # C1–C2–C3
    heavy = _crystal([6, 6, 6], heavy_cart)
    geometric = place_hydrogens(heavy)
    methyl = geometric.parent == 0
    true_h = np.array(
        [
            _rotate_about(x, heavy_cart[0], heavy_cart[1], 40.0)
            for x in _cart(geometric.frac[methyl])
        ]
    )
    frac_h = true_h / np.array(CELL[:3]) + 0.5
    truth = Crystal(
        CELL,
        "P 1",
        np.concatenate([heavy.z, np.ones(3, int)]),
        np.concatenate([heavy.frac, frac_h]),
        np.concatenate([heavy.u_iso, np.full(3, 0.03)]),
    )
    refl, i_obs, sigma = _data(truth)
    fitted = place_hydrogens(heavy, refl, i_obs, sigma)
    found = fitted.frac[fitted.parent == 0]
    d = min_image_distances(frac_h, found, CELL, None).min(axis=1)
    assert d.max() < 0.15
    d0 = min_image_distances(frac_h, geometric.frac[methyl], CELL, None).min(axis=1)
    assert d0.max() > 0.4


@pytest.mark.parametrize("has_h", [True, False])
def test_the_data_decide_whether_an_sp2_nitrogen_carries_h(has_h):
    """C–N–C at 1.35 Å and 125° is a pyridine N or an N–H: the data calculated with or
    without the H say which."""
    t = np.radians(125.0)
    cart = np.array([[1.35, 0, 0], [0.0, 0, 0], [1.35 * np.cos(t), 1.35 * np.sin(t), 0]])
    heavy = _crystal([6, 7, 6], cart)
    n_h = (cart[0] - cart[1]) / 1.35 + (cart[2] - cart[1]) / 1.35
    h_pos = cart[1] - 0.88 * n_h / np.linalg.norm(n_h)
    z, frac, u = heavy.z, heavy.frac, heavy.u_iso
    if has_h:
        z = np.concatenate([z, [1]])
        frac = np.concatenate([frac, [h_pos / np.array(CELL[:3]) + 0.5]])
        u = np.concatenate([u, [0.024]])
    truth = Crystal(CELL, "P 1", z, frac, u)
    refl, i_obs, sigma = _data(truth)
    placed = place_hydrogens(heavy, refl, i_obs, sigma)
    assert bool((placed.parent == 1).any()) is has_h


def test_published_h_atoms_are_found_on_the_published_heavy_atoms():
    """COD 2006528 (20 H): every published H within 0.3 Å of an H placed on the published
    non-H atoms with their calculated data."""
    path = real_data("cod") / "COD_2006528.cif"
    from xtalforge.io import read_cif

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = read_cif(path)
    h = truth.z == 1
    heavy = truth.copy(
        z=truth.z[~h], frac=truth.frac[~h], u_iso=truth.u_iso[~h], occ=truth.occ[~h], labels=None
    )
    refl, i_obs, sigma = _data(truth, 1.0)
    placed = place_hydrogens(heavy, refl, i_obs, sigma)
    assert len(placed) == h.sum()
    d = min_image_distances(truth.frac[h], placed.frac, truth.cell, refl).min(axis=1)
    assert (d < 0.3).all()
