"""Compiled (numba) inner loops of atom placement: nearest-image distances with early exit.

Placement is sequential by nature: each atom is tested against everything placed before it, and
most candidates fail on one of the first few images. In numpy every test costs a dozen array
operations of a few dozen elements (≈ 100 µs of overhead per placed atom); these loops stop at
the first clash and cost a few µs. The arithmetic is that of :class:`~xtalforge.generate.
placement.SiteSet` term by term (rounded fractional difference, Cartesian row by row, the 27
neighbouring lattice offsets where the cell is too small for the rounded one to be exact), so
the decisions are those of the numpy definition. Lengths in Å, coordinates fractional.

Compiled on first use and cached on disk (``cache=True``); importing this module compiles
nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Two images closer than this (Å) are the same site (as ``placement.SAME_SITE``).
SAME_SITE = 0.01


@njit(cache=True, inline="always")
def _length(
    dx: float,
    dy: float,
    dz: float,
    orth: np.ndarray,
    off_cart: np.ndarray,
    off_sq: np.ndarray,
    use27: bool,
) -> float:
    """Shortest lattice-image length (Å) of the fractional difference (dx, dy, dz)."""
    dx -= np.rint(dx)
    dy -= np.rint(dy)
    dz -= np.rint(dz)
    cx = dx * orth[0, 0] + dy * orth[0, 1] + dz * orth[0, 2]
    cy = dx * orth[1, 0] + dy * orth[1, 1] + dz * orth[1, 2]
    cz = dx * orth[2, 0] + dy * orth[2, 1] + dz * orth[2, 2]
    sq = cx * cx + cy * cy + cz * cz
    if not use27:
        return np.sqrt(sq)
    best = np.inf
    for o in range(27):
        cross = cx * off_cart[o, 0] + cy * off_cart[o, 1] + cz * off_cart[o, 2]
        v = sq + 2.0 * cross + off_sq[o]
        if v < best:
            best = v
    return np.sqrt(max(best, 0.0))


@njit(cache=True, inline="always")
def _image(
    x0: float, x1: float, x2: float, rot_cat: np.ndarray, trans: np.ndarray, s: int, k: int
) -> float:
    """Coordinate k of symmetry image s of x, not wrapped (x @ R_s + t_s, as numpy's product)."""
    c = 3 * s + k
    return x0 * rot_cat[0, c] + x1 * rot_cat[1, c] + x2 * rot_cat[2, c] + trans[s, k]


@njit(cache=True, inline="always")
def _own_distance(
    x0: float,
    x1: float,
    x2: float,
    s: int,
    rot_cat: np.ndarray,
    trans: np.ndarray,
    orth: np.ndarray,
    off_cart: np.ndarray,
    off_sq: np.ndarray,
    use27: bool,
) -> float:
    """Distance (Å) from x to its own symmetry image s (< SAME_SITE where they coincide)."""
    return _length(
        x0 - _image(x0, x1, x2, rot_cat, trans, s, 0),
        x1 - _image(x0, x1, x2, rot_cat, trans, s, 1),
        x2 - _image(x0, x1, x2, rot_cat, trans, s, 2),
        orth,
        off_cart,
        off_sq,
        use27,
    )


@njit(cache=True, inline="always")
def _store(
    x0: float,
    x1: float,
    x2: float,
    z: int,
    radius: float,
    site_frac: np.ndarray,
    site_radius: np.ndarray,
    site_z: np.ndarray,
    n_sites: int,
    images: np.ndarray,
    image_radius: np.ndarray,
    n_images: int,
    rot_cat: np.ndarray,
    trans: np.ndarray,
) -> int:
    """Write an accepted atom on a general position (x wrapped to [0, 1)) and its images
    (wrapped) into the buffers at rows n_sites and n_images; the new image count."""
    site_frac[n_sites, 0] = x0 % 1.0
    site_frac[n_sites, 1] = x1 % 1.0
    site_frac[n_sites, 2] = x2 % 1.0
    site_radius[n_sites] = radius
    site_z[n_sites] = z
    for s in range(trans.shape[0]):
        for c in range(3):
            images[n_images, c] = _image(x0, x1, x2, rot_cat, trans, s, c) % 1.0
        image_radius[n_images] = radius
        n_images += 1
    return n_images


@njit(cache=True)
def place_uniform_sequential(
    candidates: np.ndarray,
    z: np.ndarray,
    radius: np.ndarray,
    min_distance: float,
    site_frac: np.ndarray,
    site_radius: np.ndarray,
    site_z: np.ndarray,
    n_sites: int,
    images: np.ndarray,
    image_radius: np.ndarray,
    n_images: int,
    rot_cat: np.ndarray,
    trans: np.ndarray,
    orth: np.ndarray,
    off_cart: np.ndarray,
    off_sq: np.ndarray,
    use27: bool,
) -> tuple[int, int, np.ndarray]:
    """Atoms placed one after another, each at its first candidate (A, T, 3) that lies
    ≥ min_distance Å from every placed image and from its own images, written into the
    buffers (as :func:`_store`, element z[a], covalent radius radius[a] Å); returns
    (n_sites, n_images, chosen candidate per atom (A,), −1 where none was acceptable)."""
    n_atoms, n_tries = candidates.shape[0], candidates.shape[1]
    n_ops = trans.shape[0]
    chosen = np.full(n_atoms, -1, dtype=np.int64)
    for a in range(n_atoms):
        for t in range(n_tries):
            x0, x1, x2 = candidates[a, t, 0], candidates[a, t, 1], candidates[a, t, 2]
            ok = True
            for s in range(n_ops):
                d = _own_distance(x0, x1, x2, s, rot_cat, trans, orth, off_cart, off_sq, use27)
                if d >= SAME_SITE and d < min_distance:
                    ok = False
                    break
            if ok:
                for p in range(n_images):
                    d = _length(
                        x0 - images[p, 0], x1 - images[p, 1], x2 - images[p, 2],
                        orth, off_cart, off_sq, use27,
                    )  # fmt: skip
                    if d < min_distance:
                        ok = False
                        break
            if ok:
                chosen[a] = t
                n_images = _store(
                    x0, x1, x2, z[a], radius[a], site_frac, site_radius, site_z, n_sites,
                    images, image_radius, n_images, rot_cat, trans,
                )  # fmt: skip
                n_sites += 1
                break
    return n_sites, n_images, chosen


@njit(cache=True, inline="always")
def _molecule_ok(
    x0: float,
    x1: float,
    x2: float,
    radius: float,
    images: np.ndarray,
    image_radius: np.ndarray,
    m: int,
    rot_cat: np.ndarray,
    trans: np.ndarray,
    orth: np.ndarray,
    off_cart: np.ndarray,
    off_sq: np.ndarray,
    use27: bool,
) -> bool:
    """The molecule rules for an atom of covalent radius ``radius`` Å at x: every one of the m
    placed images and every own image (coincident ones excepted) at distance d has
    d > 0.9 ΣR and d outside [1.1, 1.4] ΣR, ΣR the sum of the two covalent radii."""
    for p in range(m):
        d = _length(
            x0 - images[p, 0], x1 - images[p, 1], x2 - images[p, 2], orth, off_cart, off_sq, use27
        )
        r_sum = image_radius[p] + radius
        if d <= 0.9 * r_sum or (d >= 1.1 * r_sum and d <= 1.4 * r_sum):
            return False
    r_sum = radius + radius
    for s in range(trans.shape[0]):
        d = _own_distance(x0, x1, x2, s, rot_cat, trans, orth, off_cart, off_sq, use27)
        if d < SAME_SITE:
            continue
        if d <= 0.9 * r_sum or (d >= 1.1 * r_sum and d <= 1.4 * r_sum):
            return False
    return True


@njit(cache=True)
def place_molecule_atoms(
    rng: np.random.Generator,
    n_heavy: int,
    n_h: int,
    heavy_cum: np.ndarray,
    heavy_z: np.ndarray,
    heavy_r: np.ndarray,
    h_r: float,
    max_tries: int,
    molecule_tries: int,
    bond_lo: float,
    bond_hi: float,
    site_frac: np.ndarray,
    site_radius: np.ndarray,
    site_z: np.ndarray,
    n_sites: int,
    images: np.ndarray,
    image_radius: np.ndarray,
    n_images: int,
    radius_max: float,
    rot_cat: np.ndarray,
    trans: np.ndarray,
    orth: np.ndarray,
    frac_mat: np.ndarray,
    off_cart: np.ndarray,
    off_sq: np.ndarray,
    nearest_exact: float,
) -> tuple[int, int, float, int, int]:
    """Bonded placement of n_heavy atoms drawn from the cumulative weights ``heavy_cum``, then
    n_h hydrogens, one by one exactly as ``Generator._place`` does it (the same calls on
    ``rng``, in the same order): the first atom of an empty structure at the first of
    ``max_tries`` uniform positions that passes the molecule rules; every later one at the first
    of ``molecule_tries`` positions bonded to random placed atoms at U(bond_lo, bond_hi)·(R_A +
    R) Å along directions uniform on the sphere, with a second element drawn after a failure.

    Writes the accepted atoms into the buffers (site_* from row n_sites, images from row
    n_images; large enough for every atom) and returns (n_sites, n_images, radius_max,
    skipped heavy atoms, skipped hydrogens)."""
    skipped_heavy = 0
    skipped_h = 0
    h_cum = np.ones(1)
    h_z = np.ones(1, dtype=heavy_z.dtype)
    h_r_arr = np.full(1, h_r)
    for i in range(n_heavy + n_h):
        heavy = i < n_heavy
        cum = heavy_cum if heavy else h_cum
        zs = heavy_z if heavy else h_z
        rs = heavy_r if heavy else h_r_arr
        uniform = n_sites == 0
        attempts = 1 if uniform else 2
        placed = False
        for _ in range(attempts):
            k = min(int(np.searchsorted(cum, rng.random(), side="right")), len(cum) - 1)
            z, radius = zs[k], rs[k]
            cutoff = 1.4 * (radius + max(radius_max, radius)) * (1 + 1e-9)
            use27 = cutoff > nearest_exact
            x0 = x1 = x2 = 0.0
            if uniform:
                xs = rng.random((max_tries, 3))
                for t in range(max_tries):
                    x0, x1, x2 = xs[t, 0], xs[t, 1], xs[t, 2]
                    if _molecule_ok(
                        x0, x1, x2, radius, images, image_radius, n_images,
                        rot_cat, trans, orth, off_cart, off_sq, use27,
                    ):  # fmt: skip
                        placed = True
                        break
            else:
                anchors = rng.integers(0, n_sites, molecule_tries)
                u = rng.random(molecule_tries)
                normal = rng.standard_normal((molecule_tries, 3))
                for t in range(molecule_tries):
                    j = anchors[t]
                    length = (bond_lo + (bond_hi - bond_lo) * u[t]) * (site_radius[j] + radius)
                    v0, v1, v2 = normal[t, 0], normal[t, 1], normal[t, 2]
                    norm = np.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
                    f0, f1, f2 = site_frac[j, 0], site_frac[j, 1], site_frac[j, 2]
                    c0 = f0 * orth[0, 0] + f1 * orth[0, 1] + f2 * orth[0, 2] + length * (v0 / norm)
                    c1 = f0 * orth[1, 0] + f1 * orth[1, 1] + f2 * orth[1, 2] + length * (v1 / norm)
                    c2 = f0 * orth[2, 0] + f1 * orth[2, 1] + f2 * orth[2, 2] + length * (v2 / norm)
                    x0 = (c0 * frac_mat[0, 0] + c1 * frac_mat[0, 1] + c2 * frac_mat[0, 2]) % 1.0
                    x1 = (c0 * frac_mat[1, 0] + c1 * frac_mat[1, 1] + c2 * frac_mat[1, 2]) % 1.0
                    x2 = (c0 * frac_mat[2, 0] + c1 * frac_mat[2, 1] + c2 * frac_mat[2, 2]) % 1.0
                    if _molecule_ok(
                        x0, x1, x2, radius, images, image_radius, n_images,
                        rot_cat, trans, orth, off_cart, off_sq, use27,
                    ):  # fmt: skip
                        placed = True
                        break
            if placed:
                n_images = _store(
                    x0, x1, x2, z, radius, site_frac, site_radius, site_z, n_sites,
                    images, image_radius, n_images, rot_cat, trans,
                )  # fmt: skip
                n_sites += 1
                radius_max = max(radius_max, radius)
                break
        if not placed:
            if heavy:
                skipped_heavy += 1
            else:
                skipped_h += 1
    return n_sites, n_images, radius_max, skipped_heavy, skipped_h
