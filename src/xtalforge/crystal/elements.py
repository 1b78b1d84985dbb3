"""Chemical elements and X-ray form factors (IT92 four-Gaussian + constant, from gemmi's tables)."""

from __future__ import annotations

from functools import lru_cache

import gemmi
import numpy as np

from xtalforge.errors import CrystalError

__all__ = [
    "atomic_number",
    "covalent_radius",
    "form_factor_coefficients",
    "form_factors",
    "it92_table",
    "symbol",
]


@lru_cache(maxsize=256)
def atomic_number(element: str | int) -> int:
    """Atomic number of an element symbol (``"C"``, ``"Cl"``, ``"D"`` → 1) or number; checked."""
    if isinstance(element, (int, np.integer)):
        z = int(element)
    else:
        text = str(element).strip()
        name = text.rstrip("0123456789+-")
        el = gemmi.Element(name) if name else None
        z = el.atomic_number if el is not None else 0
        if name.upper() == "D":
            z = 1
    if not 1 <= z <= 118:
        raise CrystalError(f"unknown element {element!r}")
    return z


@lru_cache(maxsize=256)
def symbol(z: int) -> str:
    """Element symbol for an atomic number."""
    return gemmi.Element(int(atomic_number(int(z)))).name


@lru_cache(maxsize=256)
def covalent_radius(z: int) -> float:
    """Covalent radius in Å (Cordero et al. 2008, as tabulated by gemmi)."""
    return float(gemmi.Element(int(z)).covalent_r)


@lru_cache(maxsize=256)
def _coefficients(z: int) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    it92 = gemmi.Element(int(z)).it92
    if it92 is None:
        raise CrystalError(f"no IT92 X-ray form factor for element {symbol(z)}")
    c = it92.get_coefs()
    return tuple(c[0:4]), tuple(c[4:8]), float(c[8])


def form_factor_coefficients(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IT92 coefficients for atomic numbers ``z``: a (n, 4), b (n, 4) in Å², c (n,)."""
    rows = [_coefficients(int(v)) for v in np.asarray(z).ravel()]
    a = np.array([r[0] for r in rows], dtype=np.float64).reshape(-1, 4)
    b = np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 4)
    c = np.array([r[2] for r in rows], dtype=np.float64)
    return a, b, c


@lru_cache(maxsize=1)
def it92_table() -> np.ndarray:
    """IT92 coefficients of every element by atomic number: (119, 9) float64 rows a₁…a₄,
    b₁…b₄ (Å²), c; NaN where gemmi has none (and row 0). Read-only."""
    table = np.full((119, 9), np.nan)
    for z in range(1, 119):
        it92 = gemmi.Element(z).it92
        if it92 is not None:
            table[z] = it92.get_coefs()
    table.setflags(write=False)
    return table


def form_factors(z: np.ndarray, stol2: np.ndarray) -> np.ndarray:
    """X-ray form factors f(s) in electrons, shape (len(z), len(stol2)).

    ``stol2`` is (sinθ/λ)² = 1/(4d²) in Å⁻²; f(s) = Σ a_i exp(−b_i s²) + c.
    """
    a, b, c = form_factor_coefficients(z)
    s2 = np.asarray(stol2, dtype=np.float64)
    return np.einsum("ni,nir->nr", a, np.exp(-b[:, :, None] * s2[None, None, :])) + c[:, None]
