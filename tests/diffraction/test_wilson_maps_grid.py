"""E values (Wilson statistics), Patterson/density maps and the hkl-grid tensor layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xtalforge import (
    Crystal,
    HKLGrid,
    ReflectionError,
    density_map,
    normalize,
    patterson_map,
    reflections,
    structure_factors,
    wilson_fit,
)
from xtalforge.crystal.examples import random_crystal

RNG_CELL = (14.0, 15.0, 16.0, 90.0, 90.0, 90.0)


def random_p1(n: int, seed: int, u: float = 0.02, cell=RNG_CELL, sg: str = "P 1") -> Crystal:
    rng = np.random.default_rng(seed)
    return Crystal(cell, sg, rng.choice([6, 7, 8], n), rng.random((n, 3)), u)


def test_mean_e2_is_one_for_random_acentric_structures():
    for seed in range(3):
        c = random_p1(150, seed)
        refl = reflections(c, 1.2)
        e = normalize(structure_factors(c, refl), refl, crystal=c)
        assert np.mean(e**2) == pytest.approx(1.0, abs=0.05)
        # acentric: ⟨||E|²−1|⟩ = 2/e ≈ 0.736 (closed form for the Wilson distribution)
        assert np.mean(np.abs(e**2 - 1)) == pytest.approx(2 / math.e, abs=0.04)


def test_centric_statistics():
    c = random_p1(100, 7, sg="P -1")
    refl = reflections(c, 1.2)
    assert refl.centric.all()
    e = normalize(structure_factors(c, refl), refl, crystal=c)
    assert np.mean(e**2) == pytest.approx(1.0, abs=0.05)
    # centric: ⟨||E|²−1|⟩ = 2·sqrt(2/(πe)) ≈ 0.968
    assert np.mean(np.abs(e**2 - 1)) == pytest.approx(
        2 * math.sqrt(2 / (math.pi * math.e)), abs=0.05
    )


def test_epsilon_handles_special_reflections():
    # P4: reflections 00l have ε = 4; their E² must average 1 like the rest (many structures).
    e00l, egen = [], []
    for seed in range(30):
        c = random_p1(40, seed, cell=(10.0, 10.0, 14.0, 90, 90, 90), sg="P 4")
        refl = reflections(c, 1.0)
        e = normalize(structure_factors(c, refl), refl, crystal=c)
        e00l.extend(e[refl.epsilon == 4] ** 2)
        egen.extend(e[refl.epsilon == 1] ** 2)
    assert np.mean(egen) == pytest.approx(1.0, abs=0.05)
    assert np.mean(e00l) == pytest.approx(1.0, abs=0.3)


def test_wilson_fit_recovers_scale_and_b():
    b_true = 8 * math.pi**2 * 0.03
    c = random_p1(300, 1, u=0.03)
    refl = reflections(c, 0.9)
    f = structure_factors(c, refl)
    k, b = wilson_fit(3.0 * np.abs(f), refl, composition=c.composition())
    assert b == pytest.approx(b_true, abs=0.3)
    assert k == pytest.approx(9.0, rel=0.15)
    e = normalize(np.abs(f), refl, composition=c.composition())
    assert np.mean(e**2) == pytest.approx(1.0, abs=0.05)


def test_nan_amplitudes_rejected():
    c = random_p1(10, 0)
    refl = reflections(c, 2.0)
    amp = np.abs(structure_factors(c, refl))
    amp[3] = np.nan
    with pytest.raises(ReflectionError, match="not finite"):
        normalize(amp, refl)
    with pytest.raises(ReflectionError, match="finite"):
        patterson_map(refl, amp)


def test_patterson_origin_symmetry_and_vector_peak():
    cell = (10.0, 11.0, 12.0, 90.0, 90.0, 90.0)
    x1, x2 = np.array([0.1, 0.2, 0.3]), np.array([0.35, 0.6, 0.45])
    c = Crystal(cell, "P 1", [35, 35], [x1, x2], 0.01)
    refl = reflections(c, 0.7)
    f = structure_factors(c, refl)
    p = patterson_map(refl, f, shape=(40, 44, 48))
    assert np.unravel_index(p.argmax(), p.shape) == (0, 0, 0)
    np.testing.assert_allclose(p, np.roll(np.flip(p, (0, 1, 2)), 1, (0, 1, 2)), atol=1e-8)
    # the strongest non-origin peak sits at ±(x2 − x1)
    q = p.copy()
    grid = np.indices(p.shape).reshape(3, -1).T / np.array(p.shape)
    from_origin = np.abs((grid + 0.5) % 1 - 0.5) * np.array(cell[:3])
    q.reshape(-1)[np.linalg.norm(from_origin, axis=1) < 1.0] = -np.inf
    peak = np.array(np.unravel_index(q.argmax(), q.shape)) / np.array(p.shape)
    v = (x2 - x1) % 1
    assert (
        min(np.abs(((peak - v) + 0.5) % 1 - 0.5).max(), np.abs(((peak + v) + 0.5) % 1 - 0.5).max())
        < 0.03
    )


def test_patterson_options():
    c = random_crystal("P 1 21 1", 10, seed=1)
    refl = reflections(c, 1.0)
    f = structure_factors(c, refl)
    e = normalize(f, refl, crystal=c)
    p01 = patterson_map(refl, f, shape=(24, 24, 24), scale01=True)
    assert p01.shape == (24, 24, 24) and p01.min() == 0.0 and p01.max() == 1.0
    sharp = patterson_map(refl, f, e_values=e, sharpen=True, remove_origin=True)
    # origin removal: with coefficients |E|²−1 the map averages the (removed) origin out
    plain = patterson_map(refl, f)
    assert plain[0, 0, 0] > 5 * plain.std()
    assert sharp[0, 0, 0] < 3 * sharp.std()
    # a fixed coarse grid is the exact Fourier sum at those points (subsample of a fine grid)
    fine = patterson_map(refl, f, shape=tuple(2 * n for n in p01.shape))
    coarse = patterson_map(refl, f, shape=p01.shape)
    np.testing.assert_allclose(coarse, fine[::2, ::2, ::2], rtol=1e-10, atol=1e-10)


def test_density_map_peaks_at_atoms():
    c = Crystal(
        (9.0, 10.0, 11.0, 90, 90, 90), "P 1", [35, 6], [[0.25, 0.5, 0.75], [0.6, 0.1, 0.3]], 0.01
    )
    refl = reflections(c, 0.6)
    rho = density_map(refl, structure_factors(c, refl), f000=35 + 6)
    peak = np.array(np.unravel_index(rho.argmax(), rho.shape)) / np.array(rho.shape)
    np.testing.assert_allclose(peak, [0.25, 0.5, 0.75], atol=1.0 / min(rho.shape))
    # ∫ρ dV = F000 over the cell (mean density × volume)
    assert rho.mean() * c.volume == pytest.approx(41.0, rel=1e-6)


def test_hkl_grid_round_trip_and_masks():
    grid = HKLGrid.from_bounds((12.0, 12.0, 12.0), 1.0, ["P 1 21 1", "C 1 2 1"])
    c = random_crystal("P 1 21 1", 10, seed=2)
    assert max(c.cell[:3]) <= 12.0
    refl = reflections(c, 1.0)
    amp = np.abs(structure_factors(c, refl))
    dense = grid.to_dense(refl, amp, d_low=1.5, d_high=1.0)
    assert not (dense.known & dense.target).any()
    assert (dense.known | dense.target | dense.absent).all()
    assert dense.known.sum() == (refl.d >= 1.5).sum()
    assert dense.target.sum() == ((refl.d < 1.5) & (refl.d >= 1.0)).sum()
    np.testing.assert_allclose(grid.from_dense(dense.values, refl), amp, rtol=1e-6)
    # voxel (i, j, k) holds (h, k, l) = (i, j, k) + lower
    i = int(np.argmax(amp))
    h = refl.hkl[i] - np.array(grid.lower)
    assert dense.values[tuple(h)] == pytest.approx(amp[i], rel=1e-6)
    # zero is a legal amplitude, never a mask
    amp0 = amp.copy()
    amp0[:5] = 0.0
    assert grid.to_dense(refl, amp0, d_low=1.5).absent.sum() == dense.absent.sum() - (
        (refl.d < 1.0).sum()
    )


def test_hkl_grid_rejects_reflections_outside():
    grid = HKLGrid.from_bounds(8.0, 1.0, ["P 1 21 1"])
    c = random_crystal("P 1 21 1", 30, seed=3)
    assert max(c.cell[:3]) > 8.0
    refl = reflections(c, 1.0)
    with pytest.raises(ReflectionError, match="outside the hkl grid"):
        grid.to_dense(refl, np.ones(len(refl)))
