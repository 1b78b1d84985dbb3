"""Training pairs of task ``density_modification``: the map of a structure's |E| to d_low with
partly wrong phases (input) and its true E map to d_high (target), both on the model grid of
fixed spacing and on the input's σ scale (:mod:`xtalforge.phasing.density_modification`).

The wrong phases span nearly random to nearly solved: each structure draws a quality
q = u^0.7 (u ~ U(0, 1)); every P1 reflection's phase moves by a normal error of
σ = π (1 − q) · 1.5 / (0.5 + |E|) (clipped to [0.5, 2] × π (1 − q): weak reflections wrong
first, as in flipping), a share
U(0, ½)·(1 − q) of them takes a random phase, and with probability ``flip_fraction`` the map then
runs 1…``max_flip_cycles`` charge-flipping cycles on the d_low data (so the input looks like
a flipping map, not a noisy truth). The perturbation starts from the true origin and hand,
so input and target share them: no alignment is needed in the loss. Errors keep Friedel's law
(one draw per pair h, −h), not the space group's symmetry (flipping runs in P1).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.reflections import at_or_above, below
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.phasing.density_modification import dm_grid
from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.solve import quasi_e

__all__ = ["MapPair", "crystal_rng", "map_pair", "perturbed_phases"]


@dataclass(frozen=True)
class MapPair:
    """One training pair: σ-scaled input and target maps (float32, the model grid), the
    half-grid flat indices of the extension shell's reflections (d_low > d ≥ d_high), their
    true coefficients (rfftn convention, σ scale) and the d_low drawn."""

    input: np.ndarray
    target: np.ndarray
    shell: np.ndarray
    shell_true: np.ndarray
    d_low: float


def crystal_rng(crystal: Crystal, salt: int = 0) -> np.random.Generator:
    """A generator seeded by the structure itself (its coordinates' bytes): the same structure
    always gets the same perturbation, whatever worker or epoch makes it."""
    key = zlib.crc32(np.ascontiguousarray(crystal.frac, np.float64).tobytes())
    return np.random.default_rng([key, salt])


def _friedel_keys(hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign ±1, index of the pair {h, −h}) of each P1 index: a draw per pair, negated on −h."""
    first = np.where(hkl[:, 0] != 0, hkl[:, 0], np.where(hkl[:, 1] != 0, hkl[:, 1], hkl[:, 2]))
    sign = np.sign(first)
    _, pair = np.unique(hkl * sign[:, None], axis=0, return_inverse=True)
    return sign.astype(float), pair.reshape(-1)


def perturbed_phases(
    phases: np.ndarray, e: np.ndarray, hkl: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``phases`` (radians) of P1 reflections ``hkl`` with errors of a random quality (see the
    module docstring); ``e``: their |E|."""
    sign, pair = _friedel_keys(hkl)
    n_pairs = int(pair.max()) + 1 if len(pair) else 0
    q = rng.uniform() ** 0.7  # leaning to partly right maps, where a step can help most
    sigma0 = np.pi * (1 - q)
    e_pair = np.zeros(n_pairs)
    e_pair[pair] = e
    sigma = sigma0 * np.clip(1.5 / (0.5 + e_pair), 0.5, 2.0)
    err = rng.normal(0.0, 1.0, n_pairs) * sigma
    rand = rng.random(n_pairs) < rng.uniform(0, 0.5) * (1 - q)
    err = np.where(rand, rng.uniform(-np.pi, np.pi, n_pairs), err)
    return phases + sign * err[pair]


def _flip_cycles(
    coef: np.ndarray, flat: np.ndarray, amp: np.ndarray, shape: tuple, n: int
) -> np.ndarray:
    """``n`` plain charge-flipping cycles (δ = 1.1 σ) of half-grid coefficients whose
    reflections at ``flat`` keep the moduli ``amp``; the other coefficients stay 0."""
    half = (shape[0], shape[1], shape[2] // 2 + 1)
    c = coef.copy()
    for _ in range(n):
        rho = scipy.fft.irfftn(c.reshape(half), s=shape)
        rho = np.where(rho > 1.1 * rho.std(), rho, -rho)
        g = scipy.fft.rfftn(rho).reshape(-1)[flat]
        c = np.zeros_like(c)
        c[flat] = amp * np.exp(1j * np.angle(g))
    return c


def map_pair(crystal: Crystal, task: dict[str, Any], rng: np.random.Generator) -> MapPair:
    """The training pair of ``crystal`` for the task settings ``task`` (d_low, d_low_max,
    d_high, spacing, flip_fraction, max_flip_cycles)."""
    d_low = float(rng.uniform(task["d_low"], task["d_low_max"]))
    refl, f = calculated_data(crystal, task["d_high"])
    e = quasi_e(np.abs(f), refl) * np.exp(1j * np.angle(f))
    hkl, vals = refl.expand_to_p1(e)
    _, d = refl.expand_to_p1(refl.d.astype(np.float64))
    keep = hkl.any(axis=1)
    hkl, vals, d = hkl[keep], vals[keep], d[keep]
    shape = dm_grid(refl.cell, hkl, task["spacing"])
    half = HalfGrid(shape)
    rows, flat, _ = half.select(hkl)
    true = np.zeros(half.size, complex)
    true[flat] = np.conj(vals[rows])  # rfftn convention: conj F
    obs = at_or_above(d[rows], d_low)
    amp = np.abs(vals[rows])
    phases = perturbed_phases(np.angle(true[flat]), amp, hkl[rows], rng)
    start = np.zeros(half.size, complex)
    start[flat[obs]] = amp[obs] * np.exp(1j * phases[obs])
    if rng.uniform() < task["flip_fraction"]:
        n = int(rng.integers(1, task["max_flip_cycles"] + 1))
        start = _flip_cycles(start, flat[obs], amp[obs], shape, n)
    half_shape = half.shape
    x = scipy.fft.irfftn(start.reshape(half_shape), s=shape)
    y = scipy.fft.irfftn(true.reshape(half_shape), s=shape)
    sigma = float(x.std()) or 1.0
    shell = below(d[rows], d_low)
    return MapPair(
        (x / sigma).astype(np.float32),
        (y / sigma).astype(np.float32),
        flat[shell],
        true[flat[shell]] / sigma,
        d_low,
    )
