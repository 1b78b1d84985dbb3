"""How far two charge-flipping starts of one structure have found the same map.

Two starts that have both found the structure hold the same density up to an origin shift and
(without a centre of symmetry) the hand; two that have not hold unrelated maps. For the
observed amplitudes |E(h)| and the two starts' phases φ₁, φ₂ the correlation of map 1 with map
2 shifted by t is

    C₊(t) = Σ_h |E|² e^{i(φ₁ − φ₂)} e^{−2πi h·t} / Σ_h |E|²

and with map 2 inverted, C₋(t), the same with φ₁ + φ₂. Both are real series over the sphere
(Hermitian coefficients), so each is one inverse real FFT of the half grid the starts already
live on, and the pair's figure is max over t and both hands. In a centrosymmetric group the
inverted map of a solution is a shifted one, so only C₊ is searched (half the cost, and no
second chance for two unrelated maps). For random phases it is the
largest of N roughly normal values of width 1/√m (N grid points, m reflections): about 0.1–0.2
on the grids of small molecules, as the symmetry agreement of random phases.

Used by :mod:`.charge_flipping` as a second confirmation where the symmetry agreement alone
confirms late (near-atomic data, outside the triclinic groups): BENCHMARKS.md has the
diagnosis ("Twelfth session") and the calibration ("Fourteenth session").
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from xtalforge.phasing.fft import irfftn, irfftn_into
from xtalforge.phasing.half_grid import HalfGrid

__all__ = ["PairCheck"]


class PairCheck:
    """The pair correlation of charge-flipping starts on one half grid (see the module
    docstring). ``compiled``: on the CPU the coefficients are made in compiled loops on a
    buffer kept between calls (else torch operations, any device)."""

    def __init__(self, half: HalfGrid, compiled: bool = True) -> None:
        self.half = half
        self.compiled = compiled
        self._buffer: np.ndarray | None = None

    def best(
        self,
        gc: torch.Tensor,
        idx: torch.Tensor,
        amp: torch.Tensor,
        w: torch.Tensor,
        struct: torch.Tensor,
        hands: dict[int, int],
    ) -> dict[int, tuple[float, int, int]]:
        """Per structure of ``hands`` (id → 1 for a centrosymmetric group, else 2 hands)
        with two or more rows: the largest correlation (−1–1) between the maps of two of its
        rows over every origin shift (and both hands), and the two rows.

        ``gc``: (B, half-grid size) conj G of each row as rfftn gives it; ``idx``: (B, m) flat
        half-grid index of each observed reflection (padding repeats an entry, with weight 0);
        ``amp``: (B, m) |E|; ``w``: (B, m) weight of each entry in the sum over the sphere (2, 1
        on the self-mated planes, 0 for padding); ``struct``: (B,) structure id of each row.
        """
        rows_of: dict[int, list[int]] = {}
        for row, s in enumerate(struct.tolist()):
            if s in hands:
                rows_of.setdefault(s, []).append(row)
        out: dict[int, tuple[float, int, int]] = {}
        for n_hands in (1, 2):
            pairs = [
                (s, a, b)
                for s, rows in rows_of.items()
                if hands[s] == n_hands
                for a, b in itertools.combinations(rows, 2)
            ]
            if not pairs:
                continue
            run = self._compiled if self.compiled and gc.device.type == "cpu" else self._torch
            best = run(gc, idx, amp, w, pairs, n_hands)
            for (s, a, b), c in zip(pairs, best.tolist(), strict=True):
                if s not in out or c > out[s][0]:
                    out[s] = (c, a, b)
        return out

    def _torch(self, gc, idx, amp, w, pairs, hands) -> torch.Tensor:
        """The pairs' correlations by torch operations (any device)."""
        half = self.half
        first = torch.tensor([a for _, a, _ in pairs], device=gc.device)
        second = torch.tensor([b for _, _, b in pairs], device=gc.device)
        i_a = idx[first]  # the rows of one structure share their indices
        g_a, g_b = torch.gather(gc[first], 1, i_a), torch.gather(gc[second], 1, i_a)
        u_a = g_a / g_a.abs().clamp_min(1e-30)
        u_b = g_b / g_b.abs().clamp_min(1e-30)
        e2 = amp[first] ** 2
        norm = (w[first] * e2).sum(1)
        # the stored values are conj G: u_a conj(u_b) = e^{−i(φa − φb)}, u_a u_b = e^{−i(φa + φb)}
        coef = torch.zeros(hands * len(pairs), half.size, dtype=gc.dtype, device=gc.device)
        coef[0::hands].scatter_(1, i_a, e2 * u_a * u_b.conj())
        if hands == 2:
            coef[1::2].scatter_(1, i_a, e2 * u_a * u_b)
        series = irfftn(coef.view(-1, *half.shape), half.full).reshape(len(pairs), -1)
        n_grid = series.shape[1] // hands
        return series.amax(1) * n_grid / norm.clamp_min(1e-30)

    def _compiled(self, gc, idx, amp, w, pairs, hands) -> np.ndarray:
        """The pairs' correlations on the CPU: coefficients in compiled loops on a kept
        buffer (zero but while in use), one inverse real FFT per pair and hand."""
        from xtalforge.phasing import _kernels

        half, n = self.half, hands * len(pairs)
        g = gc.numpy()
        if self._buffer is None or len(self._buffer) < n or self._buffer.dtype != g.dtype:
            self._buffer = np.zeros((max(n, 12), half.size), g.dtype)
        coef = self._buffer[:n]
        first = np.array([a for _, a, _ in pairs], np.int64)
        second = np.array([b for _, _, b in pairs], np.int64)
        index, norm = idx.numpy(), np.empty(len(pairs))
        _kernels.pair_coefficients(
            g, index, amp.numpy(), w.numpy(), first, second, hands, coef, norm
        )
        series = np.empty((n, *half.full), amp.numpy().dtype)
        irfftn_into(coef.reshape(n, *half.shape), series, normalise=False)
        _kernels.clear_at(coef, index, first, hands)
        return series.reshape(len(pairs), -1).max(1) / np.maximum(norm, 1e-30)
