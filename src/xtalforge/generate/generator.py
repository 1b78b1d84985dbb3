"""``Generator.from_config(cfg).sample(seed) -> Crystal``: synthetic crystals in any space group."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from xtalforge.crystal.elements import atomic_number, covalent_radius
from xtalforge.crystal.model import Crystal, cell_volume
from xtalforge.crystal.symmetry import resolve_space_group, symmetry_info
from xtalforge.generate.cells import sample_cell
from xtalforge.generate.config import ConfigError, GeneratorConfig, load_config
from xtalforge.generate.placement import (
    SiteSet,
    project_special,
    random_unit_vectors,
    special_operations,
)

__all__ = ["Generator"]


@lru_cache(maxsize=512)
def _special_ops(hall: str) -> list:
    from xtalforge.crystal.symmetry import symmetry_info_from_hall

    return special_operations(symmetry_info_from_hall(hall))


class _Weights:
    """Element symbols with their probabilities, atomic numbers and covalent radii (Å)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.symbols = list(weights)
        w = np.array(list(weights.values()), dtype=np.float64)
        self.p = w / w.sum()
        self.z = np.array([atomic_number(s) for s in self.symbols])
        self.r = np.array([covalent_radius(int(z)) for z in self.z])
        self._cum = np.cumsum(self.p)

    def draw(self, rng: np.random.Generator) -> int:
        return min(int(np.searchsorted(self._cum, rng.random(), side="right")), len(self.p) - 1)


class Generator:
    """Random crystal structures drawn as a validated :class:`GeneratorConfig` prescribes.

    The same (config, seed) always gives the same structure; each Crystal's ``metadata``
    records the config's name and hash, the seed, and how many atoms were requested, placed on
    special positions, and skipped (never silently dropped).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self._groups = list(config.spacegroups)
        weights = np.array(list(config.spacegroups.values()), dtype=np.float64)
        self._group_p = weights / weights.sum()
        self._elements = _Weights(config.composition.elements)
        self._special = _Weights(config.composition.special_elements
                                 or config.composition.elements)
        self._hydrogen = _Weights({"H": 1.0})
        blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
        self.config_hash = hashlib.sha256(blob).hexdigest()[:16]
        if config.v_atom_count is not None and config.cell.strategy == "volume_per_atom":
            raise ConfigError("v_atom_count needs cell.strategy volume_first or uniform_edges "
                              "(the cell must not depend on the atom count)")

    @classmethod
    def from_config(cls, config: GeneratorConfig | dict | str | Path) -> Generator:
        """From a config object, a dict, a YAML path or a preset name (e.g. ``"phai-p21c"``)."""
        if not isinstance(config, GeneratorConfig):
            config = load_config(config)
        return cls(config)

    # ------------------------------------------------------------------ sampling
    def sample(self, seed: int) -> Crystal:
        """One structure; deterministic in (config, seed)."""
        cfg = self.config
        rng = np.random.default_rng([int(seed), 0x5EED])
        sg = resolve_space_group(self._groups[int(rng.choice(len(self._groups), p=self._group_p))])
        sym = symmetry_info(sg)
        n_ops = sym.n_ops
        if cfg.atoms is not None:
            n_heavy = int(rng.integers(cfg.atoms[0], cfg.atoms[1] + 1))
            cell = sample_cell(cfg.cell, sg, n_heavy * n_ops, rng)
        else:
            cell = sample_cell(cfg.cell, sg, 1, rng)
            volume = cell_volume(*cell)
            n_heavy = max(1, int(volume // (rng.uniform(*cfg.v_atom_count) * n_ops)))
        n_h = 0
        if cfg.composition.h_fraction is not None:
            x_h = rng.uniform(*cfg.composition.h_fraction)
            n_h = int(n_heavy * x_h // (1 - x_h))
        sites = SiteSet(cell, sym)
        n_special = 0
        for op in _special_ops(sg.hall):
            if n_special >= n_heavy:
                break
            if rng.random() < cfg.placement.special_probability:
                n_special += self._place_special(sites, op, rng)
        skipped_heavy = 0
        for _ in range(n_heavy - n_special):
            skipped_heavy += not self._place(sites, self._elements, rng)
        skipped_h = 0
        for _ in range(n_h):
            skipped_h += not self._place(sites, self._hydrogen, rng)
        if not sites.z:
            # an empty structure is useless: fall back to one atom anywhere
            sites.add(rng.random(3), int(self._elements.z[self._elements.draw(rng)]), 0.7)
        n = len(sites.z)
        u = rng.uniform(*cfg.u_iso) + rng.uniform(-cfg.u_jitter, cfg.u_jitter, n)
        meta = {"generator": cfg.name, "config_hash": self.config_hash, "seed": int(seed),
                "placement": cfg.placement.method, "cell_strategy": cfg.cell.strategy,
                "requested_atoms": n_heavy, "requested_hydrogens": n_h,
                "special_positions": n_special, "skipped_atoms": skipped_heavy,
                "skipped_hydrogens": skipped_h}
        return Crystal(cell, sg, np.array(sites.z), np.array(sites.frac), np.maximum(u, 0.0),
                       metadata=meta)

    # ------------------------------------------------------------------ placement
    def _place_special(self, sites: SiteSet, op: tuple, rng: np.random.Generator) -> int:
        cfg = self.config.placement
        k = self._special.draw(rng)
        z, radius = int(self._special.z[k]), float(self._special.r[k])
        for _ in range(cfg.max_tries):
            x = project_special(rng.random(3), op)
            if self._acceptable(sites, x[None], radius)[0]:
                sites.add(x, z, radius, special=True)
                return 1
        return 0

    def _acceptable(self, sites: SiteSet, x: np.ndarray, radius: float) -> np.ndarray:
        """Which candidates (T, 3) pass the distance rules against everything placed."""
        cfg = self.config.placement
        if cfg.method == "uniform":
            cutoff = cfg.min_distance
        else:  # the largest threshold of the molecule rules
            r_max = max(float(sites.radius.max()) if len(sites.radius) else radius, radius)
            cutoff = 1.4 * (radius + r_max) * (1 + 1e-9)
        d = sites.candidate_distances(x, cutoff)  # (T, M + S): placed images, then own images
        if cfg.method == "uniform":
            return (d >= cfg.min_distance).all(axis=1)
        r_sum = radius + np.concatenate([sites.radius, np.full(d.shape[1] - len(sites.radius),
                                                               radius)])
        return ((d > 0.9 * r_sum) & ~((d >= 1.1 * r_sum) & (d <= 1.4 * r_sum))).all(axis=1)

    def _place(self, sites: SiteSet, elements: _Weights, rng: np.random.Generator) -> bool:
        cfg = self.config.placement
        uniform = cfg.method == "uniform" or not sites.z
        attempts = 1 if uniform else 2  # molecules: a second element after 20 failed tries
        for _ in range(attempts):
            k = elements.draw(rng)
            z, radius = int(elements.z[k]), float(elements.r[k])
            if uniform:
                x = rng.random((cfg.max_tries, 3))
            else:
                x = self._bonded_candidates(sites, radius, cfg.molecule_tries, rng)
            ok = np.nonzero(self._acceptable(sites, x, radius))[0]
            if len(ok):
                sites.add(x[ok[0]], z, radius)
                return True
        return False

    def _bonded_candidates(self, sites: SiteSet, radius: float, n: int,
                           rng: np.random.Generator) -> np.ndarray:
        """n positions bonded to random placed atoms at U(bond_scale)·(R_A + R_i), directions
        uniform on the sphere (fractional coordinates)."""
        anchors = rng.integers(0, len(sites.frac), n)
        frac = np.array(sites.frac)[anchors]
        r_anchor = np.array([covalent_radius(z) for z in np.array(sites.z)[anchors]])
        length = rng.uniform(*self.config.placement.bond_scale, n) * (r_anchor + radius)
        cart = frac @ sites.orth.T + length[:, None] * random_unit_vectors(n, rng)
        return (cart @ sites.frac_mat.T) % 1.0
