"""Unit cells of the right lattice system (reference setting) for a space group.

Edges in Å, angles in degrees. Oblique cells come from skew matrices: the lattice vectors are
a = a1 (1, 0, 0), b = a2 (s1, 1, 0), c = a3 (s2, s3, 1) (rows), which keeps V = a1 a2 a3;
monoclinic (unique axis b) cells use the c-skew in the a–c plane only.
"""

from __future__ import annotations

import math

import gemmi
import numpy as np

from xtalforge.generate.config import CellConfig, LogNormal

__all__ = ["bounded_ratio_edges", "sample_cell", "sample_volume"]


def sample_volume(cfg: CellConfig, n_cell_atoms: int, rng: np.random.Generator) -> float:
    """Cell volume (Å³) for the configured strategy; a log-normal volume is truncated to
    [a_min³, a_max³] (rejection), so that every edge can respect its bounds."""
    if cfg.strategy == "volume_first":
        if isinstance(cfg.volume, LogNormal):
            # truncated to the volumes the edge bounds allow (a_min³ … a_max³)
            lo, hi = math.log(cfg.a_min) * 3, math.log(cfg.a_max) * 3
            for _ in range(100):
                log_v = rng.normal(cfg.volume.mu, cfg.volume.sigma)
                if lo <= log_v <= hi:
                    break
            return float(np.exp(min(max(log_v, lo), hi)))
        return float(rng.uniform(*cfg.volume))  # type: ignore[misc]  # a Range here
    return float(rng.uniform(*cfg.v_atom)) * n_cell_atoms


def bounded_ratio_edges(
    volume: float, a_min: float, a_max: float, r: float, rng: np.random.Generator
) -> np.ndarray:
    """Three edges with a1·a2·a3 = V, each in [a_min, a_max] where possible and ratios ≤ r:
    a1 ~ U(max{a_min, V/a_max², V^⅓/r, √(V/(r a_max))}, V^⅓),
    a2 ~ U(max{a1, V/(a1 a_max), √(V/(r a1))}, min{a_max, r a1}), a3 = V/(a1 a2), permuted."""
    v3 = volume ** (1 / 3)
    lo1 = max(a_min, volume / a_max**2, v3 / r, math.sqrt(volume / (r * a_max)))
    a1 = rng.uniform(min(lo1, v3), v3)
    lo2 = max(a1, volume / (a1 * a_max), math.sqrt(volume / (r * a1)))
    hi2 = min(a_max, r * a1)
    a2 = rng.uniform(min(lo2, hi2), hi2) if hi2 > lo2 else lo2
    a3 = volume / (a1 * a2)
    return rng.permutation(np.array([a1, a2, a3]))


def _edges(cfg: CellConfig, volume: float, rng: np.random.Generator) -> np.ndarray:
    if cfg.strategy == "uniform_edges":
        return rng.uniform(cfg.a_min, cfg.a_max, 3)
    return bounded_ratio_edges(volume, cfg.a_min, cfg.a_max, cfg.ratio, rng)


def _angles_from_vectors(vecs: np.ndarray) -> tuple[float, float, float, float, float, float]:
    a, b, c = vecs
    la, lb, lc = (float(np.linalg.norm(v)) for v in (a, b, c))
    alpha = math.degrees(math.acos(np.dot(b, c) / (lb * lc)))
    beta = math.degrees(math.acos(np.dot(a, c) / (la * lc)))
    gamma = math.degrees(math.acos(np.dot(a, b) / (la * lb)))
    return la, lb, lc, alpha, beta, gamma


def sample_cell(
    cfg: CellConfig, sg: gemmi.SpaceGroup, n_cell_atoms: int, rng: np.random.Generator
) -> tuple[float, ...]:
    """A cell for ``sg`` (its lattice system, reference setting) holding ``n_cell_atoms`` atoms."""
    system = sg.crystal_system_str()
    volume = sample_volume(cfg, n_cell_atoms, rng)
    if system == "cubic":
        a = volume ** (1 / 3)
        return (a, a, a, 90.0, 90.0, 90.0)
    if system in ("tetragonal", "hexagonal", "trigonal"):
        hexa = system != "tetragonal"
        base = volume / (math.sin(math.radians(120)) if hexa else 1.0)
        if cfg.strategy == "uniform_edges":
            a, c = rng.uniform(cfg.a_min, cfg.a_max, 2)
        else:  # c/a within [1/r, r]
            ratio = math.exp(rng.uniform(-math.log(cfg.ratio), math.log(cfg.ratio)))
            a = (base / ratio) ** (1 / 3)
            c = ratio * a
        if sg.ext == "R":  # hexagonal axes for R groups (the reference setting gemmi uses)
            return (a, a, c, 90.0, 90.0, 120.0)
        return (a, a, c, 90.0, 90.0, 120.0) if hexa else (a, a, c, 90.0, 90.0, 90.0)
    a1, a2, a3 = _edges(cfg, volume, rng)
    if system == "orthorhombic":
        return (float(a1), float(a2), float(a3), 90.0, 90.0, 90.0)
    s_min = math.tan(math.radians(90.0 - cfg.beta_max))
    if system == "monoclinic":
        lo = max(s_min, -math.sqrt(max((cfg.a_max / a3) ** 2 - 1, 0.0)))
        s3 = rng.uniform(lo, 0.0)
        # the lengths and angles of a = (a1, 0, 0), b = (0, a2, 0), c = (a3 s3, 0, a3):
        # the values _angles_from_vectors gives, without its dozen numpy calls
        cx, cz = float(a3 * s3), float(a3)
        lc = math.sqrt(cx * cx + 0.0 + cz * cz)
        beta = math.degrees(math.acos(float(a1) * cx / (float(a1) * lc)))
        return float(a1), float(a2), lc, 90.0, beta, 90.0
    # triclinic: skews in b (s1) and c (s2, s3), each bounded like the monoclinic one
    s1, s2, s3 = rng.uniform(s_min, -s_min, 3) * 0.5
    vecs = np.array([[a1, 0, 0], [a2 * s1, a2, 0], [a3 * s2, a3 * s3, a3]])
    return _angles_from_vectors(vecs)
