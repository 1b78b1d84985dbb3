"""Shared fixtures: paths to the optional real-data folder and small structure builders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xtalforge.crystal import CellSymmetry, Crystal

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def real_data(sub: str) -> Path:
    """Folder of the shared real structures, or skip when it is absent (e.g. a user's clone)."""
    path = REAL / sub
    if not path.is_dir():
        pytest.skip(f"real-data folder {path} is absent (only on the development machines)")
    return path


def has_cctbx() -> bool:
    """cctbx is importable (checked without importing it into this process)."""
    return importlib.util.find_spec("cctbx") is not None


def well_separated(
    sg: str,
    cell: tuple[float, ...],
    n: int,
    seed: int,
    special: list[list[float]] = (),
    min_dist: float = 1.0,
) -> Crystal:
    """Random general-position atoms ≥ ``min_dist`` Å from all symmetry images (so that no atom
    sits near a special position by chance), plus the given exact special positions."""
    rng = np.random.default_rng(seed)
    probe = CellSymmetry(cell, sg)
    rots, trans = probe.symmetry.all_ops()
    orth = probe.orthogonalization_matrix
    pts: list[np.ndarray] = [np.asarray(p, float) for p in special]
    images = [(np.einsum("sij,j->si", rots, p) + trans) % 1 for p in pts]
    for _ in range(100000):
        if len(pts) == n + len(special):
            break
        x = rng.random(3)
        img = (np.einsum("sij,j->si", rots, x) + trans) % 1
        allimg = np.concatenate([*images, img])
        d = img[:, None] - allimg[None]
        d -= np.round(d)
        dist = np.linalg.norm(d @ orth.T, axis=-1)
        dist[dist < 1e-9] = np.inf  # the image itself
        if dist.min() > min_dist:
            pts.append(x)
            images.append(img)
    if len(pts) < n + len(special):
        raise RuntimeError(f"could not place {n} separated atoms in {sg}")
    m = len(pts)
    return Crystal(
        cell,
        sg,
        rng.choice([6, 7, 8, 16, 17], m),
        np.array(pts),
        rng.uniform(0.01, 0.06, m),
        rng.uniform(0.6, 1.0, m),
    )


CELLS = {
    "triclinic": (7.1, 8.3, 9.2, 81.0, 101.0, 107.0),
    "monoclinic": (7.1, 8.3, 9.2, 90.0, 104.0, 90.0),
    "orthorhombic": (7.1, 8.3, 9.2, 90.0, 90.0, 90.0),
    "tetragonal": (7.3, 7.3, 9.2, 90.0, 90.0, 90.0),
    "trigonal": (7.3, 7.3, 9.2, 90.0, 90.0, 120.0),
    "hexagonal": (7.3, 7.3, 9.2, 90.0, 90.0, 120.0),
    "cubic": (15.1, 15.1, 15.1, 90.0, 90.0, 90.0),
}


def cell_for(sg) -> tuple[float, ...]:
    """A cell of the right lattice for a gemmi space group (any setting)."""
    if sg.ext == "R":
        return (7.3, 7.3, 7.3, 80.0, 80.0, 80.0)
    axis = sg.monoclinic_unique_axis() if sg.crystal_system_str() == "monoclinic" else "b"
    if axis == "c":
        return (7.1, 8.3, 9.2, 90.0, 90.0, 104.0)
    if axis == "a":
        return (7.1, 8.3, 9.2, 104.0, 90.0, 90.0)
    return CELLS[sg.crystal_system_str()]
