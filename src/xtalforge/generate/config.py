"""Validated generator configuration (pydantic), loadable from YAML presets.

All lengths in Å, volumes in Å³, angles in degrees, displacement parameters in Å².
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xtalforge.crystal.elements import atomic_number
from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.errors import CrystalError, XtalforgeError
from xtalforge.yaml_config import find_preset, read_mapping, validation_message

__all__ = [
    "CellConfig",
    "CompositionConfig",
    "ConfigError",
    "GeneratorConfig",
    "PlacementConfig",
    "load_config",
    "preset_path",
]

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "generators"

Range = tuple[float, float]


class ConfigError(XtalforgeError):
    """An invalid generator (or other) configuration."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ordered(name: str, r: Range | None) -> None:
    if r is not None and r[0] > r[1]:
        raise ValueError(f"{name}: lower bound {r[0]} exceeds upper bound {r[1]}")


class LogNormal(_Strict):
    """V ~ LogNormal(mu, sigma) of ln V (Å³)."""

    mu: float
    sigma: float = Field(gt=0)


class CellConfig(_Strict):
    """How cells are drawn.

    ``volume_per_atom``: V = v_atom × atoms in the cell, v_atom ~ U(v_atom), random shape within
    the edge bounds (thesis strategy without its fixed template shape). ``uniform_edges``: each
    free edge ~ U(a_min, a_max). ``volume_first``: V ~ LogNormal or U(volume), then edges by the
    bounded-ratio procedure with ratio r. Oblique angles come from skew matrices (β ≤ beta_max).
    """

    strategy: Literal["volume_per_atom", "uniform_edges", "volume_first"] = "volume_per_atom"
    v_atom: Range = (14.0, 22.0)
    a_min: float = Field(3.0, gt=0)
    a_max: float = Field(30.0, gt=0)
    volume: Range | LogNormal | None = None
    ratio: float = Field(1.8, ge=1.0)
    beta_max: float = Field(125.0, gt=90.0, lt=180.0)

    @model_validator(mode="after")
    def _check(self) -> CellConfig:
        _ordered("v_atom", self.v_atom)
        if self.v_atom[0] <= 0:
            raise ValueError("v_atom must be positive (Å³ per atom)")
        if self.a_min > self.a_max:
            raise ValueError(f"a_min ({self.a_min} Å) exceeds a_max ({self.a_max} Å)")
        if self.strategy == "volume_first" and self.volume is None:
            raise ValueError("strategy volume_first needs volume: [V_min, V_max] or {mu, sigma}")
        if isinstance(self.volume, tuple):
            _ordered("volume", self.volume)
            if self.volume[1] > self.a_max**3 or self.volume[0] < self.a_min**3 * 0.2:
                raise ValueError(
                    f"volume range {self.volume} Å³ is impossible with edges "
                    f"{self.a_min}–{self.a_max} Å"
                )
        return self


class CompositionConfig(_Strict):
    """Element weights (general positions), optional separate weights for special positions,
    and the hydrogen fraction x_H ~ U(h_fraction) (None: no hydrogens)."""

    elements: dict[str, float] = Field(default_factory=lambda: dict(_default_elements()))
    special_elements: dict[str, float] | None = None
    h_fraction: Range | None = None

    @field_validator("elements", "special_elements")
    @classmethod
    def _known(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("at least one element is needed")
        for el, w in v.items():
            try:
                atomic_number(el)
            except CrystalError:
                raise ValueError(f"unknown element {el!r}") from None
            if w < 0:
                raise ValueError(f"weight of {el} is negative")
        if sum(v.values()) <= 0:
            raise ValueError("element weights sum to zero")
        return v

    @model_validator(mode="after")
    def _check(self) -> CompositionConfig:
        _ordered("h_fraction", self.h_fraction)
        if self.h_fraction is not None and not 0 <= self.h_fraction[0] <= self.h_fraction[1] < 1:
            raise ValueError("h_fraction must lie in [0, 1)")
        return self


class PlacementConfig(_Strict):
    """``uniform``: rejection with a minimum distance (Å) over all symmetry copies and periodic
    images, ≤ max_tries per atom. ``molecule``: artificial molecules, each atom bonded to a placed
    one at U(bond_scale)·(R_A + R_i) (Cordero covalent radii). Special positions are occupied
    first, each independently with probability ``special_probability``."""

    method: Literal["uniform", "molecule"] = "uniform"
    min_distance: float = Field(1.2, gt=0)
    max_tries: int = Field(10, ge=1)
    special_probability: float = Field(0.05, ge=0, le=1)
    bond_scale: Range = (0.9, 1.1)
    molecule_tries: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _check(self) -> PlacementConfig:
        _ordered("bond_scale", self.bond_scale)
        return self


class GeneratorConfig(_Strict):
    """Everything that defines a generator; ``Generator.from_config(cfg).sample(seed)``."""

    name: str = "custom"
    spacegroups: dict[str, float] | list[str] = Field(default_factory=lambda: ["P 1 21/c 1"])
    atoms: tuple[int, int] | None = (10, 30)
    v_atom_count: Range | None = None
    cell: CellConfig = Field(default_factory=CellConfig)
    composition: CompositionConfig = Field(default_factory=CompositionConfig)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    u_iso: Range = (0.01, 0.1)
    u_jitter: float = Field(0.005, ge=0)

    @field_validator("spacegroups")
    @classmethod
    def _groups(cls, v: dict[str, float] | list[str]) -> dict[str, float]:
        weights = {s: 1.0 for s in v} if isinstance(v, list) else dict(v)
        if not weights:
            raise ValueError("at least one space group is needed")
        out: dict[str, float] = {}
        for sym, w in weights.items():
            try:
                sg = resolve_space_group(sym)
            except CrystalError as exc:
                raise ValueError(str(exc)) from None
            if w < 0:
                raise ValueError(f"weight of {sym} is negative")
            out[sg.xhm()] = out.get(sg.xhm(), 0.0) + float(w)
        if sum(out.values()) <= 0:
            raise ValueError("space-group weights sum to zero")
        return out

    @model_validator(mode="after")
    def _check(self) -> GeneratorConfig:
        if (self.atoms is None) == (self.v_atom_count is None):
            raise ValueError(
                "give exactly one of atoms: [min, max] (asymmetric unit) or "
                "v_atom_count: [min, max] (Å³ per atom)"
            )
        if self.atoms is not None and not 1 <= self.atoms[0] <= self.atoms[1]:
            raise ValueError(f"atoms range {self.atoms} must satisfy 1 ≤ min ≤ max")
        _ordered("v_atom_count", self.v_atom_count)
        _ordered("u_iso", self.u_iso)
        if self.u_iso[0] - self.u_jitter < 0:
            raise ValueError("u_iso minus u_jitter must stay ≥ 0 Å²")
        dens = self.cell.v_atom[0]
        if self.placement.method == "uniform" and dens < 0.5 * self.placement.min_distance**3:
            raise ValueError(
                f"impossible density: {dens} Å³ per atom cannot hold atoms "
                f"{self.placement.min_distance} Å apart"
            )
        return self


#: Default element weights: frequencies of non-H atoms in organic/metal-organic small-molecule
#: structures (rounded, from the COD development set; refit with ``xtalforge stats``).
DEFAULT_ELEMENTS = {
    "C": 0.62,
    "N": 0.10,
    "O": 0.17,
    "S": 0.03,
    "Cl": 0.03,
    "Br": 0.01,
    "P": 0.01,
    "F": 0.02,
    "Cu": 0.005,
    "Zn": 0.005,
}


def preset_path(name: str) -> Path:
    """Path of a YAML preset in ``configs/generators`` (name with or without ``.yaml``)."""
    return find_preset(PRESET_DIR, name, ConfigError, "generator")


def load_config(source: str | Path | dict) -> GeneratorConfig:
    """A validated config from a dict, a YAML file path or a preset name; errors name the field."""
    data, path = read_mapping(source, preset_path, ConfigError)
    try:
        return GeneratorConfig(**data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{validation_message(exc)}") from None
    except ArithmeticError as exc:  # a validator's arithmetic on a huge number
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}a number too large to use ({exc})") from None


def _default_elements() -> dict[str, float]:
    return DEFAULT_ELEMENTS
