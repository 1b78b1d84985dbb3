"""numpy's ``SeedSequence([seed, index, tag]).generate_state(n)`` for many indices at once.

A dataset draws each sample's seed and split from a ``SeedSequence`` of (dataset seed, index,
tag) (:func:`~xtalforge.data.spec.sample_seed`, :func:`~xtalforge.data.spec.split_of`), so any
sample can be rebuilt alone. One ``SeedSequence`` costs about 15 µs — a few percent of a whole
generated structure — so a shard computes them here, lane by lane in uint32 arithmetic, with
the same hash (M. O'Neill's ``seed_seq`` mixing, as numpy implements it) and the same words.
Indices of 2³² or more fall back to numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["seed_sequence_states"]

_M32 = np.uint64(0xFFFFFFFF)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
_SHIFT = np.uint64(16)
_POOL = 4


def _words(n: int) -> list[int]:
    """An integer's uint32 words, least significant first ([0] for 0), as numpy coerces it."""
    if n < 0:
        raise ValueError(f"seed entropy must be non-negative, got {n}")
    out = []
    while True:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
        if not n:
            return out


def seed_sequence_states(
    seed: int, indices: Sequence[int] | np.ndarray, tag: int, n_words: int
) -> np.ndarray:
    """(len(indices), n_words) uint32: row i equals
    ``numpy.random.SeedSequence([seed, indices[i], tag]).generate_state(n_words)``."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= 2**32):
        return np.array(
            [
                np.random.SeedSequence([int(seed), int(i), int(tag)]).generate_state(n_words)
                for i in idx
            ],
            dtype=np.uint32,
        ).reshape(len(idx), n_words)
    lanes = idx.astype(np.uint64)
    entropy: list[np.ndarray | np.uint64] = [np.uint64(w) for w in _words(int(seed))]
    entropy += [lanes, *(np.uint64(w) for w in _words(int(tag)))]
    entropy += [np.uint64(0)] * (_POOL - len(entropy))
    const = _INIT_A

    def hashmix(value: np.ndarray | np.uint64) -> np.ndarray:
        nonlocal const
        value = np.bitwise_xor(value, np.uint64(const))
        const = (const * _MULT_A) & 0xFFFFFFFF
        value = (value * np.uint64(const)) & _M32
        return value ^ (value >> _SHIFT)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.bitwise_and(np.subtract(_MIX_L * x, _MIX_R * y, dtype=np.uint64), _M32)
        return r ^ (r >> _SHIFT)

    ones = np.ones(len(idx), np.uint64)
    pool = [hashmix(entropy[i]) * ones for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(entropy)):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    out = np.empty((len(idx), n_words), np.uint32)
    const = _INIT_B
    for k in range(n_words):
        value = pool[k % _POOL] ^ np.uint64(const)
        const = (const * _MULT_B) & 0xFFFFFFFF
        value = (value * np.uint64(const)) & _M32
        out[:, k] = value ^ (value >> _SHIFT)
    return out
