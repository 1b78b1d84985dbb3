"""numpy's ``SeedSequence`` hash for many entropies at once, and the PCG64 states it seeds.

``numpy.random.default_rng(entropy)`` costs 15–30 µs, mostly the ``SeedSequence`` hash, a
few percent of a generated structure. The hash (M. O'Neill's ``seed_seq`` mixing, as numpy
implements it) runs here lane by lane in uint32 arithmetic, for every entropy of a batch that
has the same number of words, giving numpy's words exactly; a PCG64 generator is then set to
the state numpy's seeding would give it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["entropy_words", "pcg64_state", "seed_sequence_words"]

_M32 = np.uint64(0xFFFFFFFF)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
_SHIFT = np.uint64(16)
_POOL = 4
#: PCG64's 128-bit LCG multiplier (numpy's PCG_DEFAULT_MULTIPLIER_128).
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_M128 = (1 << 128) - 1


def entropy_words(n: int) -> list[int]:
    """An integer's uint32 words, least significant first ([0] for 0), as numpy coerces it."""
    if n < 0:
        raise ValueError(f"seed entropy must be non-negative, got {n}")
    out = []
    while True:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
        if not n:
            return out


def seed_sequence_words(
    entropy: Sequence[int | np.ndarray], n_lanes: int, n_words: int
) -> np.ndarray:
    """(n_lanes, n_words) uint32: row i equals
    ``numpy.random.SeedSequence(words_i).generate_state(n_words)`` where ``words_i`` are the
    entries of ``entropy`` in order, each a uint32 word shared by every lane (an int) or one
    word per lane (an array of n_lanes values below 2³²)."""
    words: list[np.ndarray | np.uint64] = [
        np.asarray(e, dtype=np.uint64) if isinstance(e, np.ndarray) else np.uint64(e)
        for e in entropy
    ]
    words += [np.uint64(0)] * (_POOL - len(words))
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

    ones = np.ones(n_lanes, np.uint64)
    pool = [hashmix(words[i]) * ones for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(words)):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(words[src]))
    out = np.empty((n_lanes, n_words), np.uint32)
    const = _INIT_B
    for k in range(n_words):
        value = pool[k % _POOL] ^ np.uint64(const)
        const = (const * _MULT_B) & 0xFFFFFFFF
        value = (value * np.uint64(const)) & _M32
        out[:, k] = value ^ (value >> _SHIFT)
    return out


def pcg64_state(words: Sequence[int]) -> dict:
    """The ``PCG64.state`` that ``PCG64(SeedSequence)`` sets from the sequence's first eight
    uint32 words (``generate_state(4, uint64)``, little-endian pairs)."""
    w = [int(words[2 * k]) | int(words[2 * k + 1]) << 32 for k in range(4)]
    inc = ((((w[2] << 64) | w[3]) << 1) | 1) & _M128
    state = ((inc + ((w[0] << 64) | w[1])) * _PCG_MULT + inc) & _M128  # two LCG steps from 0
    return {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": 0,
        "uinteger": 0,
    }
