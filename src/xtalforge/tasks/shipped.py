"""Trained models that ship with xtalforge (package data in ``xtalforge/shipped``): a small
checkpoint and its model card (YAML) per model, found by name wherever a checkpoint path is
taken (``--model dm-1.5``).

A card says what the model is for and where it was trained: task, resolution range, the
space groups and cell edges it saw (its domain), the training command, data, duration and
curve, the metrics on the development set, the version and commit that trained it, and the
checkpoint's SHA-256. :mod:`xtalforge.tasks.shipping` makes both from a run folder and holds a
card against its checkpoint.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from xtalforge.errors import XtalforgeError

__all__ = ["ModelCard", "model_path", "read_card", "shipped_cards", "shipped_folder"]


class ModelCard(BaseModel):
    """A shipped model's card (the YAML beside its checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    file: str
    sha256: str
    task: str
    summary: str
    use: str
    version: str
    commit: str | None = None
    resolution: dict[str, float]  # Å: d_low (and d_low_max) of the input, d_high of the output
    domain: dict[str, Any]  # spacegroups, max_edge (Å), generator
    training: dict[str, Any]  # command, data, duration, epochs, curve
    metrics: dict[str, Any] = {}  # development-set figures, with the command that made them


def shipped_folder() -> Path:
    """Where the shipped checkpoints and cards live (package data)."""
    return Path(str(resources.files("xtalforge") / "shipped"))


def read_card(path: Path) -> ModelCard:
    """The card in a YAML file; raises :class:`XtalforgeError` naming the file."""
    try:
        return ModelCard.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise XtalforgeError(f"{path}: not a model card ({exc})") from None


def shipped_cards(folder: Path | None = None) -> list[ModelCard]:
    """The cards of the shipped models, by name."""
    root = folder or shipped_folder()
    if not root.is_dir():
        return []
    return sorted((read_card(p) for p in root.glob("*.yaml")), key=lambda c: c.name)


def model_path(name_or_path: str | Path) -> Path:
    """A checkpoint path for a shipped model's name (``dm-1.5``), or the path itself when it
    names a file. Raises :class:`XtalforgeError` listing the shipped names otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    cards = {c.name: c for c in shipped_cards()}
    if str(name_or_path) in cards:
        return shipped_folder() / cards[str(name_or_path)].file
    if path.suffix == ".ckpt" or len(path.parts) > 1:
        raise XtalforgeError(f"{path}: no such checkpoint")
    names = ", ".join(cards) or "none"
    raise XtalforgeError(
        f"{name_or_path}: neither a checkpoint file nor a shipped model (shipped: {names}; "
        "`xtalforge models list`)"
    )
