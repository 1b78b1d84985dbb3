"""Dataset specs (pydantic, YAML): where structures come from, what to compute, how to split.

Resolutions in Å. A spec names either a generator (preset name, YAML path or inline mapping) or
a folder of CIFs; ``n`` structures are made from ``seed`` in shards of ``shard_size``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xtalforge.data.seeds import seed_sequence_states
from xtalforge.errors import XtalforgeError
from xtalforge.generate.config import GeneratorConfig, load_config
from xtalforge.powder.sampler import InstrumentSampler
from xtalforge.yaml_config import find_preset, read_mapping, validation_message

__all__ = [
    "TEST_OFFSET",
    "VAL_OFFSET",
    "ComputeSpec",
    "DatasetError",
    "DatasetSpec",
    "Folds",
    "MapSpec",
    "PowderSpec",
    "load_spec",
    "sample_seed",
    "sample_seeds",
    "split_of",
    "splits_of",
]

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "datasets"
SPLITS = ("train", "val", "test")


class DatasetError(XtalforgeError):
    """An invalid dataset spec, or a dataset folder that does not match / is corrupt."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MapSpec(_Strict):
    """A fixed-shape map stored per structure (flattened float32, C order)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    shape: tuple[int, int, int]
    d_min: float | None = Field(None, gt=0, description="resolution of the map (Å); d_high if None")
    sharpen: bool = False
    remove_origin: bool = False
    scale01: bool = True

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 2 or max(v) > 256:
            raise ValueError(f"map shape {v} must have 2–256 points per axis")
        return v


class PowderSpec(_Strict):
    """Powder patterns of random instruments (``InstrumentSampler``), one per structure."""

    sampler: InstrumentSampler = Field(default_factory=InstrumentSampler)
    noise: bool = True


class ComputeSpec(_Strict):
    """What each row holds. F (and phases, E) to ``d_high``; ``d_low`` marks the known/target
    split of the resolution-extension task (d ≥ d_low known)."""

    d_high: float = Field(0.8, gt=0.3)
    d_low: float | None = Field(1.2, gt=0)
    phases: bool = True
    e_values: bool = True
    patterson: list[MapSpec] = Field(default_factory=list)
    density: list[MapSpec] = Field(default_factory=list)
    powder: PowderSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ComputeSpec:
        if self.d_low is not None and self.d_low <= self.d_high:
            raise ValueError(f"d_low ({self.d_low} Å) must exceed d_high ({self.d_high} Å)")
        names = [m.name for m in self.patterson] + [m.name for m in self.density]
        if len(set(names)) != len(names):
            raise ValueError(f"map names must be unique, got {names}")
        for m in self.patterson + self.density:
            if m.d_min is not None and m.d_min < self.d_high:
                raise ValueError(
                    f"map {m.name}: d_min {m.d_min} Å is finer than d_high "
                    f"{self.d_high} Å (no F computed there)"
                )
        return self


class Folds(_Strict):
    """K-fold cross-validation: each sample falls in one of ``k`` folds (from its seed, as the
    split fractions do); fold ``test`` is the test split, the next fold (mod k) validation,
    the rest training. Build the dataset once per ``test`` = 0 … k−1: every sample is tested
    exactly once over the k datasets."""

    k: int = Field(ge=3, le=1000)
    test: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Folds:
        if self.test >= self.k:
            raise ValueError(f"folds.test must be < folds.k = {self.k}, got {self.test}")
        return self


class DatasetSpec(_Strict):
    """A dataset: source (``generator`` or ``cif_dir``), what to compute, n, seed, shards and
    splits (fractions, or ``folds`` for k-fold cross-validation, which then replaces them)."""

    name: str = "dataset"
    generator: str | dict[str, Any] | None = None
    cif_dir: str | None = None
    n: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)
    shard_size: int = Field(1000, ge=1, le=1_000_000)
    row_group_size: int = Field(64, ge=1)
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    folds: Folds | None = None

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; use {SPLITS}")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be ≥ 0 and sum to 1, got {v}")
        return {k: float(v.get(k, 0.0)) for k in SPLITS}

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if (self.generator is None) == (self.cif_dir is None):
            raise ValueError(
                "give exactly one source: generator (preset, YAML path or mapping) or cif_dir"
            )
        if self.generator is not None and self.n is None:
            raise ValueError("n (number of structures) is required with a generator")
        if self.generator is not None:
            try:
                self.generator_config()
            except XtalforgeError as exc:
                raise ValueError(f"generator: {exc}") from None
        return self

    def generator_config(self) -> GeneratorConfig:
        """The resolved generator config (preset, path or inline mapping)."""
        if self.generator is None:
            raise DatasetError(f"dataset {self.name} has no generator (cif_dir source)")
        return load_config(self.generator)

    def resolved(self) -> dict[str, Any]:
        """The spec as plain data with the generator config inlined (what the manifest stores)."""
        data = self.model_dump(mode="json")
        if data["folds"] is None:  # absent, so that specs without folds keep their hash
            del data["folds"]
        if self.generator is not None:
            data["generator"] = self.generator_config().model_dump(mode="json")
        return data

    def spec_hash(self) -> str:
        """Hash of everything that decides the shards' bytes (not shard-independent options)."""
        blob = json.dumps(self.resolved(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def n_shards(self) -> int:
        if self.n is None:
            raise DatasetError("n is unknown until the CIF folder is listed")
        return -(-self.n // self.shard_size)


#: Seed offsets of the fixed validation and test structures of a run that generates its
#: structures on the fly (training sample i of epoch e has seed ``sample_seed(seed, e·n + i)``).
VAL_OFFSET, TEST_OFFSET = 1_000_003, 2_000_003


_SEED_TAG, _SPLIT_TAG = 0xDA7A, 0x5B17


def sample_seed(dataset_seed: int, index: int) -> int:
    """Seed of sample ``index`` (63-bit), derived from (dataset seed, index) alone, so any sample
    can be regenerated by itself whatever the shard size or worker count."""
    state = np.random.SeedSequence([int(dataset_seed), int(index), _SEED_TAG]).generate_state(2)
    return _seed_from_state(int(state[0]), int(state[1]))


def sample_seeds(dataset_seed: int, indices: Sequence[int]) -> list[int]:
    """:func:`sample_seed` of every index, computed together (the same seeds)."""
    states = seed_sequence_states(dataset_seed, indices, _SEED_TAG, 2).tolist()
    return [_seed_from_state(a, b) for a, b in states]


def _seed_from_state(a: int, b: int) -> int:
    return int((a << 31 ^ b) & (2**63 - 1))


def split_of(
    dataset_seed: int, index: int, fractions: dict[str, float], folds: Folds | None = None
) -> str:
    """Split of sample ``index``: a uniform number from (seed, index) against the cumulative
    fractions, or its fold under k-fold ``folds``; disjoint by construction and stable when n
    grows."""
    u = np.random.SeedSequence([int(dataset_seed), int(index), _SPLIT_TAG]).generate_state(1)[0]
    return _split_name(float(u) / 2**32, fractions, folds)


def splits_of(
    dataset_seed: int,
    indices: Sequence[int],
    fractions: dict[str, float],
    folds: Folds | None = None,
) -> list[str]:
    """:func:`split_of` of every index, computed together (the same splits)."""
    u = seed_sequence_states(dataset_seed, indices, _SPLIT_TAG, 1)[:, 0].tolist()
    return [_split_name(v / 2**32, fractions, folds) for v in u]


def _split_name(x: float, fractions: dict[str, float], folds: Folds | None) -> str:
    """The split of uniform number ``x`` ∈ [0, 1)."""
    if folds is not None:
        fold = min(int(x * folds.k), folds.k - 1)
        if fold == folds.test:
            return "test"
        return "val" if fold == (folds.test + 1) % folds.k else "train"
    acc = 0.0
    for name in SPLITS:
        acc += fractions.get(name, 0.0)
        if x < acc:
            return name
    return next(s for s in reversed(SPLITS) if fractions.get(s, 0.0) > 0)


def preset_path(name: str) -> Path:
    """Path of a dataset preset in ``configs/datasets``."""
    return find_preset(PRESET_DIR, name, DatasetError, "dataset")


def load_spec(source: str | Path | dict, **overrides: Any) -> DatasetSpec:
    """A validated spec from a mapping, a YAML path or a preset name; ``overrides`` replace
    top-level fields (e.g. ``n=100``). A relative generator/cif_dir path is taken relative to
    the spec file. Errors name the file and field."""
    data, path = read_mapping(source, preset_path, DatasetError)
    where = f"{path}: " if path else ""
    if path is not None:
        for key in ("generator", "cif_dir"):
            value = data.get(key)
            relative = (
                isinstance(value, str)
                and not Path(value).is_absolute()
                and (key == "cif_dir" or value.endswith((".yaml", ".yml")))
            )
            if relative and (path.parent / str(value)).exists():
                data[key] = str(path.parent / str(value))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DatasetSpec(**data)
    except ValidationError as exc:
        raise DatasetError(f"{where}{validation_message(exc, 'spec')}") from None
    except (OverflowError, ArithmeticError) as exc:  # a validator's sum on a huge number
        raise DatasetError(f"{where}a number too large to use ({exc})") from None
