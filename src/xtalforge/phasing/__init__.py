"""Phasing and solving: charge flipping (batched torch, pocketfft on the CPU) and smtbx, scoring
against the truth (origin- and enantiomorph-aware CC, phase error), and from a map to a refined
structure: the space group from the data (``space_group``), atoms with elements (``atoms``),
least-squares refinement against F² (``refine``) and the whole completion with its verdict
(``complete``)."""

from xtalforge.phasing.score import Score, permissible_shift_mask, score_phases

__all__ = ["Score", "permissible_shift_mask", "score_phases"]
