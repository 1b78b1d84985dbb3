"""Phasing: the scorer against closed-form cases (permissible origin shifts, enantiomorph,
random phases) and origin location of shifted true phases."""

from __future__ import annotations

import numpy as np
import pytest

from xtalforge.diffraction import reflections, structure_factors
from xtalforge.generate import Generator
from xtalforge.phasing import permissible_shift_mask, score_phases
from xtalforge.phasing.charge_flipping import locate_origin


def structure(sg: str, seed: int = 1):
    gen = Generator.from_config({
        "name": "t", "spacegroups": [sg], "atoms": [15, 15],
        "cell": {"strategy": "volume_per_atom", "v_atom": [16.0, 20.0], "a_min": 4.0,
                 "a_max": 12.0},
        "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
        "placement": {"method": "uniform", "min_distance": 1.2}, "u_iso": [0.02, 0.04]})
    c = gen.sample(seed)
    r = reflections(c, 0.9)
    return r, structure_factors(c, r)


@pytest.mark.parametrize(("sg", "shift"), [
    ("P 1", (0.123, 0.456, 0.789)),
    ("P 1 21 1", (0.5, 0.37, 0.0)),        # polar b: any y; x, z in {0, 1/2}
    ("P 1 21/c 1", (0.5, 0.0, 0.5)),
    ("C 1 2 1", (0.0, 0.81, 0.5)),
    ("P 21 21 21", (0.5, 0.5, 0.0)),
])
def test_cc_is_one_for_permissible_shifts_and_the_enantiomorph(sg, shift):
    r, f = structure(sg)
    amp, ph = np.abs(f), np.angle(f)
    shifted = ph - 2 * np.pi * (r.hkl @ np.array(shift))  # the same structure moved by −shift
    for sol in (shifted, -shifted):
        s = score_phases(r, amp, ph, sol)
        assert s.cc == pytest.approx(1.0, abs=1e-6)
        assert s.phase_error == pytest.approx(0.0, abs=0.05)
        assert s.solved


def test_random_and_non_permissible_solutions_score_low():
    r, f = structure("P 1 21 1")
    amp, ph = np.abs(f), np.angle(f)
    rng = np.random.default_rng(0)
    for _ in range(3):
        s = score_phases(r, amp, ph, rng.uniform(-np.pi, np.pi, len(r)))
        assert s.cc < 0.3 and s.phase_error > 70 and not s.solved
    # a shift of x by 1/4 is not a permissible origin in P2_1: the map no longer has its
    # symmetry, so it may not be scored as the truth (though P1 scoring finds it)
    moved = ph - 2 * np.pi * (r.hkl @ np.array([0.25, 0.0, 0.0]))
    assert score_phases(r, amp, ph, moved).cc < 0.3
    assert score_phases(r, amp, ph, moved, p1=True).cc == pytest.approx(1.0, abs=1e-6)


def test_permissible_shifts_of_p21():
    r, _ = structure("P 1 21 1")
    mask = permissible_shift_mask(r, (4, 4, 4))
    ok = {tuple(i / 4 for i in idx) for idx in zip(*np.nonzero(mask), strict=True)}
    assert ok == {(x, y, z) for x in (0, 0.5) for y in (0, 0.25, 0.5, 0.75) for z in (0, 0.5)}


@pytest.mark.parametrize("sg", ["P 1 21 1", "P 1 21/c 1", "P 21 21 21"])
def test_origin_location_recovers_shifted_true_phases(sg):
    """A P1 solution = the true structure moved to an arbitrary origin; locating the origin from
    the symmetry and averaging gives phases that score as the truth."""
    r, f = structure(sg, seed=4)
    hkl, fp1 = r.expand_to_p1(f)
    shape = (48, 48, 48)
    x0 = np.array([0.137, 0.291, 0.613])
    grid = np.zeros(shape, complex)
    grid[tuple(hkl[:, i] % shape[i] for i in range(3))] = fp1 * np.exp(-2j * np.pi * (hkl @ x0))
    assert score_phases(r, np.abs(f), np.angle(f),
                        np.angle(grid[tuple(r.hkl[:, i] % 48 for i in range(3))])).cc < 0.5
    phases, _ = locate_origin(grid, r)
    s = score_phases(r, np.abs(f), np.angle(f), phases)
    assert s.cc > 0.99
