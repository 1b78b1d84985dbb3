"""The pair correlation of charge-flipping starts against a brute-force real-space oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.start_pairs import PairCheck

SHAPE = (6, 7, 8)


def _sphere() -> np.ndarray:
    """Every index of the grid but F(000) inside |h| ≤ 2.5 (grid units), full sphere."""
    r = [range(-2, 3)] * 3
    hkl = np.array([h for h in itertools.product(*r) if 0 < np.dot(h, h) <= 6.25])
    return hkl


def _map(hkl: np.ndarray, amp: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """ρ(x) = Σ_h amp e^{iφ} e^{−2πi h·x} on the grid, by direct summation (real: the phases
    are odd in h)."""
    x = np.stack(np.meshgrid(*[np.arange(n) / n for n in SHAPE], indexing="ij"), -1)
    arg = np.tensordot(x, hkl.T, axes=1)  # (n0, n1, n2, m)
    return (amp * np.cos(phase - 2 * np.pi * arg)).sum(-1)


def _odd_phases(hkl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    key = {tuple(h): rng.uniform(-np.pi, np.pi) for h in hkl.tolist() if tuple(h) > (0, 0, 0)}
    return np.array([key[tuple(h)] if tuple(h) > (0, 0, 0) else -key[tuple(-h)] for h in hkl])


def _oracle(m1: np.ndarray, m2: np.ndarray) -> float:
    """max over every grid shift t and both hands of Σ m1(x) m2(±x − t) / (|m1| |m2|)."""
    inverted = np.roll(m2[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))  # m2(−x)
    best = -1.0
    for other in (m2, inverted):
        for t in itertools.product(*[range(n) for n in SHAPE]):
            c = float((m1 * np.roll(other, t, axis=(0, 1, 2))).sum())
            best = max(best, c / np.sqrt((m1**2).sum() * (other**2).sum()))
    return best


def _rows(hkl: np.ndarray, amp: np.ndarray, phases: list[np.ndarray]):
    """The flipping state of one structure's starts: conj G on the half grid, and the
    observed reflections' half-grid indices, |E| and weights."""
    half = HalfGrid(SHAPE)
    rows, flat, w = half.select(hkl)
    gc = np.zeros((len(phases), half.size), complex)
    for b, ph in enumerate(phases):
        gc[b, flat] = amp[rows] * np.exp(-1j * ph[rows])  # conj G
    t = lambda a, d=None: torch.as_tensor(np.repeat(a[None], len(phases), 0), dtype=d)  # noqa: E731
    return half, torch.as_tensor(gc), t(flat), t(amp[rows], torch.float64), t(w, torch.float64)


@pytest.mark.parametrize("compiled", [True, False])
def test_random_starts_match_the_real_space_oracle(compiled):
    rng = np.random.default_rng(3)
    hkl = _sphere()
    by_pair = {tuple(h): rng.uniform(0.5, 2.0) for h in hkl.tolist() if tuple(h) > (0, 0, 0)}
    amp = np.array([by_pair[max(tuple(h), tuple(-h))] for h in hkl])
    phases = [_odd_phases(hkl, rng) for _ in range(3)]
    half, gc, idx, a, w = _rows(hkl, amp, phases)
    check = PairCheck(half, compiled)
    out = check.best(gc, idx, a, w, torch.tensor([5, 5, 5]), {5: 2})
    assert check._buffer is None or not check._buffer.any()  # the kept buffer is left zero
    maps = [_map(hkl, amp, p) for p in phases]
    expected = max(_oracle(maps[i], maps[j]) for i, j in itertools.combinations(range(3), 2))
    c, r1, r2 = out[5]
    assert abs(c - expected) < 1e-9
    assert abs(_oracle(maps[r1], maps[r2]) - expected) < 1e-9


@pytest.mark.parametrize("compiled", [True, False])
def test_a_shifted_inverted_copy_correlates_fully(compiled):
    rng = np.random.default_rng(4)
    hkl = _sphere()
    amp = np.ones(len(hkl))
    phi = _odd_phases(hkl, rng)
    shift = np.array([1, 3, 5]) / np.array(SHAPE)
    other = -phi + 2 * np.pi * hkl @ shift  # ρ(−x + t): the other hand, moved
    half, gc, idx, a, w = _rows(hkl, amp, [phi, other, _odd_phases(hkl, rng)])
    struct = torch.tensor([0, 0, 1])
    check = PairCheck(half, compiled)
    out = check.best(gc, idx, a, w, struct, {0: 2, 1: 2})
    assert set(out) == {0}  # structure 1 has one start: no pair
    c, r1, r2 = out[0]
    assert (r1, r2) == (0, 1) and abs(c - 1.0) < 1e-9
    # searched in one hand only (a centrosymmetric group) the inverted copy is not found
    c_one, _, _ = check.best(gc, idx, a, w, struct, {0: 1})[0]
    maps = [_map(hkl, amp, p) for p in (phi, other)]
    shifts = itertools.product(*[range(n) for n in SHAPE])
    same = max(float((maps[0] * np.roll(maps[1], t, axis=(0, 1, 2))).sum()) for t in shifts)
    assert abs(c_one - same / (maps[0] ** 2).sum()) < 1e-9 and c_one < 0.9
