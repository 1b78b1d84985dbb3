"""Learned density modification inside charge flipping: the grid a map model works on, the
map it reads and the Fourier coefficients it gives back.

A map model (:class:`MapModel`, e.g. a trained ``density_modification`` checkpoint) takes the
map of the measured amplitudes (d ≥ its ``d_low``) with the current phases, sampled at a fixed
physical ``spacing`` (Å) on the P1 cell, and returns its estimate of the true map to its
``d_high``. Both maps are on the scale of the input's r.m.s. (σ = 1), zero mean, so the model
never sees absolute units. The same functions build the training pairs
(:mod:`xtalforge.tasks.density_modification`) and the maps inside the flipping loop
(:func:`~xtalforge.phasing.charge_flipping.charge_flip_batch`, ``dm_model``), so the two
cannot drift apart.

Convention: coefficients are stored as a real FFT gives them (``rfftn`` of the map), i.e.
conj F(h) on the half grid l ≥ 0 of :class:`~xtalforge.phasing.half_grid.HalfGrid`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from xtalforge.diffraction.maps import grid_shape
from xtalforge.errors import ReflectionError
from xtalforge.phasing.fft import irfftn, rfftn
from xtalforge.phasing.half_grid import HalfGrid

__all__ = [
    "MAX_MAP_POINTS",
    "MapModel",
    "check_map_model",
    "dm_grid",
    "half_positions",
    "map_from_half",
    "modify_maps",
]

#: Largest map (grid points) a map model is run on by default: a (96 Å / 0.35 Å)³ … about a
#: 24 Å cube at 0.3 Å; the network's activations take ~50 floats per point.
MAX_MAP_POINTS = 4_000_000


@runtime_checkable
class MapModel(Protocol):
    """What charge flipping needs of a learned density-modification step."""

    #: grid spacing in Å the model was trained on
    spacing: float
    #: finest and coarsest data resolution (Å) of its input maps, and the resolution of its output
    d_low: float
    d_low_max: float
    d_high: float

    def modify(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, n1, n2, n3) σ-scaled maps → the model's maps on the same scale and grid."""
        ...


def dm_grid(cell: tuple[float, ...], hkl: np.ndarray, spacing: float) -> tuple[int, int, int]:
    """The map model's grid for a cell (Å, °): at most ``spacing`` Å between points along each
    edge, every index of ``hkl`` held, each size a fast FFT length and a multiple of 4 (the
    U-Net halves it twice)."""
    if not spacing > 0:
        raise ReflectionError(f"grid spacing must be positive, got {spacing} Å")
    return grid_shape(cell, hkl, spacing, 1.0, (4, 4, 4))


def half_positions(half: HalfGrid, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the coefficient of each P1 index sits on ``half``: (flat half-grid index, True
    where the index is stored as its Friedel mate's conjugate)."""
    at, mate = half.to_half(half.flat(hkl)), half.to_half(half.flat(-hkl))
    return np.where(at >= 0, at, mate), at < 0


def map_from_half(coefficients: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Real maps (B, *shape) from half-grid coefficients (B, half.size) (rfftn convention, the
    inverse transform normalised by 1/N)."""
    half = (shape[0], shape[1], shape[2] // 2 + 1)
    return irfftn(coefficients.reshape(-1, *half), shape)


def modify_maps(
    model: MapModel,
    values: torch.Tensor,
    positions: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int, int],
    read: tuple[np.ndarray, np.ndarray],
) -> torch.Tensor:
    """One learned density-modification step for maps of one cell.

    ``values`` (B, m): coefficients (conj F, rfftn convention) of the map's reflections, placed
    on the model grid ``shape`` at ``positions`` (from :func:`half_positions`); the map is
    σ-scaled, modified by the model and transformed back. Returns the new coefficients (B, r)
    of the reflections at ``read`` (positions of the same kind), on the scale of ``values``."""
    half = HalfGrid(shape)
    flat, conj = (torch.as_tensor(a, device=values.device) for a in positions)
    grid = torch.zeros(len(values), half.size, dtype=values.dtype, device=values.device)
    grid[:, flat] = torch.where(conj, values.conj(), values)
    rho = map_from_half(grid, shape)
    sigma = rho.flatten(1).std(1).clamp_min(1e-30).view(-1, 1, 1, 1)
    with torch.no_grad():
        out = model.modify((rho / sigma).to(torch.float32)).to(rho.dtype) * sigma
    coef = rfftn(out.contiguous()).reshape(len(values), -1).to(values.dtype)
    r_flat, r_conj = (torch.as_tensor(a, device=values.device) for a in read)
    got = coef[:, r_flat]
    return torch.where(r_conj, got.conj(), got)


def check_map_model(model: object, points: int = 0, where: str = "data") -> None:
    """Raise unless ``model`` is a :class:`MapModel` whose map of ``points`` grid points fits
    in :data:`MAX_MAP_POINTS` (``where`` names the structure in the message)."""
    if not isinstance(model, MapModel):
        raise ReflectionError(
            "dm_model must be a density-modification model (spacing, d_low, d_low_max, d_high, "
            f"modify), got {type(model).__name__}"
        )
    if points > MAX_MAP_POINTS:
        raise ReflectionError(
            f"{where}: the cell needs a {points:,}-point map at the model's {model.spacing:g} Å "
            f"spacing, above the limit of {MAX_MAP_POINTS:,} (xtalforge.phasing."
            "density_modification.MAX_MAP_POINTS)"
        )
