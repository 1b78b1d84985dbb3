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

S((I − R) x0) is a Fourier series in x0 whose indices h' = h (I − R) (row vectors) lie on a
sublattice: the axes where I − R has a zero column drop out (a 2-fold about b leaves the a–c
plane, a mirror a line), and an axis whose column entries share a factor g that divides the
grid size shrinks g-fold (the inversion halves every axis). So each operation's series is
summed by one real FFT on its own reduced grid, an eighth of the map's points or less, instead
of on the full map grid.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xtalforge.phasing.fft import irfftn, irfftn_into
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
    series: list[_Series]  # per operation: its reduced grid and where each h' sits on it


@dataclass
class _Series:
    """The reduced grid of one operation's series S((I − R) x0) (see the module docstring)."""

    shape: tuple[int, int, int]  # reduced real grid (1 along the axes that drop out)
    at: torch.Tensor  # (g, m) flat index of h' in the reduced half grid (its size: not stored)
    origin: torch.Tensor  # (N,) flat reduced-grid index of every full-grid point x0, in order

    @property
    def half_shape(self) -> tuple[int, int, int]:
        return self.shape[0], self.shape[1], self.shape[2] // 2 + 1

    @property
    def half_size(self) -> int:
        return self.shape[0] * self.shape[1] * (self.shape[2] // 2 + 1)


def reduced_series_grid(
    shape: tuple[int, int, int], rot: np.ndarray
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid on which S((I − R) x0) is sampled exactly for every point x0 of the full grid
    ``shape``: per axis its size, and the factor g the indices h' = h (I − R) on that axis
    share (0 where the axis drops out). Axis i keeps n_i points when g ∤ n_i, n_i / g when
    g | n_i, and 1 when column i of I − R is zero."""
    m = np.eye(3, dtype=np.int64) - np.asarray(rot, np.int64)
    sizes, factors = [], []
    for i in range(3):
        g = int(np.gcd.reduce(np.abs(m[:, i])))
        factors.append(g)
        if g == 0:
            sizes.append(1)
        elif shape[i] % g == 0:
            sizes.append(shape[i] // g)
        else:
            sizes.append(shape[i])
    return (sizes[0], sizes[1], sizes[2]), np.array(factors)


def _series(
    shape: tuple[int, int, int], rot: np.ndarray, hkl_rows: list[np.ndarray], m_max: int
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """The reduced grid of ``rot`` and, per structure (its P1 indices), the flat reduced
    half-grid index of each h' (padding and the conjugate half: the dump slot)."""
    red, g = reduced_series_grid(shape, rot)
    n_red = np.array(red)
    half_size = red[0] * red[1] * (red[2] // 2 + 1)
    m = np.eye(3, dtype=np.int64) - np.asarray(rot, np.int64)
    # on a shrunk axis h'/g indexes the n/g points; elsewhere h' itself (0 on a dropped one)
    divisor = np.where((g > 0) & (np.array(shape) % np.maximum(g, 1) == 0), g, 1)
    at = np.full((len(hkl_rows), m_max), half_size, np.int64)
    for i, hkl in enumerate(hkl_rows):
        idx = (hkl @ m) // divisor % n_red
        stored = idx[:, 2] <= red[2] // 2  # the other half is the conjugate of a stored h'
        flat = (idx[:, 0] * red[1] + idx[:, 1]) * (red[2] // 2 + 1) + idx[:, 2]
        at[i, : len(hkl)] = np.where(stored, flat, half_size)
    return red, at, _reduced_origin(shape, red)


@functools.lru_cache(maxsize=64)
def _reduced_origin(shape: tuple[int, int, int], red: tuple[int, int, int]) -> np.ndarray:
    """Flat index on the reduced grid ``red`` of every point of the full grid, in order."""
    j = [np.arange(n) % r for n, r in zip(shape, red, strict=True)]
    out = (j[0][:, None, None] * red[1] + j[1][None, :, None]) * red[2] + j[2][None, None, :]
    out = out.reshape(-1)
    out.flags.writeable = False
    return out


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
        shape = half.full
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
            mate = np.zeros((g, m_max), bool)
            amp = np.zeros((g, m_max))
            hkl_rows = []
            for i, s in enumerate(members):
                hkl, e = structures[s][3].astype(np.int64), structures[s][4]
                hkl_rows.append(hkl)
                m = len(hkl)
                plus, minus = half.to_half(half.flat(hkl)), half.to_half(half.flat(-hkl))
                src[i, :m] = np.where(plus >= 0, plus, minus)
                mate[i, :m] = plus < 0
                amp[i, :m] = e
                for k, (rot, t) in enumerate(ops):
                    pos[k][i, :m] = _find_rows(hkl, hkl @ rot)
                    shift[k][i, :m] = np.exp(2j * np.pi * (hkl @ t))

            def put(a: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
                return torch.as_tensor(a, device=device, dtype=dtype)

            series = []
            for rot, _ in ops:
                red, at, origin = _series(shape, rot, hkl_rows, m_max)
                series.append(_Series(red, put(at), put(origin.copy())))
            self.groups.append(
                _Group(
                    members=put(members),
                    src=put(src),
                    mate=put(mate),
                    amp=put(amp, real),
                    norm=put((amp**2).sum(1), real),
                    pos=[put(x) for x in pos],
                    shift=[put(x, cplx) for x in shift],
                    series=series,
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
        n_grid = int(np.prod(self.half.full))
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
            best = torch.full((len(rows),), -math.inf, dtype=self.real, device=self.device)
            for pos, shift, ser in zip(
                grp.pos[:n_ops], grp.shift[:n_ops], grp.series[:n_ops], strict=True
            ):
                a = torch.gather(f, 1, pos[local]) * f.conj() * shift[local]
                # S = Re Σ_h A(h) e^{−2πi h'·x0} = Σ_h A(h)* e^{+2πi h'·x0} (S is real): the
                # unnormalised inverse real FFT of X(h') = Σ A(h)* over the stored half
                x = torch.zeros(len(rows), ser.half_size + 1, dtype=a.dtype, device=self.device)
                x.scatter_add_(1, ser.at[local], a.conj())
                s_g = irfftn(x[:, : ser.half_size].reshape(-1, *ser.half_shape), ser.shape)
                s_g = s_g.reshape(len(rows), -1) * float(np.prod(ser.shape))
                if every_op:
                    total += s_g[:, ser.origin]
                else:
                    best = s_g.max(1).values
            if every_op:
                best = total.max(1).values / n_ops
            out[rows] = best / grp.norm[local].clamp_min(1e-30)
        return out

    def _compiled(
        self, grp: _Group, gc: torch.Tensor, local: torch.Tensor, every_op: bool
    ) -> torch.Tensor:
        """:meth:`agreement` of one group's rows (``gc``, their ids ``local`` in the group) on
        the CPU: the same steps, those around the FFT in compiled loops."""
        from xtalforge.phasing import _kernels

        at = local.numpy()
        pick = lambda t: t.numpy()[at]  # noqa: E731
        src, mate, amp = pick(grp.src), pick(grp.mate), pick(grp.amp)
        g = gc.numpy()
        n_ops = len(grp.pos) if every_op else 1
        total = np.zeros((len(at), int(np.prod(self.half.full))), amp.dtype) if every_op else None
        best = np.empty(len(at), amp.dtype)
        for pos, shift, ser in zip(
            grp.pos[:n_ops], grp.shift[:n_ops], grp.series[:n_ops], strict=True
        ):
            x = np.empty((len(at), ser.half_size + 1), g.dtype)
            _kernels.symmetry_series(g, src, mate, amp, pick(pos), pick(shift), pick(ser.at), x)
            s_g = np.empty((len(at), *ser.shape), amp.dtype)
            irfftn_into(x[:, : ser.half_size].reshape(-1, *ser.half_shape), s_g, normalise=False)
            if total is not None:
                _kernels.add_at_origins(s_g.reshape(len(at), -1), ser.origin.numpy(), total)
            else:
                best = s_g.reshape(len(at), -1).max(1)
        if total is not None:
            best = total.max(1) / n_ops
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
