"""Atom placement with distance checks over all symmetry copies and periodic images.

The set of placed images is closed under the space group, so a candidate x only needs its
distances to every placed image (and to its own images): dist(g·x, p) = dist(x, g⁻¹·p).
Periodic images are covered by the 27 lattice offsets around the rounded fractional
difference, which is exact for any cell whose minimum distances are below its shortest
lattice vector. Lengths in Å.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xtalforge.crystal.elements import covalent_radius
from xtalforge.crystal.model import orthogonalization_matrix
from xtalforge.crystal.symmetry import SymmetryInfo

__all__ = ["SiteSet", "place_molecule_atoms", "place_uniform", "special_operations"]

_OFFSETS = np.array(
    [[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64
)
#: Two images closer than this (Å) are the same site (a special position).
SAME_SITE = 0.01


class SiteSet:
    """Placed atoms of a growing structure with all their symmetry images (in growable buffers,
    so that adding an atom copies a few numbers, not every image placed so far)."""

    def __init__(self, cell: tuple[float, ...], sym: SymmetryInfo) -> None:
        self.orth = orthogonalization_matrix(tuple(cell))
        self.frac_mat = np.linalg.inv(self.orth)
        rots, trans = sym.all_ops()
        self.rots = rots
        self.trans = np.ascontiguousarray(trans, dtype=np.float64)
        self.off_cart = _OFFSETS @ self.orth.T  # (27, 3)
        self.off_sq = (self.off_cart**2).sum(axis=1)
        # x @ rot_cat gives every symmetry image of the rows of x at once: (T, 3 S)
        self.rot_cat = np.ascontiguousarray(self.rots.transpose(2, 0, 1).reshape(3, -1))
        # half the smallest interplanar spacing of the cell's axial planes (Å): a fractional
        # difference wrapped to [-½, ½] has its nearest image at the rounded offset whenever
        # that distance is below this bound (any other lattice offset is ≥ it away)
        row_norms = np.sqrt((self.frac_mat * self.frac_mat).sum(axis=1))  # as linalg.norm
        self.nearest_exact = 0.5 / float(row_norms.max())
        self.radius_max = 0.0  # of the placed atoms' covalent radii (Å), 0 while empty
        self.z: list[int] = []
        self._images = np.empty((32 * len(self.trans), 3))  # fractional, wrapped to [0, 1)
        self._image_radius = np.empty(len(self._images))  # radius of each image's atom
        self._n_images = 0
        self._frac = np.empty((32, 3))
        self._radius = np.empty(32)

    @property
    def images(self) -> np.ndarray:
        """Every placed image (M, 3), fractional in [0, 1) (a view; read only)."""
        return self._images[: self._n_images]

    @property
    def radius(self) -> np.ndarray:
        """Covalent radius (M,) in Å of the atom each image belongs to (a view)."""
        return self._image_radius[: self._n_images]

    @property
    def frac(self) -> np.ndarray:
        """Fractional coordinates (N, 3) of the placed atoms, in [0, 1) (a view)."""
        return self._frac[: len(self.z)]

    def site_frac(self) -> np.ndarray:
        """Fractional coordinates (N, 3) of the placed atoms, in [0, 1)."""
        return self.frac

    def site_covalent_radii(self) -> np.ndarray:
        """Covalent radii (N,) in Å of the placed atoms' elements."""
        return self._radius[: len(self.z)]

    def _commit(self, z: np.ndarray, n_images: int, r_max: float) -> None:
        """Count atoms (elements z) and images that a compiled loop wrote into the buffers."""
        self.z.extend(z.tolist())
        self._n_images = n_images
        self.radius_max = max(self.radius_max, r_max)

    def kernel_buffers(
        self, n_new: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, int]:
        """Room for n_new more atoms and their images, and the arguments a compiled placement
        loop writes them through: (site_frac, site_radius, site_z, n_sites, images,
        image_radius, n_images); ``site_z`` is a fresh array whose rows from n_sites on the
        loop fills (see :meth:`_commit`)."""
        self.reserve(n_new, n_new * len(self.trans))
        n = len(self.z)
        site_z = np.zeros(n + n_new, dtype=np.int64)
        return (
            self._frac,
            self._radius,
            site_z,
            n,
            self._images,
            self._image_radius,
            self._n_images,
        )

    def reserve(self, n_atoms: int, n_images: int) -> None:
        """Grow the buffers to hold n_atoms more atoms and n_images more images."""
        n, m = len(self.z), self._n_images
        if n + n_atoms > len(self._frac):
            grow = max(2 * len(self._frac), n + n_atoms)
            self._frac = np.concatenate([self._frac[:n], np.empty((grow - n, 3))])
            self._radius = np.concatenate([self._radius[:n], np.empty(grow - n)])
        if m + n_images > len(self._images):
            grow = max(2 * len(self._images), m + n_images)
            self._images = np.concatenate([self._images[:m], np.empty((grow - m, 3))])
            self._image_radius = np.concatenate([self._image_radius[:m], np.empty(grow - m)])

    def _append(
        self,
        x: np.ndarray,
        z: list[int],
        radius: np.ndarray | float,
        imgs: np.ndarray,
        img_radius: np.ndarray | float,
        r_max: float,
    ) -> None:
        """Store atoms (fractional x, elements z, covalent radii) and their images (each with
        the radius ``img_radius`` of its atom, at most ``r_max``)."""
        k, j = len(z), len(imgs)
        self.reserve(k, j)
        n, m = len(self.z), self._n_images
        self._frac[n : n + k] = x
        self._radius[n : n + k] = radius
        self._images[m : m + j] = imgs
        self._image_radius[m : m + j] = img_radius
        self._n_images = m + j
        self.z.extend(z)
        if j:
            self.radius_max = max(self.radius_max, r_max)

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

    def add(self, x: np.ndarray, z: int, radius: float, special: bool = False) -> None:
        """Accept an atom at fractional x (its distinct images are stored; on a general
        position — all images ≥ the minimum distance apart — that is all of them)."""
        if special:  # drop coincident images (an atom on a special position)
            imgs = self.images_of(x)
            d = imgs[:, None, :] - imgs[None, :, :]
            d -= np.rint(d)
            same = np.linalg.norm(d @ self.orth.T, axis=-1) < SAME_SITE
            imgs = imgs[~np.tril(same, k=-1).any(axis=1)]
        else:
            imgs = (x @ self.rot_cat).reshape(-1, 3) + self.trans
            imgs %= 1.0
        self._append(
            (x % 1.0)[None], [int(z)], covalent_radius(int(z)), imgs, float(radius), float(radius)
        )


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


def place_uniform(
    sites: SiteSet,
    candidates: np.ndarray,
    z: np.ndarray,
    radius: np.ndarray,
    min_distance: float,
) -> np.ndarray:
    """Place atoms one after another, each at the first of its candidates (A, T, 3) that lies
    ≥ min_distance Å from every placed image and from its own images, and add them to
    ``sites`` (elements z, covalent radii ``radius`` Å); which candidate each atom took (A,),
    −1 where none was acceptable (the atom is skipped). One compiled loop that stops each test
    at the first clash (:func:`~xtalforge.generate._kernels.place_uniform_sequential`)."""
    from xtalforge.generate._kernels import place_uniform_sequential

    buffers = sites.kernel_buffers(len(candidates))
    n_sites, n_images, chosen = place_uniform_sequential(
        np.ascontiguousarray(candidates, dtype=np.float64),
        np.asarray(z, dtype=np.int64),
        np.asarray(radius, dtype=np.float64),
        float(min_distance),
        *buffers,
        sites.rot_cat,
        sites.trans,
        sites.orth,
        sites.off_cart,
        sites.off_sq,
        bool(min_distance > sites.nearest_exact),
    )
    site_z, n = buffers[2], buffers[3]
    sites._commit(site_z[n:n_sites], n_images, float(np.max(radius[chosen >= 0], initial=0.0)))
    return chosen


def place_molecule_atoms(
    sites: SiteSet,
    rng: np.random.Generator,
    n_heavy: int,
    n_h: int,
    elements: Any,
    hydrogen: Any,
    max_tries: int,
    molecule_tries: int,
    bond_scale: tuple[float, float],
) -> tuple[int, int]:
    """Bonded ("molecule") placement of n_heavy atoms drawn from ``elements`` (an object with
    cumulative weights ``_cum``, atomic numbers ``z`` and covalent radii ``r`` in Å), then n_h
    hydrogens (``hydrogen``), added to ``sites``: one compiled loop
    (:func:`~xtalforge.generate._kernels.place_molecule_atoms`) that draws from ``rng`` what
    ``Generator._place`` draws, in the same order. Returns the skipped (heavy, hydrogen)
    counts."""
    from xtalforge.generate._kernels import place_molecule_atoms as kernel

    buffers = sites.kernel_buffers(n_heavy + n_h)
    n_sites, n_images, r_max, skipped_heavy, skipped_h = kernel(
        rng,
        n_heavy,
        n_h,
        np.asarray(elements._cum, dtype=np.float64),
        np.asarray(elements.z, dtype=np.int64),
        np.asarray(elements.r, dtype=np.float64),
        float(hydrogen.r[0]),
        int(max_tries),
        int(molecule_tries),
        float(bond_scale[0]),
        float(bond_scale[1]),
        *buffers,
        float(sites.radius_max),
        sites.rot_cat,
        sites.trans,
        sites.orth,
        sites.frac_mat,
        sites.off_cart,
        sites.off_sq,
        float(sites.nearest_exact),
    )
    site_z, n = buffers[2], buffers[3]
    sites._commit(site_z[n:n_sites], n_images, r_max)
    return int(skipped_heavy), int(skipped_h)
