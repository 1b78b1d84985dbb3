"""Validated training configs (YAML; presets in ``configs/experiments``) and dotted overrides.

A run config names its data (an existing dataset folder, a dataset spec built once into a
cache folder, or a generator whose structures are made on the fly), the task (its registry name
and its own typed settings, e.g. resolutions in Å), the model (registry name, size preset,
overrides), the optimiser and scheduler, and the Lightning trainer settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from xtalforge.errors import XtalforgeError
from xtalforge.tasks.base import TaskConfig
from xtalforge.tasks.registry import get_task
from xtalforge.yaml_config import find_preset, read_mapping, validation_message

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "load_run_config"]

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "experiments"


class ConfigError(XtalforgeError):
    """An invalid training config or override."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    path: str | None = None  # an existing dataset folder
    spec: str | dict | None = None  # or a dataset spec (preset, YAML, mapping) built into cache
    generator: str | dict | None = None  # or structures generated on the fly (preset/YAML/map)
    train_length: int = Field(4096, ge=1)  # on the fly: structures per training epoch
    val_length: int = Field(256, ge=1)  # on the fly: fixed validation structures
    test_length: int = Field(256, ge=1)  # on the fly: fixed test structures (evaluate)
    cache_dir: str = "datasets"  # where specs are built: <cache_dir>/<name>-<spec hash>
    workers: int = Field(1, ge=1)  # processes used to build the spec's dataset
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(0, ge=0)
    # list-mode models on a dataset folder: training batches of similar length, sorted within
    # pools of this many batches (0: random batches, padded to their longest item)
    length_grouping: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if sum(v is not None for v in (self.path, self.spec, self.generator)) != 1:
            raise ValueError(
                "give exactly one of data.path (a dataset folder), data.spec (a "
                "dataset spec) or data.generator (structures made on the fly)"
            )
        return self


class ModelConfig(_Strict):
    name: str = "unet3d"  # a model of xtalforge.models, one the task can train
    size: Literal["small", "thesis"] = "small"
    params: dict[str, Any] = {}


class OptimConfig(_Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    factor: float = Field(0.1, gt=0, lt=1)  # ReduceLROnPlateau
    patience: int = Field(5, ge=0)  # ReduceLROnPlateau, epochs
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: int = Field(0, ge=0)  # linear warm-up before cosine


class TrainerConfig(_Strict):
    max_epochs: int = Field(10, ge=1)
    max_time: str | None = None  # "DD:HH:MM:SS", stops cleanly
    accelerator: str = "cpu"
    devices: int | str = 1
    precision: str = "32-true"
    strategy: str = "auto"  # Lightning strategy, e.g. ddp (CPU: gloo processes)
    deterministic: bool = True
    gradient_clip_val: float | None = None
    log_every_n_steps: int = Field(10, ge=1)
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0


class RunConfig(_Strict):
    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    init_from: str | None = None  # checkpoint whose weights start this run (fine-tuning)
    data: DataConfig
    # the task's own typed config (xtalforge.tasks.<name>.config), chosen by task.name
    task: SerializeAsAny[TaskConfig] = Field(default_factory=dict, validate_default=True)
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerConfig = TrainerConfig()

    @field_validator("task", mode="before")
    @classmethod
    def _typed_task(cls, value: Any) -> TaskConfig:
        if isinstance(value, TaskConfig):
            return value
        if not isinstance(value, dict):
            raise ValueError("expected a mapping with the task's name and settings")
        value = {"name": "resolution", **value}
        task = get_task(str(value["name"]))
        unknown = sorted(set(value) - set(task.config.model_fields))
        if unknown:
            raise ValueError(
                f"task {task.name} has no setting {', '.join(map(repr, unknown))} (its "
                f"settings: {', '.join(task.config.model_fields)})"
            )
        try:
            return task.config.model_validate(value)
        except ValidationError as exc:
            raise ValueError(validation_message(exc, "task")) from None

    @model_validator(mode="after")
    def _fits(self) -> RunConfig:
        task = get_task(self.task.name)
        if self.model.name not in task.models:
            raise ValueError(
                f"task {task.name} trains {' or '.join(task.models)}, not model {self.model.name}"
            )
        source = "generator" if self.data.generator is not None else "dataset"
        if source not in task.sources:
            raise ValueError(
                f"task {task.name} trains on structures made on the fly: give data.generator"
                if source == "dataset"
                else f"task {task.name} reads a dataset: give data.path or data.spec"
            )
        task.check(self)
        return self


def preset_path(name: str) -> Path:
    """Path of an experiment preset in ``configs/experiments``."""
    return find_preset(PRESET_DIR, name, ConfigError, "experiment")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested mapping."""
    out = yaml.safe_load(yaml.safe_dump(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from None
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a mapping")
        node[parts[-1]] = value
    return out


def load_run_config(source: str | Path | dict, overrides: list[str] | None = None) -> RunConfig:
    """A validated run config from a preset name, YAML path or mapping, with overrides. A
    relative data path or spec file is taken relative to the config file."""
    data, path = read_mapping(source, preset_path, ConfigError)
    data = apply_overrides(data, overrides or [])
    where = f"{path}: " if path else ""
    if path is not None and isinstance(data.get("data"), dict):
        for key in ("path", "spec", "generator"):
            value = data["data"].get(key)
            if (
                isinstance(value, str)
                and not Path(value).is_absolute()
                and (path.parent / value).exists()
                and (key == "path" or value.endswith(".yaml"))
            ):
                data["data"][key] = str(path.parent / value)
    try:
        return RunConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"{where}{validation_message(exc, 'config')}") from None
    except ArithmeticError as exc:  # a validator's sum on a huge number
        raise ConfigError(f"{where}a number too large to use ({exc})") from None
