"""Atom placement with distance checks over all symmetry copies and periodic images.

The set of placed images is closed under the space group, so a candidate x only needs its
distances to every placed image (and to its own images): dist(g·x, p) = dist(x, g⁻¹·p).
Periodic images are covered by the 27 lattice offsets around the rounded fractional
difference, which is exact for any cell whose minimum distances are below its shortest
lattice vector. Lengths in Å.
"""

from __future__ import annotations

import numpy as np

from xtalforge.crystal.elements import covalent_radius
from xtalforge.crystal.model import orthogonalization_matrix
from xtalforge.crystal.symmetry import SymmetryInfo

__all__ = ["SiteSet", "place_uniform", "special_operations"]

_OFFSETS = np.array(
    [[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64
)
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
        self.radius_max = 0.0  # of self.radius (Å), 0 while empty
        self.frac: list[np.ndarray] = []
        self.z: list[int] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def _site_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None or len(self._arrays[0]) != len(self.frac):
            self._arrays = (np.array(self.frac), np.array([covalent_radius(z) for z in self.z]))
        return self._arrays

    def site_frac(self) -> np.ndarray:
        """Fractional coordinates (N, 3) of the placed atoms, in [0, 1)."""
        return self._site_arrays()[0]

    def site_covalent_radii(self) -> np.ndarray:
        """Covalent radii (N,) in Å of the placed atoms' elements."""
        return self._site_arrays()[1]

    def images_unwrapped(self, x: np.ndarray) -> np.ndarray:
        """Symmetry images (T, n_ops, 3) of the fractional rows of x (T, 3), not wrapped."""
        return (x @ self.rot_cat).reshape(len(x), len(self.trans), 3) + self.trans

    def images_of(self, x: np.ndarray) -> np.ndarray:
        """Symmetry images (n_ops, 3) of fractional x, wrapped to [0, 1)."""
        return (self.rots @ x + self.trans) % 1.0

    def _periodic(self, d: np.ndarray, cutoff: float) -> np.ndarray:
        """Shortest lattice-image lengths (Å) of fractional differences d (…, 3), exact below
        ``cutoff`` (values at or above it may be overestimated, never below the cutoff)."""
        d = d - np.rint(d)
        c = (d.reshape(-1, 3) @ self.orth.T).reshape(d.shape)  # one product, not a stack
        if cutoff <= self.nearest_exact:
            return np.sqrt((c * c).sum(-1))
        cross = (c.reshape(-1, 3) @ self.off_cart.T).reshape(*c.shape[:-1], 27)
        sq = (c * c).sum(-1)[..., None] + 2 * cross + self.off_sq  # (…, 27)
        return np.sqrt(np.maximum(sq.min(axis=-1), 0.0))

    def candidate_distances(self, x: np.ndarray, cutoff: float = np.inf) -> np.ndarray:
        """Distances (Å) from candidates x (T, 3) to every placed image, then to each candidate's
        own images: (T, M + S), own images that coincide with the candidate set to inf; exact
        below ``cutoff`` Å (one fused evaluation)."""
        n_c, n_ops = len(x), len(self.trans)
        own = self.images_unwrapped(x)
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

    def pair_distances(self, x: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Nearest-image distances (Å) between rows of x (…, 3) and pts (broadcast), exact
        below ``nearest_exact`` (the caller checks its cutoff against it)."""
        return self._periodic(x - pts, self.nearest_exact)

    def own_image_distances(self, x: np.ndarray) -> np.ndarray:
        """Distances (Å) from candidates x (T, 3) to their own symmetry images (T, S); images
        that coincide with the candidate (special positions, the identity) are inf."""
        d = self.pair_distances(x[:, None, :], self.images_unwrapped(x))
        d[d < SAME_SITE] = np.inf
        return d

    def add_general(self, x: np.ndarray, z: np.ndarray, radius: np.ndarray) -> None:
        """Accept atoms at fractional x (K, 3) on general positions (all images kept)."""
        imgs = self.images_unwrapped(x) % 1.0
        self.images = np.concatenate([self.images, imgs.reshape(-1, 3)])
        self.radius = np.concatenate([self.radius, np.repeat(radius, len(self.trans))])
        self.radius_max = max(self.radius_max, float(np.max(radius, initial=0.0)))
        self.frac.extend(x % 1.0)
        self.z.extend(int(v) for v in z)

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
        self.radius_max = max(self.radius_max, float(radius))
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
    return v / np.sqrt((v * v).sum(axis=1))[:, None]


def place_uniform(sites: SiteSet, candidates: np.ndarray, min_distance: float) -> np.ndarray:
    """Place atoms one after another, each at the first of its candidates (A, T, 3) that lies
    ≥ min_distance Å from every placed image and from its own images; which candidate each atom
    took (A,), −1 where none was acceptable (the atom is skipped). The atoms are not added to
    ``sites``; the caller adds them in order.

    The result equals trying the atoms one by one, but the work is done in rounds of numpy
    operations: every atom's first candidate that passes against the sites placed before the
    round is taken speculatively, and the round accepts atoms in order up to the first whose
    pick conflicts with an atom accepted earlier in the same round (that atom goes on in the
    next round against the enlarged set). Needs min_distance ≤ ``sites.nearest_exact`` (the
    range in which nearest-image distances are exact; tiny cells are placed atom by atom).
    """
    if min_distance > sites.nearest_exact:
        raise ValueError(
            f"min_distance {min_distance} Å exceeds the exact nearest-image range "
            f"{sites.nearest_exact:.3f} Å of this cell: place atoms one by one"
        )
    n_atoms, n_tries = candidates.shape[:2]
    flat = candidates.reshape(-1, 3)
    ok = (sites.own_image_distances(flat) >= min_distance).all(axis=1)
    if len(sites.images):
        ok &= (sites.pair_distances(flat[:, None, :], sites.images) >= min_distance).all(axis=1)
    ok = ok.reshape(n_atoms, n_tries)
    chosen = np.full(n_atoms, -1)
    start = 0
    while start < n_atoms:
        rest = np.arange(start, n_atoms)
        has = ok[rest].any(axis=1)
        atoms = rest[has]
        if not len(atoms):
            break
        pick = ok[atoms].argmax(axis=1)
        x = candidates[atoms, pick]
        imgs = sites.images_unwrapped(x)
        close = (sites.pair_distances(x[:, None, None, :], imgs[None]) < min_distance).any(-1)
        clash = np.tril(close, -1).any(axis=1)
        stop = int(clash.argmax()) if clash.any() else len(atoms)
        chosen[atoms[:stop]] = pick[:stop]
        if stop == len(atoms):
            break
        start = int(atoms[stop])
        # the remaining candidates still open must also clear the round's accepted atoms
        rows, cols = np.nonzero(ok[start:])
        rows += start
        near = (
            sites.pair_distances(candidates[rows, cols][:, None, :], imgs[:stop].reshape(-1, 3))
            < min_distance
        ).any(axis=1)
        ok[rows[near], cols[near]] = False
    return chosen
