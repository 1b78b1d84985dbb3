"""Small structures built in code, for demos, tests and documentation (no data files needed)."""

from __future__ import annotations

import math

import numpy as np

from xtalforge.crystal.cell import CellSymmetry
from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import resolve_space_group, symmetry_info

__all__ = ["quartz", "random_crystal", "sodium_chloride"]


def sodium_chloride() -> Crystal:
    """Rock salt, Fm-3m, a = 5.6402 Å (Na at 4a, Cl at 4b), U_iso 0.01 Å²."""
    return Crystal(
        (5.6402, 5.6402, 5.6402, 90, 90, 90),
        "F m -3 m",
        [11, 17],
        [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
        [0.01, 0.01],
        metadata={"name": "NaCl"},
    )


def quartz() -> Crystal:
    """α-quartz (low quartz), P3_221, a = 4.9133, c = 5.4053 Å; Si at 3a (0.4697, 0, 2/3),
    O at 6c (0.4135, 0.2669, 0.7858): Si–O = 1.604 and 1.613 Å (Levien et al. 1980)."""
    return Crystal(
        (4.9133, 4.9133, 5.4053, 90, 90, 120),
        "P 32 2 1",
        ["Si", "O"],
        [[0.4697, 0.0, 2 / 3], [0.4135, 0.2669, 0.7858]],
        [0.0066, 0.0143],
        metadata={"name": "alpha-quartz"},
    )


def _lattice_cell(sg_symbol: str, volume: float, rng: np.random.Generator) -> tuple[float, ...]:
    sg = resolve_space_group(sg_symbol)
    system = sg.crystal_system_str()
    edges = volume ** (1 / 3) * rng.uniform(0.8, 1.25, 3)
    a, b, c = edges
    if system == "triclinic":
        return (a, b, c, *rng.uniform(75, 105, 3))
    if system == "monoclinic":
        beta = rng.uniform(95, 115)
        return (a, b, c / math.sin(math.radians(beta)), 90.0, beta, 90.0)
    if system == "orthorhombic":
        return (a, b, c, 90.0, 90.0, 90.0)
    if system == "tetragonal":
        return (a, a, c, 90.0, 90.0, 90.0)
    if system in ("trigonal", "hexagonal"):
        if sg.ext == "R":
            return (a, a, a, 80.0, 80.0, 80.0)
        return (a, a, c, 90.0, 90.0, 120.0)
    return (a, a, a, 90.0, 90.0, 90.0)


def random_crystal(
    spacegroup: str = "P 1 21 1",
    n_atoms: int = 20,
    seed: int = 0,
    elements: tuple[str, ...] = ("C", "C", "C", "N", "O"),
    volume_per_atom: float = 18.0,
    min_distance: float = 1.2,
    u_iso: tuple[float, float] = (0.01, 0.05),
) -> Crystal:
    """A random structure on general positions with all interatomic distances ≥ ``min_distance``
    Å (symmetry copies and periodic images included); a simple, seeded example builder.
    Cells have ``volume_per_atom`` Å³ per atom of the unit cell."""
    rng = np.random.default_rng(seed)
    sym = symmetry_info(spacegroup)
    rots, trans = sym.all_ops()
    cell = _lattice_cell(spacegroup, volume_per_atom * n_atoms * len(rots), rng)
    probe = CellSymmetry(cell, spacegroup)
    orth = probe.orthogonalization_matrix
    placed: list[np.ndarray] = []  # all images of accepted atoms
    frac: list[np.ndarray] = []
    for _ in range(200 * n_atoms):
        if len(frac) == n_atoms:
            break
        x = rng.random(3)
        images = (np.einsum("sij,j->si", rots, x) + trans) % 1.0
        cand = np.concatenate([*placed, images]) if placed else images
        # distances from every image of x to every placed image and to its own other images
        diff = images[:, None, :] - cand[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ orth.T, axis=-1)
        own = np.arange(len(images))
        dist[own, len(cand) - len(images) + own] = np.inf
        if dist.min() >= min_distance:
            placed.append(images)
            frac.append(x)
    z = rng.choice(list(elements), len(frac))
    u = rng.uniform(*u_iso, len(frac))
    meta = {
        "name": f"random-{sym.spacegroup.short_name()}-{seed}",
        "seed": seed,
        "builder": "xtalforge.crystal.examples.random_crystal",
    }
    return Crystal(cell, spacegroup, z, np.array(frac), u, metadata=meta)
