"""Peak-profile functions: Thompson–Cox–Hastings pseudo-Voigt (GSAS conventions) and
Finger–Cox–Jephcoat axial-divergence asymmetry by Gauss–Legendre quadrature. Angles in degrees."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from xtalforge.powder.instrument import PowderError

__all__ = ["fcj_nodes", "pseudo_voigt", "tch_parameters"]

_LN2 = math.log(2.0)


def tch_parameters(
    two_theta: np.ndarray, U: float, V: float, W: float, X: float, Y: float, Z: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TCH profile at peak positions 2θ (degrees): (FWHM_G, FWHM_L, FWHM, η), widths in degrees.

    FWHM_G = √(8 ln2 σ²)/100 with σ² = U tan²θ + V tanθ + W + Z/cos²θ (centidegrees²);
    FWHM_L = (X/cosθ + Y tanθ)/100; FWHM = (Σ c_i G^(5−i) L^i)^(1/5) with the TCH coefficients
    (1, 2.69269, 2.42843, 4.47163, 0.07842, 1); η = 1.36603 q − 0.47719 q² + 0.11116 q³, q = L/FWHM.
    """
    th = np.radians(np.asarray(two_theta, dtype=np.float64) / 2)
    tan, cos = np.tan(th), np.cos(th)
    sig2 = U * tan**2 + V * tan + W + Z / cos**2
    if (sig2 <= 0).any():
        bad = float(np.asarray(two_theta)[np.argmin(sig2)])
        raise PowderError(
            f"U, V, W, Z give a negative Gaussian variance at 2θ = {bad:.2f}° (imaginary FWHM)"
        )
    g = np.sqrt(8 * _LN2 * sig2) / 100.0
    lo = (X / cos + Y * tan) / 100.0
    if (lo < 0).any():
        raise PowderError("X, Y give a negative Lorentzian FWHM")
    fwhm = (
        g**5
        + 2.69269 * g**4 * lo
        + 2.42843 * g**3 * lo**2
        + 4.47163 * g**2 * lo**3
        + 0.07842 * g * lo**4
        + lo**5
    ) ** 0.2
    q = lo / fwhm
    eta = np.clip(1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3, 0.0, 1.0)
    return g, lo, fwhm, eta


def pseudo_voigt(dx: np.ndarray, fwhm: np.ndarray | float, eta: np.ndarray | float) -> np.ndarray:
    """Unit-area pseudo-Voigt η L + (1 − η) G at offsets ``dx`` (degrees) from the centre."""
    x2 = (dx / fwhm) ** 2
    gauss = 2.0 * math.sqrt(_LN2 / math.pi) * np.exp(-4.0 * _LN2 * x2)
    lorentz = (2.0 / math.pi) / (1.0 + 4.0 * x2)
    return (eta * lorentz + (1.0 - eta) * gauss) / fwhm


@lru_cache(maxsize=64)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [−1, 1] (cached: O(n³) to compute)."""
    return np.polynomial.legendre.leggauss(n)


def fcj_nodes(
    two_theta: np.ndarray, shl: float, hl: float, n: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Axial-divergence sub-peaks of Finger, Cox & Jephcoat (1994) for peaks at 2θ (degrees).

    The observed profile is Σ_k w_k P(2θ − 2φ_k) with the symmetric profile P; returns offsets
    2φ_k − 2θ (degrees, shape (len(2θ), m)) and weights w_k (rows sum to 1). The integral over the
    apparent angle is taken in the variable η = h/L (h the axial height reached), where
    cos 2φ = cos 2θ √(1 + η²) and the integrand W(η)/((1 + η²) sin 2φ) is smooth; Gauss–Legendre
    with ``n`` nodes on each side of the kink at η = |H − S|/L. With S/L = H/L = 0 every offset
    is 0 (a symmetric peak); below 90° the peak shifts and tails to lower angle, above 90° higher.
    """
    tt = np.atleast_1d(np.asarray(two_theta, dtype=np.float64))
    if shl < 0 or hl < 0:
        raise PowderError("S/L and H/L must be non-negative")
    if shl == 0 or hl == 0:
        return np.zeros((len(tt), 1)), np.ones((len(tt), 1))
    lo, hi = abs(hl - shl), hl + shl
    xg, wg = _gauss_legendre(n)
    pieces = [(0.0, lo), (lo, hi)] if lo > 0 else [(lo, hi)]
    eta = np.concatenate([(a + b) / 2 + (b - a) / 2 * xg for a, b in pieces])
    weq = np.concatenate([(b - a) / 2 * wg for a, b in pieces])
    w_fun = np.where(eta < lo, 2 * min(hl, shl), hi - eta)
    c2t = np.cos(np.radians(tt))[:, None]
    c2p = c2t * np.sqrt(1 + eta**2)[None, :]
    ok = np.abs(c2p) < 1.0
    c2p = np.clip(c2p, -1.0, 1.0)
    two_phi = np.degrees(np.arccos(c2p))
    s2p = np.sqrt(1.0 - c2p * c2p)  # sin 2φ ≥ 0 for 2φ in [0°, 180°]
    weight = np.where(ok, (weq * w_fun / (1 + eta**2)) / np.maximum(s2p, 1e-12), 0.0)
    total = weight.sum(axis=1, keepdims=True)
    weight = np.where(total > 0, weight / np.where(total > 0, total, 1), 0.0)
    weight[total[:, 0] == 0, 0] = 1.0  # no valid node (2θ at the grid's ends): symmetric
    offset = np.where(ok, two_phi - tt[:, None], 0.0)
    return offset, weight
