"""``Generator.from_config(cfg).sample(seed) -> Crystal``: synthetic crystals in any space group."""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from collections.abc import Sequence
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
    place_molecule_atoms,
    place_uniform,
    project_special,
    random_unit_vectors,
    special_operations,
)
from xtalforge.generate.seeding import entropy_words, pcg64_state, seed_sequence_words

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
        self._cum_list = self._cum.tolist()

    def draw(self, rng: np.random.Generator) -> int:
        """One element index from one uniform draw of rng."""
        return min(bisect.bisect_right(self._cum_list, rng.random()), len(self.p) - 1)

    def draw_many(self, u: np.ndarray) -> np.ndarray:
        """Element indices for uniform numbers u in [0, 1)."""
        return np.minimum(np.searchsorted(self._cum, u, side="right"), len(self.p) - 1)


class Generator:
    """Random crystal structures drawn as a validated :class:`GeneratorConfig` prescribes.

    The same (config, seed) always gives the same structure; each Crystal's ``metadata``
    records the config's name and hash, the seed, and how many atoms were requested, placed on
    special positions, and skipped (never silently dropped).
    """

    #: Place atoms in compiled loops (:mod:`xtalforge.generate._kernels`): the same decisions
    #: as the numpy one-by-one definition (:meth:`_place`), tens of times faster. False runs
    #: the definition (tests compare the two).
    compiled = True

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self._groups = list(config.spacegroups)
        groups: dict[str, float] = config.spacegroups  # type: ignore[assignment]  # validated
        weights = np.array(list(groups.values()), dtype=np.float64)
        cdf = (weights / weights.sum()).cumsum()
        self._group_cdf = (cdf / cdf[-1]).tolist()
        self._resolved = [resolve_space_group(g) for g in self._groups]
        self._elements = _Weights(config.composition.elements)
        self._special = _Weights(config.composition.special_elements or config.composition.elements)
        self._hydrogen = _Weights({"H": 1.0})
        blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
        self.config_hash = hashlib.sha256(blob).hexdigest()[:16]
        self._local = threading.local()  # one reusable PCG64 per thread (sample_many)
        if config.v_atom_count is not None and config.cell.strategy == "volume_per_atom":
            raise ConfigError(
                "v_atom_count needs cell.strategy volume_first or uniform_edges "
                "(the cell must not depend on the atom count)"
            )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_local", None)  # thread-local generators do not travel to other processes
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: GeneratorConfig | dict | str | Path) -> Generator:
        """From a config object, a dict, a YAML path or a preset name (e.g. ``"phai-p21c"``)."""
        if not isinstance(config, GeneratorConfig):
            config = load_config(config)
        return cls(config)

    # ------------------------------------------------------------------ sampling
    def sample(self, seed: int) -> Crystal:
        """One structure; deterministic in (config, seed)."""
        return self._sample(int(seed), np.random.default_rng([int(seed), 0x5EED]))

    def sample_many(self, seeds: Sequence[int]) -> list[Crystal]:
        """``[sample(s) for s in seeds]``, the same structures, with the seeds' generator
        states hashed together (:mod:`~xtalforge.generate.seeding`) and one PCG64 per thread
        set to each in turn instead of a new generator per structure."""
        seeds = [int(s) for s in seeds]
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be non-negative")
        by_length: dict[int, tuple[list[int], list[list[int]]]] = {}  # rows, words by count
        for i, s in enumerate(seeds):
            w = entropy_words(s)
            rows, group = by_length.setdefault(len(w), ([], []))
            rows.append(i)
            group.append(w)
        words = np.empty((len(seeds), 8), np.uint32)
        for n, (rows, group) in by_length.items():
            lanes = np.array(group, dtype=np.uint64)
            entropy = [lanes[:, k] for k in range(n)] + [0x5EED]
            words[rows] = seed_sequence_words(entropy, len(rows), 8)
        if not hasattr(self._local, "rng"):
            self._local.rng = np.random.Generator(np.random.PCG64(0))
        rng = self._local.rng
        out = []
        for s, w in zip(seeds, words.tolist(), strict=True):
            rng.bit_generator.state = pcg64_state(w)
            out.append(self._sample(s, rng))
        return out

    def _sample(self, seed: int, rng: np.random.Generator) -> Crystal:
        """One structure from ``rng``, seeded from ``seed`` as :meth:`sample` seeds it."""
        cfg = self.config
        # as rng.choice(len(groups), p=group_p) draws it (one uniform, right-sided search)
        sg = self._resolved[bisect.bisect_right(self._group_cdf, rng.random())]
        sym = symmetry_info(sg)
        n_ops = sym.n_ops
        if cfg.atoms is not None:
            n_heavy = int(rng.integers(cfg.atoms[0], cfg.atoms[1] + 1))
            cell = sample_cell(cfg.cell, sg, n_heavy * n_ops, rng)
        else:
            cell = sample_cell(cfg.cell, sg, 1, rng)
            volume = cell_volume(*cell)
            v_atom = rng.uniform(*cfg.v_atom_count)  # type: ignore[misc]  # set with atoms unset
            n_heavy = max(1, int(volume // (v_atom * n_ops)))
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
        batch = (
            self._place_uniform(sites, n_heavy - n_special, n_h, rng)
            if cfg.placement.method == "uniform"
            else self._place_molecules(sites, n_heavy - n_special, n_h, rng)
        )
        if batch is not None:
            skipped_heavy, skipped_h = batch
        else:
            skipped_heavy = sum(
                not self._place(sites, self._elements, rng) for _ in range(n_heavy - n_special)
            )
            skipped_h = sum(not self._place(sites, self._hydrogen, rng) for _ in range(n_h))
        if not sites.z:
            # an empty structure is useless: fall back to one atom anywhere
            sites.add(rng.random(3), int(self._elements.z[self._elements.draw(rng)]), 0.7)
        n = len(sites.z)
        u = rng.uniform(*cfg.u_iso) + rng.uniform(-cfg.u_jitter, cfg.u_jitter, n)
        meta = {
            "generator": cfg.name,
            "config_hash": self.config_hash,
            "seed": int(seed),
            "placement": cfg.placement.method,
            "cell_strategy": cfg.cell.strategy,
            "requested_atoms": n_heavy,
            "requested_hydrogens": n_h,
            "special_positions": n_special,
            "skipped_atoms": skipped_heavy,
            "skipped_hydrogens": skipped_h,
        }
        # valid by construction (a cell of the group's lattice, finite placed coordinates,
        # U ≥ 0): a test checks the constructor accepts every field unchanged
        return Crystal.from_valid(
            tuple(float(x) for x in cell),  # type: ignore[arg-type]  # six values
            sg,
            np.array(sites.z, dtype=np.int16),
            np.array(sites.frac, dtype=np.float64),
            np.maximum(u, 0.0),
            meta,
        )

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
            r_max = max(sites.radius_max, radius)
            cutoff = 1.4 * (radius + r_max) * (1 + 1e-9)
        d = sites.candidate_distances(x, cutoff)  # (T, M + S): placed images, then own images
        if cfg.method == "uniform":
            return np.asarray((d >= cfg.min_distance).all(axis=1))
        m = len(sites.radius)
        r_sum = np.empty(d.shape[1])
        r_sum[:m] = sites.radius
        r_sum[m:] = radius
        r_sum += radius
        return np.asarray(
            ((d > 0.9 * r_sum) & ~((d >= 1.1 * r_sum) & (d <= 1.4 * r_sum))).all(axis=1)
        )

    def _place_uniform(
        self, sites: SiteSet, n_heavy: int, n_h: int, rng: np.random.Generator
    ) -> tuple[int, int] | None:
        """Uniform placement of n_heavy then n_h hydrogen atoms at once (the same atoms, from
        the same random numbers, as placing them one by one with :meth:`_place`); the numbers
        of skipped heavy atoms and hydrogens, or None (nothing drawn) for cells too small for
        the compiled loop is switched off."""
        cfg = self.config.placement
        n = n_heavy + n_h
        if n == 0 or not self.compiled:
            return None
        draws = rng.random((n, 1 + 3 * cfg.max_tries))  # per atom: element, then candidates
        k = self._elements.draw_many(draws[:n_heavy, 0])
        z = np.concatenate([self._elements.z[k], np.ones(n_h, dtype=self._elements.z.dtype)])
        radius = np.concatenate([self._elements.r[k], np.full(n_h, self._hydrogen.r[0])])
        candidates = draws[:, 1:].reshape(n, cfg.max_tries, 3)
        placed = place_uniform(sites, candidates, z, radius, cfg.min_distance) >= 0
        return int((~placed[:n_heavy]).sum()), int((~placed[n_heavy:]).sum())

    def _place_molecules(
        self, sites: SiteSet, n_heavy: int, n_h: int, rng: np.random.Generator
    ) -> tuple[int, int] | None:
        """Bonded placement of n_heavy then n_h hydrogen atoms in one compiled loop (the same
        random numbers and decisions as :meth:`_place` atom by atom); the numbers of skipped
        heavy atoms and hydrogens, or None where the compiled loop is switched off."""
        if not self.compiled:
            return None
        cfg = self.config.placement
        return place_molecule_atoms(
            sites,
            rng,
            n_heavy,
            n_h,
            self._elements,
            self._hydrogen,
            cfg.max_tries,
            cfg.molecule_tries,
            cfg.bond_scale,
        )

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
            ok = self._acceptable(sites, x, radius)
            first = int(ok.argmax())
            if ok[first]:
                sites.add(x[first], z, radius)
                return True
        return False

    def _bonded_candidates(
        self, sites: SiteSet, radius: float, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        """n positions bonded to random placed atoms at U(bond_scale)·(R_A + R_i), directions
        uniform on the sphere (fractional coordinates)."""
        anchors = rng.integers(0, len(sites.frac), n)
        frac = sites.site_frac()[anchors]
        r_anchor = sites.site_covalent_radii()[anchors]
        lo, hi = self.config.placement.bond_scale
        length = (lo + (hi - lo) * rng.random(n)) * (r_anchor + radius)  # = rng.uniform(lo, hi)
        cart = frac @ sites.orth.T + length[:, None] * random_unit_vectors(n, rng)
        return (cart @ sites.frac_mat.T) % 1.0
