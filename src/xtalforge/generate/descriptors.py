"""Per-structure descriptors shared by ``xtalforge stats`` and ``xtalforge compare``.

Edges in Å, volumes in Å³, angles in degrees, displacement parameters in Å².
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xtalforge.crystal.model import Crystal
from xtalforge.errors import XtalforgeError
from xtalforge.io import read_cif
from xtalforge.io.cif_structure import cif_entries, entry_name

__all__ = ["CellDescriptors", "cell_descriptors", "interatomic_distances", "read_cif_folder"]


@dataclass(frozen=True)
class CellDescriptors:
    """Shape descriptors of a set of cells; edge ratios use the sorted edges a1 ≤ a2 ≤ a3."""

    volume: np.ndarray
    largest_edge: np.ndarray
    ratio_32: np.ndarray  # a3 / a2
    ratio_21: np.ndarray  # a2 / a1
    beta: np.ndarray  # monoclinic cells only (degrees)


def cell_descriptors(crystals: list[Crystal]) -> CellDescriptors:
    """Volume, largest edge, sorted-edge ratios and monoclinic β of each crystal."""
    edges = np.sort(
        np.array([c.cell[:3] for c in crystals], dtype=np.float64).reshape(-1, 3), axis=1
    )
    mono = [c.cell[4] for c in crystals if c.spacegroup.crystal_system_str() == "monoclinic"]
    return CellDescriptors(
        volume=np.array([c.volume for c in crystals]),
        largest_edge=edges[:, 2],
        ratio_32=edges[:, 2] / edges[:, 1],
        ratio_21=edges[:, 1] / edges[:, 0],
        beta=np.array(mono),
    )


def interatomic_distances(
    crystal: Crystal, r_max: float = 4.0, hydrogens: bool = False
) -> np.ndarray:
    """Distances (Å) from each asymmetric-unit atom to every atom of the crystal (symmetry copies
    and periodic images) up to ``r_max``, excluding the zero distance to itself; hydrogens are
    left out unless asked for. Each pair is counted once per asymmetric-unit atom."""
    keep = np.ones(crystal.n_atoms, bool) if hydrogens else crystal.z != 1
    if not keep.any():
        return np.zeros(0)
    pos, idx = crystal.cell_positions()
    pos = pos[keep[idx]]
    centres = crystal.frac[keep] % 1.0
    orth = crystal.orthogonalization_matrix
    # enough lattice translations to cover r_max: |n_i| ≤ ceil(r_max / d_i) with d_i the
    # spacing of the lattice planes normal to reciprocal axis i
    recip = np.linalg.inv(orth)  # rows: reciprocal vectors (1/Å)
    reach = np.ceil(r_max * np.linalg.norm(recip, axis=1)).astype(int) + 1
    grids = [np.arange(-r, r + 1) for r in reach]
    shifts = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)
    diff = pos[None, :, :] - centres[:, None, :]  # (N, M, 3)
    diff -= np.round(diff)
    out = []
    for s in shifts:
        d = np.linalg.norm((diff + s) @ orth.T, axis=-1)
        out.append(d[(d > 1e-3) & (d <= r_max)])
    return np.concatenate(out)


def read_cif_folder(
    folder: str | Path, limit: int | None = None
) -> tuple[list[Crystal], list[tuple[str, str]]]:
    """All readable structures in ``folder`` (``*.cif``, sorted by name; every structure block of
    a multi-block file) and, for each that could not be read, (name, reason). Raises when the
    folder has no CIF at all."""
    crystals, failed = [], []
    for path, block in cif_entries(folder)[:limit]:
        try:
            with warnings.catch_warnings():  # kept in c.metadata["warnings"]
                warnings.simplefilter("ignore")
                c = read_cif(path, block=block)
        except XtalforgeError as exc:
            failed.append((entry_name(path, block), str(exc)))
            continue
        if c.n_atoms == 0:
            failed.append((entry_name(path, block), "no atoms"))
            continue
        crystals.append(c)
    return crystals, failed
