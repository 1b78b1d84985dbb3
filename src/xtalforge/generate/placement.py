"""Atom placement with distance checks over all symmetry copies and periodic images.

The set of placed images is closed under the space group, so a candidate x only needs its
distances to every placed image (and to its own images): dist(g·x, p) = dist(x, g⁻¹·p).
Periodic images are covered by the 27 lattice offsets around the rounded fractional
difference, which is exact for any cell whose minimum distances are below its shortest
lattice vector. Lengths in Å.
"""

from __future__ import annotations

import numpy as np

from xtalforge.crystal.model import orthogonalization_matrix
from xtalforge.crystal.symmetry import SymmetryInfo

__all__ = ["SiteSet", "special_operations"]

_OFFSETS = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)],
                    dtype=np.float64)
#: Two images closer than this (Å) are the same site (a special position).
SAME_SITE = 0.01


class SiteSet:
    """Placed atoms of a growing structure with all their symmetry images."""

    def __init__(self, cell: tuple[float, ...], sym: SymmetryInfo) -> None:
        self.orth = orthogonalization_matrix(tuple(cell))
        self.frac_mat = np.linalg.inv(self.orth)
        self.rots, self.trans = sym.all_ops()
        self.off_cart = _OFFSETS @ self.orth.T  # (27, 3)
        self.off_sq = (self.off_cart**2).sum(axis=1)
        # x @ rot_cat gives every symmetry image of the rows of x at once: (T, 3 S)
        self.rot_cat = np.ascontiguousarray(self.rots.transpose(2, 0, 1).reshape(3, -1))
        # half the smallest interplanar spacing of the cell's axial planes (Å): a fractional
        # difference wrapped to [-½, ½] has its nearest image at the rounded offset whenever
        # that distance is below this bound (any other lattice offset is ≥ it away)
        self.nearest_exact = 0.5 / float(np.linalg.norm(self.frac_mat, axis=1).max())
        self.images = np.zeros((0, 3))  # fractional, wrapped to [0, 1)
        self.radius = np.zeros(0)  # covalent radius of the atom each image belongs to
        self.frac: list[np.ndarray] = []
        self.z: list[int] = []

    def images_of(self, x: np.ndarray) -> np.ndarray:
        """Symmetry images (n_ops, 3) of fractional x, wrapped to [0, 1)."""
        return (self.rots @ x + self.trans) % 1.0

    def _periodic(self, d: np.ndarray, cutoff: float) -> np.ndarray:
        """Shortest lattice-image lengths (Å) of fractional differences d (…, 3), exact below
        ``cutoff`` (values at or above it may be overestimated, never below the cutoff)."""
        d = d - np.rint(d)
        c = d @ self.orth.T
        if cutoff <= self.nearest_exact:
            return np.sqrt((c * c).sum(-1))
        sq = (c * c).sum(-1)[..., None] + 2 * (c @ self.off_cart.T) + self.off_sq  # (…, 27)
        return np.sqrt(np.maximum(sq.min(axis=-1), 0.0))

    def candidate_distances(self, x: np.ndarray, cutoff: float = np.inf) -> np.ndarray:
        """Distances (Å) from candidates x (T, 3) to every placed image, then to each candidate's
        own images: (T, M + S), own images that coincide with the candidate set to inf; exact
        below ``cutoff`` Å (one fused evaluation)."""
        n_c, n_ops = len(x), len(self.trans)
        own = (x @ self.rot_cat).reshape(n_c, n_ops, 3) + self.trans
        m = len(self.images)
        if m:
            pts = np.empty((n_c, m + n_ops, 3))
            pts[:, :m] = self.images
            pts[:, m:] = own
        else:
            pts = own
        d = self._periodic(x[:, None, :] - pts, cutoff)
        own_d = d[:, m:]
        own_d[own_d < SAME_SITE] = np.inf
        return d

    def add(self, x: np.ndarray, z: int, radius: float, special: bool = False) -> None:
        """Accept an atom at fractional x (its distinct images are stored; on a general
        position — all images ≥ the minimum distance apart — that is all of them)."""
        imgs = self.images_of(x)
        if special:  # drop coincident images (an atom on a special position)
            d = imgs[:, None, :] - imgs[None, :, :]
            d -= np.rint(d)
            same = np.linalg.norm(d @ self.orth.T, axis=-1) < SAME_SITE
            imgs = imgs[~np.tril(same, k=-1).any(axis=1)]
        self.images = np.concatenate([self.images, imgs])
        self.radius = np.concatenate([self.radius, np.full(len(imgs), radius)])
        self.frac.append(x % 1.0)
        self.z.append(int(z))


def special_operations(sym: SymmetryInfo) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Operations (R, t, n) with fixed points: the averaging projector (1/n) Σ g^k x puts any x
    on a special position of g. Lattice-shifted versions of each operation are tried so that
    g^n is exactly the identity; screw axes and glide planes (no fixed points) are left out."""
    rots, trans = sym.all_ops()
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    seen: set[tuple] = set()
    for r, t in zip(rots, trans):
        if np.allclose(r, np.eye(3)):
            continue
        n, m = 1, r.copy()
        while not np.allclose(m, np.eye(3)):
            m = m @ r
            n += 1
            if n > 6:
                break
        for shift in _OFFSETS:
            tt = t + shift
            total = np.zeros(3)
            p = np.eye(3)
            for _ in range(n):
                total = total + p @ tt
                p = p @ r
            if np.allclose(total, 0.0, atol=1e-9):
                key = (tuple(np.rint(r).astype(int).ravel()), tuple(np.round(tt % 1.0, 6)))
                if key not in seen:
                    seen.add(key)
                    out.append((r, tt, n))
                break
    return out


def project_special(x: np.ndarray, op: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """(1/n) Σ_{k<n} g^k x: a point fixed by g."""
    r, t, n = op
    acc, y = np.zeros(3), x.copy()
    for _ in range(n):
        acc += y
        y = r @ y + t
    return (acc / n) % 1.0


def random_unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """n directions uniform on the sphere."""
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)
