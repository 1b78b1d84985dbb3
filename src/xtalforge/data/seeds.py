"""numpy's ``SeedSequence([seed, index, tag]).generate_state(n)`` for many indices at once.

A dataset draws each sample's seed and split from a ``SeedSequence`` of (dataset seed, index,
tag) (:func:`~xtalforge.data.spec.sample_seed`, :func:`~xtalforge.data.spec.split_of`), so any
sample can be rebuilt alone. One ``SeedSequence`` costs about 15 µs — a few percent of a whole
generated structure — so a shard computes them here, lane by lane in uint32 arithmetic, with
the same hash (M. O'Neill's ``seed_seq`` mixing, as numpy implements it, in
:mod:`xtalforge.generate.seeding`) and the same words. Indices of 2³² or more fall back to
numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xtalforge.generate.seeding import entropy_words, seed_sequence_words

__all__ = ["seed_sequence_states"]


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
    entropy: list[int | np.ndarray] = [*entropy_words(int(seed)), idx.astype(np.uint64)]
    entropy += entropy_words(int(tag))
    return seed_sequence_words(entropy, len(idx), n_words)
