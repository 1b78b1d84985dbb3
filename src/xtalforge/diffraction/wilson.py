"""Wilson statistics: normalised structure factors (E values) and the Wilson scale/B fit.

|E|² = |F|² / (ε Σ_j f_j²(s) exp(−2B s²)) with s = sinθ/λ. For a known model the expected
intensity is Σ over the unit-cell atoms of occ² f_j²(s) exp(−2 B_j s²) (each atom its own B);
for measured amplitudes ``wilson_fit`` finds K and B such that
⟨|F|²/ε⟩ = K Σ f²(s) exp(−2B s²) over resolution shells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from xtalforge.crystal.elements import atomic_number, form_factors
from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.reflections import Reflections, reflections_from_hkl
from xtalforge.errors import ReflectionError

__all__ = [
    "ACENTRIC_MEAN",
    "CENTRIC_MEAN",
    "expected_intensity",
    "normalize",
    "sum_f2",
    "wilson_fill",
    "wilson_fit",
    "wilson_rms",
]


#: ⟨|F|⟩ / √⟨|F|²⟩ of Wilson's acentric (Rayleigh) distribution.
ACENTRIC_MEAN = float(np.sqrt(np.pi) / 2)
#: ⟨|F|⟩ / √⟨|F|²⟩ of Wilson's centric (Gaussian) distribution.
CENTRIC_MEAN = float(np.sqrt(2 / np.pi))


def sum_f2(composition: Mapping[Any, float], stol2: np.ndarray) -> np.ndarray:
    """Σ_j n_j f_j²(s) for a unit-cell composition {element: count}, at (sinθ/λ)² (Å⁻²)."""
    z = np.array([atomic_number(k) for k in composition], dtype=np.int64)
    n = np.array(list(composition.values()), dtype=np.float64)
    return n @ form_factors(z, stol2) ** 2


def expected_intensity(crystal: Crystal, refl: Reflections) -> np.ndarray:
    """Σ over unit-cell atoms of occ² f²(s) exp(−2 B_j s²): ⟨|F|²⟩/ε for the model (e²)."""
    n_copies = crystal.symmetry.n_ops / crystal.site_symmetry_order()
    stol2 = refl.stol2
    elements, which = np.unique(crystal.z, return_inverse=True)
    f2 = form_factors(elements, stol2) ** 2  # (E, R): once per element, not per atom
    dw = np.exp(-16 * math.pi**2 * np.outer(crystal.u_iso, stol2))  # (N, R)
    onehot = (which[None, :] == np.arange(len(elements))[:, None]).astype(np.float64)  # (E, N)
    weighted = onehot @ ((n_copies * crystal.occ**2)[:, None] * dw)  # (E, R)
    return (f2 * weighted).sum(axis=0)


def _check_amplitudes(values: np.ndarray, refl: Reflections) -> np.ndarray:
    amp = np.abs(np.asarray(values))
    if amp.shape != (len(refl),):
        raise ReflectionError(
            f"{amp.shape[0] if amp.ndim else 0} amplitudes for {len(refl)} reflections"
        )
    if not np.isfinite(amp).all():
        bad = int(np.argmin(np.isfinite(amp)))
        raise ReflectionError(f"amplitude of reflection {tuple(refl.hkl[bad])} is not finite")
    return amp


def wilson_fit(
    amplitudes: np.ndarray,
    refl: Reflections,
    composition: Mapping[Any, float] | None = None,
    n_bins: int = 20,
    d_max_fit: float = 4.5,
) -> tuple[float, float]:
    """Fit ⟨|F|²/ε⟩ = K Σf²(s) exp(−2B s²): returns (K, B) with B in Å².

    ``composition`` is the unit-cell content {element: count}; without it the scattering of
    one carbon atom is used, so K absorbs the number of atoms and only B is physical. Shells of
    equal count with d < ``d_max_fit`` Å (all shells when too few are left) enter a
    least-squares line of ln⟨|F|²/(ε Σf²)⟩ against s².
    """
    amp = _check_amplitudes(amplitudes, refl)
    comp: Mapping[Any, float] = composition if composition else {"C": 1.0}
    stol2 = refl.stol2
    y = amp**2 / (refl.epsilon * sum_f2(comp, stol2))
    use = refl.d < d_max_fit
    if use.sum() < 3 * n_bins:
        use = np.ones(len(refl), dtype=bool)
    order = np.argsort(stol2[use])
    n_bins = max(2, min(n_bins, int(use.sum()) // 10))
    bins = np.array_split(order, n_bins)
    s2 = np.array([stol2[use][b].mean() for b in bins])
    mean = np.array([y[use][b].mean() for b in bins])
    ok = mean > 0
    if ok.sum() < 2:
        raise ReflectionError("too few non-zero reflections for a Wilson fit")
    slope, intercept = np.polyfit(s2[ok], np.log(mean[ok]), 1)
    return float(math.exp(intercept)), float(-slope / 2)


def normalize(
    values: np.ndarray,
    refl: Reflections,
    crystal: Crystal | None = None,
    k: float | None = None,
    b: float | None = None,
    composition: Mapping[Any, float] | None = None,
) -> np.ndarray:
    """Normalised amplitudes |E| for structure factors or amplitudes ``values``.

    With ``crystal`` the expectation comes from the model itself (exact for generated data);
    otherwise from a Wilson scale ``k`` and ``b`` (Å²), fitted with :func:`wilson_fit` when not
    given (``composition`` as there). Centric and acentric reflections are both normalised to
    ⟨|E|²⟩ = 1 through ε.
    """
    amp = _check_amplitudes(values, refl)
    if crystal is not None:
        expected = refl.epsilon * expected_intensity(crystal, refl)
    else:
        if k is None or b is None:
            k_fit, b_fit = wilson_fit(amp, refl, composition)
            k = k_fit if k is None else k
            b = b_fit if b is None else b
        comp: Mapping[Any, float] = composition if composition else {"C": 1.0}
        expected = refl.epsilon * k * sum_f2(comp, refl.stol2) * np.exp(-2 * b * refl.stol2)
    return amp / np.sqrt(expected)


def wilson_rms(
    amp: np.ndarray,
    known: np.ndarray,
    hkl: np.ndarray,
    cell: tuple,
    sg: str,
    z: np.ndarray | None,
    refl: Reflections | None = None,
) -> np.ndarray:
    """√(ε K Σf² exp(−2B s²)) at every reflection, K and B fitted on the ``known`` amplitudes
    (composition from the atomic numbers ``z``; one carbon when unknown, K absorbing the rest)."""
    refl = refl if refl is not None else reflections_from_hkl(hkl, cell, sg)
    comp: dict = {}
    for v in [] if z is None else np.asarray(z).tolist():
        comp[int(v)] = comp.get(int(v), 0) + 1
    comp = comp or {"C": 1.0}
    k, b = wilson_fit(amp[known], refl.subset(known), comp)
    return np.sqrt(refl.epsilon * k * sum_f2(comp, refl.stol2) * np.exp(-2 * b * refl.stol2))


def wilson_fill(
    amp: np.ndarray, known: np.ndarray, refl: Reflections, z: np.ndarray | None = None
) -> np.ndarray:
    """Every reflection's Wilson expectation ⟨|F|⟩ (√π/2 or √(2/π) × √(εKΣf²e^{−2Bs²}) for
    acentric or centric reflections), K and B fitted on the ``known`` amplitudes: the baseline
    that fills unmeasured reflections."""
    rms = wilson_rms(amp, known, refl.hkl, refl.cell, refl.spacegroup.xhm(), z, refl)
    return np.where(refl.centric, CENTRIC_MEAN, ACENTRIC_MEAN) * rms
