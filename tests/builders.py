"""Shared test builders: the optional real-data folder, structures with well-separated atoms,
cells for any lattice, small generator configs and dataset specs, modules of every resolution
model, and independent references (gemmi structure factors, a hand-written PDB model)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from xtalforge.crystal import CellSymmetry, Crystal
from xtalforge.tasks.resolution import Extension, ResolutionExtension, collate_reflections

GEN = {
    "name": "t",
    "spacegroups": ["P 1 21 1"],
    "atoms": [5, 8],
    "cell": {"strategy": "volume_per_atom", "v_atom": [14.0, 22.0], "a_min": 4.0, "a_max": 8.0},
    "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
    "placement": {"method": "uniform", "min_distance": 1.2},
    "u_iso": [0.01, 0.04],
}


SPEC = {
    "name": "train-small",
    "generator": GEN,
    "n": 64,
    "seed": 3,
    "shard_size": 32,
    "row_group_size": 8,
    "compute": {"d_high": 1.0, "d_low": 1.2},
    "splits": {"train": 0.75, "val": 0.125, "test": 0.125},
}


TASK = Extension(1.2, 1.0, "wilson")  # O(1) values: a batch is memorised in a few hundred steps


TINY = {**GEN, "atoms": [3, 5], "cell": {**GEN["cell"], "a_max": 6.0}}


SMALL_PARAMS = {
    "unet3d": {"channels": (16, 32, 32)},
    "fft_unet": {"channels": (16, 32, 32)},
    "xrd_transformer": {"embed_dim": 48, "heads": 4, "depth": 3, "h_max": 10},
}


# variants tested like the models: name → (model, params)
VARIANTS = {
    **{name: (name, params) for name, params in SMALL_PARAMS.items()},
    "xrd_transformer+options": (
        "xrd_transformer",
        {**SMALL_PARAMS["xrd_transformer"], "neighbourhood": 1, "rope": True},
    ),
}


def module_for(variant: str, lr: float = 3e-3) -> ResolutionExtension:
    name, params = VARIANTS[variant]
    return ResolutionExtension(
        {"name": name, "size": "small", "params": params},
        {"d_low": 1.2, "d_high": 1.0, "normalization": "wilson"},
        {"name": "adam", "lr": lr, "scheduler": "none"},
    )


def batch_of(module: ResolutionExtension, items: tuple[list[dict], list[dict]]) -> dict:
    grid_items, list_items = items
    if module.input_mode == "list":
        return collate_reflections(list_items)
    return {
        k: torch.stack([it[k] for it in grid_items])
        if torch.is_tensor(grid_items[0][k])
        else torch.tensor([it[k] for it in grid_items])
        for k in grid_items[0]
    }


def gemmi_sf(c: Crystal, hkl: np.ndarray) -> np.ndarray:
    """Independent oracle: gemmi's small-structure calculator (occupancy divided by the site
    multiplicity with gemmi's own special-position search)."""
    ss = gemmi.SmallStructure()
    ss.cell = c.unit_cell
    ss.symops = [op.triplet() for op in c.spacegroup.operations()]
    ss.determine_and_set_spacegroup("S")
    for i, (z, x, u, o) in enumerate(zip(c.z, c.frac, c.u_iso, c.occ)):
        site = gemmi.SmallStructure.Site()
        site.label = f"A{i}"
        site.element = gemmi.Element(int(z))
        site.type_symbol = site.element.name
        site.fract = gemmi.Fractional(*x)
        site.u_iso = u
        site.occ = o
        ss.add_site(site)
    ss.setup_cell_images()
    ss.change_occupancies_to_crystallographic()
    calc = gemmi.StructureFactorCalculatorX(ss.cell)
    return np.array([calc.calculate_sf_from_small_structure(ss, [int(v) for v in h]) for h in hkl])


PDB_TEXT = """\
CRYST1   10.000   11.000   12.000  90.00 100.00  90.00 P 1 21 1      2
ATOM      1  C   ALA A   1       1.000   2.000   3.000  1.00 10.00           C
ATOM      2  O   ALA A   1       3.000   2.500   4.000  1.00 12.00           O
ATOM      3  N   ALA A   1       2.200   4.100   1.500  1.00 11.00           N
END
"""


SMALL = {
    "name": "small",
    "generator": "phai-p21c",
    "n": 48,
    "seed": 5,
    "shard_size": 12,
    "row_group_size": 4,
    "compute": {
        "d_high": 0.9,
        "d_low": 1.3,
        "patterson": [{"name": "low", "shape": [8, 8, 8], "d_min": 1.3}],
    },
}


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


def cli_env() -> dict[str, str]:
    """The environment for ``python -m xtalforge.cli`` in a subprocess (this checkout first)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def cli(*args: str) -> list[str]:
    """The command line of ``xtalforge ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "xtalforge.cli", *map(str, args)]


def kill_when(
    args: list[str], ready: Callable[[], bool], timeout: float = 300.0
) -> subprocess.Popen:
    """Start ``args`` in a process group of its own, SIGKILL the group as soon as ``ready()``
    holds (or the process ends, or ``timeout`` s pass), and return the reaped process."""
    proc = subprocess.Popen(
        args,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc
