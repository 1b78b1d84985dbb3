"""Batched symmetry agreement of charge-flipping starts while they run (torch, CPU or GPU).

Charge flipping works in P1, so a start that has found the structure shows the space group's
symmetry about some origin, and one that has not (or has fallen into a false, "uranium atom"
solution with a low R) does not. For the current phases φ(h) of a start and the observed
amplitudes |E(h)| over the full sphere, F'(h) = |E(h)| e^{iφ(h)}, one operation (R, t) of the
point group gives S(s) = Re Σ_h F'(hR) F'(h)* e^{2πi h·t} e^{−2πi h·s} (one real FFT), and the
agreement is max over origins x0 of S((I − R) x0) / Σ_h |F'(h)|²: 1 for phases with the
group's symmetry, about 0.1–0.2 for random ones (more at low resolution). While flipping, the
operation checked is the one that pins the origin most — the inversion when the group has it,
else one with the largest rank of I − R; to choose the start kept, every operation with one
shared origin (Σ_g S_g((I − R_g) x0) / n_g Σ|F'|², the figure
:func:`xtalforge.phasing.charge_flipping.locate_origin` maximises, where the centring
translations count too and only add a constant).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xtalforge.phasing.fft import irfftn
from xtalforge.phasing.half_grid import HalfGrid

__all__ = ["SymmetryCheck", "origin_index"]


@dataclass
class _Group:
    """Structures of one space group in the batch (they share the operations; the first
    pins the origin most)."""

    members: torch.Tensor  # structure ids, sorted
    src: torch.Tensor  # (g, m) half-grid flat index holding h (or −h)
    mate: torch.Tensor  # (g, m) True where F'(h) is the conjugate of the stored value
    amp: torch.Tensor  # (g, m) |E(h)|, 0 for padding
    norm: torch.Tensor  # (g,) Σ |E|²
    pos: list[torch.Tensor]  # per operation: (g, m) position of hR in the list
    shift: list[torch.Tensor]  # per operation: (g, m) e^{2πi h·t}
    at_h: torch.Tensor  # (g, m) half-grid index of h (the dump slot when not stored)
    at_minus_h: torch.Tensor  # (g, m) half-grid index of −h (the dump slot when not stored)
    origin: list[torch.Tensor]  # per operation: (N,) grid index of (I − R) x0 per x0


def _checked_ops(rots: np.ndarray, trans: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The point group's non-identity operations, the one that pins the origin most (largest
    rank of I − R, so the inversion when there is one) first."""
    ops = [(int(np.linalg.matrix_rank(np.eye(3) - r)), i) for i, r in enumerate(rots)]
    return [
        (np.rint(rots[i]).astype(np.int64), np.asarray(trans[i], float))
        for rank, i in sorted(ops, key=lambda x: -x[0])
        if rank
    ]


class SymmetryCheck:
    """Agreement of the current phases with each structure's space group, for a batch of
    charge-flipping starts on one shared grid.

    ``structures``: per structure (hall symbol, point-group rotations (S, 3, 3), translations
    (S, 3), P1 Miller indices (m, 3) over the full sphere without F(000), |E| per index).
    Structures in P1 (no operation to check) get NaN.
    """

    def __init__(
        self,
        half: HalfGrid,
        structures: list[tuple],
        device: torch.device,
        real: torch.dtype,
        compiled: bool = True,
    ) -> None:
        self.half = half
        #: on the CPU, the steps around the FFT in compiled loops (:mod:`._kernels`)
        self.compiled = compiled and device.type == "cpu"
        self.device = device
        self.real = real
        shape, n_half = half.full, half.size
        by_group: dict[str, list[int]] = {}
        for s, (hall, rots, trans, *_rest) in enumerate(structures):
            if _checked_ops(rots, trans):
                by_group.setdefault(hall, []).append(s)
        cplx = real.to_complex()
        self.groups: list[_Group] = []
        #: the structures (ids) with operations to check, i.e. not in P1
        self.checked = {s for members in by_group.values() for s in members}
        for members in by_group.values():
            ops = _checked_ops(*structures[members[0]][1:3])
            m_max = max(len(structures[s][3]) for s in members)
            g = len(members)
            src = np.zeros((g, m_max), np.int64)
            pos = [np.zeros((g, m_max), np.int64) for _ in ops]
            shift = [np.zeros((g, m_max), complex) for _ in ops]
            at_h = np.full((g, m_max), n_half, np.int64)
            at_minus_h = np.full((g, m_max), n_half, np.int64)
            mate = np.zeros((g, m_max), bool)
            amp = np.zeros((g, m_max))
            for i, s in enumerate(members):
                hkl, e = structures[s][3].astype(np.int64), structures[s][4]
                m = len(hkl)
                plus, minus = half.to_half(half.flat(hkl)), half.to_half(half.flat(-hkl))
                src[i, :m] = np.where(plus >= 0, plus, minus)
                mate[i, :m] = plus < 0
                at_h[i, :m] = np.where(plus >= 0, plus, n_half)  # n_half: the dump slot
                at_minus_h[i, :m] = np.where(minus >= 0, minus, n_half)
                amp[i, :m] = e
                for k, (rot, t) in enumerate(ops):
                    pos[k][i, :m] = _find_rows(hkl, hkl @ rot)
                    shift[k][i, :m] = np.exp(2j * np.pi * (hkl @ t))
            origin = [origin_index(shape, rot) for rot, _ in ops]

            def put(a: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
                return torch.as_tensor(a, device=device, dtype=dtype)

            self.groups.append(
                _Group(
                    members=put(members),
                    src=put(src),
                    mate=put(mate),
                    amp=put(amp, real),
                    norm=put((amp**2).sum(1), real),
                    pos=[put(x) for x in pos],
                    shift=[put(x, cplx) for x in shift],
                    at_h=put(at_h),
                    at_minus_h=put(at_minus_h),
                    origin=[put(x.copy()) for x in origin],  # the cache stays read-only
                )
            )

    @property
    def active(self) -> bool:
        """Whether any structure of the batch has a symmetry operation to check."""
        return bool(self.groups)

    def agreement(
        self, gc: torch.Tensor, struct: torch.Tensor, every_op: bool = False
    ) -> torch.Tensor:
        """Agreement (0–1) of each row's phases; ``gc``: (B, half-grid) conj G as rfftn gives
        it; ``struct``: (B,) structure id of each row. NaN for structures in P1. The operation
        that pins the origin most, or with ``every_op`` all of them (one origin for all: the
        figure :func:`~xtalforge.phasing.charge_flipping.locate_origin` maximises)."""
        out = torch.full((len(struct),), float("nan"), dtype=self.real, device=self.device)
        n_grid, n_half = int(np.prod(self.half.full)), self.half.size
        for grp in self.groups:
            rows = torch.isin(struct, grp.members).nonzero().flatten()
            if not len(rows):
                continue
            local = torch.searchsorted(grp.members, struct[rows])
            if self.compiled:
                out[rows] = self._compiled(grp, gc[rows], local, every_op)
                continue
            stored = torch.gather(gc[rows], 1, grp.src[local])
            unit = stored / stored.abs().clamp_min(1e-30)
            # G(h) = conj(gc[h]) in the stored half, G(h) = gc[−h] for its mates
            unit = torch.where(grp.mate[local], unit, unit.conj())
            f = grp.amp[local] * unit
            n_ops = len(grp.pos) if every_op else 1
            total = torch.zeros(len(rows), n_grid, dtype=self.real, device=self.device)
            for pos, shift, origin in zip(
                grp.pos[:n_ops], grp.shift[:n_ops], grp.origin[:n_ops], strict=True
            ):
                a = torch.gather(f, 1, pos[local]) * f.conj() * shift[local]
                # Re Σ_h A(h) e^{−2πi h·s} = N · irfftn(X) with X(h) = (A(−h) + A(h)*) / 2
                x = torch.zeros(len(rows), n_half + 1, dtype=a.dtype, device=self.device)
                x.scatter_add_(1, grp.at_h[local], a.conj() / 2)
                x.scatter_add_(1, grp.at_minus_h[local], a / 2)
                s_g = irfftn(x[:, :n_half].reshape(-1, *self.half.shape), self.half.full)
                s_g = s_g.reshape(len(rows), n_grid)
                total += s_g[:, origin]
            best = total.max(1).values * n_grid / n_ops
            out[rows] = best / grp.norm[local].clamp_min(1e-30)
        return out

    def _compiled(
        self, grp: _Group, gc: torch.Tensor, local: torch.Tensor, every_op: bool
    ) -> torch.Tensor:
        """:meth:`agreement` of one group's rows (``gc``, their ids ``local`` in the group) on
        the CPU: the same steps, those around the FFT in compiled loops."""
        from xtalforge.phasing import _kernels

        n_grid, n_half = int(np.prod(self.half.full)), self.half.size
        pick = lambda t: t[local].numpy()  # noqa: E731
        src, mate, amp = pick(grp.src), pick(grp.mate), pick(grp.amp)
        at_h, at_minus_h = pick(grp.at_h), pick(grp.at_minus_h)
        g = gc.numpy()
        n_ops = len(grp.pos) if every_op else 1
        total = np.zeros((len(local), n_grid), amp.dtype)
        x = np.empty((len(local), n_half + 1), g.dtype)
        for pos, shift, origin in zip(
            grp.pos[:n_ops], grp.shift[:n_ops], grp.origin[:n_ops], strict=True
        ):
            _kernels.symmetry_coefficients(
                g, src, mate, amp, pick(pos), pick(shift), at_h, at_minus_h, x
            )
            s_g = irfftn(
                torch.from_numpy(x[:, :n_half].reshape(-1, *self.half.shape)), self.half.full
            )
            _kernels.add_at_origins(s_g.numpy().reshape(len(local), n_grid), origin.numpy(), total)
        best = total.max(1) * n_grid / n_ops
        return torch.from_numpy(best / np.maximum(pick(grp.norm), 1e-30))


def origin_index(shape: tuple[int, int, int], rot: np.ndarray) -> np.ndarray:
    """Flat grid index of s = (I − R) x0 for every grid point x0 = j / shape, in order
    (rotation ``rot`` (3, 3) integer; equal sizes where R mixes axes). Cached per shape and
    rotation; read-only."""
    return _origin_index(tuple(int(n) for n in shape), np.asarray(rot, np.int64).tobytes())


@functools.lru_cache(maxsize=64)
def _origin_index(shape: tuple[int, int, int], rot: bytes) -> np.ndarray:
    r = np.frombuffer(rot, np.int64).reshape(3, 3)
    dims = np.array(shape)
    j = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    idx = np.rint(((j / dims) @ (np.eye(3) - r).T) * dims).astype(np.int64) % dims
    out = np.ravel_multi_index(tuple(idx.T), shape)
    out.flags.writeable = False
    return out


def _find_rows(hkl: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each ``query`` Miller index in ``hkl`` (every one must be present)."""
    base = int(np.abs(np.concatenate([hkl, query])).max()) * 2 + 1
    code = lambda a: ((a[:, 0] * base) + a[:, 1]) * base + a[:, 2]  # noqa: E731
    keys = code(hkl)
    order = np.argsort(keys)
    at = np.minimum(np.searchsorted(keys[order], code(query)), len(keys) - 1)
    if (keys[order][at] != code(query)).any():
        raise ValueError("a symmetry equivalent is missing from the P1 reflection list")
    return order[at]
