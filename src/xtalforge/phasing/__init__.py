"""Phasing: solution scoring against the truth (origin- and enantiomorph-aware CC, phase error)
and charge flipping (batched torch; experimental, see the phasing issue for its status)."""

from xtalforge.phasing.score import Score, permissible_shift_mask, score_phases

__all__ = ["Score", "permissible_shift_mask", "score_phases"]
