"""Shared loading of validated YAML configs: presets, file paths, error messages naming fields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

__all__ = ["find_preset", "read_mapping", "validation_message"]


def read_mapping(
    source: str | Path | dict, preset: Callable[[str], Path], error: type[Exception]
) -> tuple[dict[str, Any], Path | None]:
    """(data, path): a mapping from a dict, a YAML file or a preset name (resolved by
    ``preset``); ``name`` defaults to the file's stem. Raises ``error`` naming the file."""
    if isinstance(source, dict):
        return dict(source), None
    path = Path(source)
    if not path.is_file():
        if path.suffix in (".yaml", ".yml") and (path.parent != Path(".") or path.exists()):
            raise error(f"{path}: no such file")
        path = preset(str(source))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping")
    data.setdefault("name", path.stem)
    return data, path


def validation_message(exc: ValidationError, what: str = "config") -> str:
    """``field.sub: message; …`` for every error of a pydantic validation."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())


def find_preset(folder: Path, name: str, error: type[Exception], kind: str) -> Path:
    """``folder/name.yaml`` (name with or without the suffix); ``error`` lists the known ones."""
    path = folder / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise error(f"no {kind} preset {name!r}; known: {known}")
    return path
