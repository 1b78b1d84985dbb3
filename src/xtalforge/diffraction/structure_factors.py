"""Structure factors by direct summation (numpy), vectorised over reflections and atoms.

F(h) = Σ_j (occ_j / m_j) f_j(s) exp(−8π² U_j s²) Σ_{g ∈ G} exp(2πi h·(R_g x_j + t_g)),

with s = sinθ/λ = 1/(2d), f_j the IT92 form factor and m_j the order of atom j's site-symmetry
group (so an atom on a special position counts once per distinct copy). For reflections that are
not systematically absent the lattice centrings contribute a factor n_cen, so only the coset
representatives R_s of the point group are summed; when the inversion centre sits at the origin
the sum is 2 Σ cos over half of them and F is real.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from xtalforge.crystal.elements import form_factors
from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import SymmetryInfo, symmetry_info_from_hall
from xtalforge.diffraction.reflections import Reflections, reflections
from xtalforge.errors import ReflectionError

__all__ = ["atom_images", "calculated_data", "half_ops", "structure_factors"]

#: Largest number of (reflection × atom-image) terms held in memory at once by the numpy path.
CHUNK_TERMS = 1 << 22


def half_ops(sym: SymmetryInfo) -> np.ndarray:
    """Indices of the coset representatives to sum: all, or one of each ±R pair when the group
    has an inversion centre at the origin (then F = 2 Σ cos over these)."""
    return _half_ops(sym.spacegroup.hall)


@lru_cache(maxsize=512)
def _half_ops(hall: str) -> np.ndarray:
    sym = symmetry_info_from_hall(hall)
    if not sym.centrosymmetric_origin:
        return np.arange(len(sym.rotations))
    chosen: list[int] = []
    for i, rot in enumerate(sym.rotations):
        if not any((sym.rotations[j] == -rot).all() for j in chosen):
            chosen.append(i)
    out = np.array(chosen)
    out.setflags(write=False)
    return out


def atom_images(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, bool]:
    """Symmetry images of the asymmetric-unit atoms used by the direct sum.

    Returns (images (N, S', 3) fractional, weight (N,) = n_cen·occ/m (×2 if centric),
    real) where ``real`` says F is real (inversion centre at the origin).
    """
    sym = crystal.symmetry
    ops = half_ops(sym)
    rots = sym.rotations[ops].astype(np.float64)
    images = np.matmul(crystal.frac, rots.transpose(0, 2, 1)).transpose(1, 0, 2)
    images += sym.translations[ops]
    weight = len(sym.centrings) * crystal.occ / crystal.site_symmetry_order()
    real = bool(sym.centrosymmetric_origin)
    if real:
        weight = 2.0 * weight
    return images, weight, real


def structure_factors(
    crystal: Crystal, refl: Reflections | float, dtype: type = np.float64
) -> np.ndarray:
    """Complex structure factors F(hkl) in electrons for the reflections ``refl``.

    ``refl`` is a :class:`Reflections` of this crystal's cell and space group, or a d_min in Å.
    ``dtype`` (float64 or float32) sets the precision of the trigonometric sums; phases are
    reduced modulo 2π in float64 first, so float32 loses no accuracy to large indices.
    Returns a complex128 (or complex64) array aligned with ``refl.hkl``.
    """
    if not isinstance(refl, Reflections):
        refl = reflections(crystal, float(refl))
    if refl.spacegroup.hall != crystal.spacegroup.hall:
        raise ReflectionError(
            f"reflections are for {refl.spacegroup.xhm()}, crystal is {crystal.spacegroup.xhm()}"
        )
    if not np.allclose(refl.cell, crystal.cell, rtol=1e-6):
        raise ReflectionError(f"reflections are for cell {refl.cell}, crystal has {crystal.cell}")
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.float32, np.float64):
        raise ValueError("dtype must be float32 or float64")
    ctype = np.complex64 if np_dtype == np.float32 else np.complex128
    images, weight, real = atom_images(crystal)
    n_atoms, n_img = images.shape[:2]
    stol2 = refl.stol2
    elements, elem_idx = np.unique(crystal.z, return_inverse=True)
    f_el = form_factors(elements, stol2)  # (E, R)
    b_iso = 8 * math.pi**2 * crystal.u_iso
    flat = images.reshape(-1, 3).T  # (3, N*S)
    hkl = refl.hkl.astype(np.float64)
    out = np.empty(len(refl), dtype=ctype)
    step = max(1, CHUNK_TERMS // max(1, n_atoms * n_img))
    for lo in range(0, len(refl), step):
        hi = min(lo + step, len(refl))
        p = hkl[lo:hi] @ flat
        p -= np.round(p)
        arg = (2 * np.pi * p).astype(np_dtype).reshape(hi - lo, n_atoms, n_img)
        w = (f_el[elem_idx][:, lo:hi].T * weight * np.exp(-np.outer(stol2[lo:hi], b_iso))).astype(
            np_dtype
        )  # (r, N)
        re = np.einsum("ra,ra->r", w, np.cos(arg).sum(axis=2))
        if real:
            out[lo:hi] = re
        else:
            out[lo:hi] = re + 1j * np.einsum("ra,ra->r", w, np.sin(arg).sum(axis=2))
    return out


def calculated_data(crystal: Crystal, d_min: float) -> tuple[Reflections, np.ndarray]:
    """(ASU reflections to ``d_min`` Å, their complex structure factors) of a structure."""
    refl = reflections(crystal, d_min)
    return refl, structure_factors(crystal, refl)
