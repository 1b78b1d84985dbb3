"""Shipping a trained model: its slim checkpoint and card from a run folder (:func:`ship`), and
holding a card against its checkpoint (:func:`check_card`; the tests run it on every shipped
model). See :mod:`xtalforge.tasks.shipped` for what a card holds."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path
from typing import Any

import torch
import yaml

from xtalforge.tasks.checkpoints import read_checkpoint
from xtalforge.tasks.shipped import ModelCard, shipped_folder

__all__ = ["MAX_SHIPPED_BYTES", "check_card", "ship"]

#: Largest checkpoint that ships (bytes): the package stays light.
MAX_SHIPPED_BYTES = 10 * 1024 * 1024


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_card(card: ModelCard, folder: Path | None = None) -> list[str]:
    """Where the card and its checkpoint disagree (empty: they agree): the file's size and
    hash, the task, the resolution range, the domain (groups, longest edge) and the epochs."""
    path = (folder or shipped_folder()) / card.file
    if not path.is_file():
        return [f"{card.name}: {card.file} is missing"]
    problems = []
    if path.stat().st_size > MAX_SHIPPED_BYTES:
        problems.append(f"{card.file}: {path.stat().st_size} bytes, above {MAX_SHIPPED_BYTES}")
    if _sha256(path) != card.sha256:
        problems.append(f"{card.file}: SHA-256 differs from the card's")
    module, rest = read_checkpoint(path)
    if module.task_name != card.task:
        problems.append(f"task: card {card.task}, checkpoint {module.task_name}")
    task = module.hparams["task"]
    for key, value in card.resolution.items():
        if not math.isclose(float(task.get(key, math.nan)), value):
            problems.append(f"resolution {key}: card {value}, checkpoint {task.get(key)}")
    domain = module.hparams.get("training_domain") or {}
    if sorted(domain.get("spacegroups", [])) != sorted(card.domain.get("spacegroups", [])):
        problems.append("domain: the space groups differ from the checkpoint's")
    edge = domain.get("max_edge")
    if edge is not None and not math.isclose(edge, card.domain.get("max_edge", math.nan)):
        problems.append(f"domain: longest edge card {card.domain.get('max_edge')}, ckpt {edge}")
    if int(card.training.get("epochs", -1)) != int(rest.get("epoch", -2)) + 1:
        problems.append(
            f"training epochs: card {card.training.get('epochs')}, checkpoint {rest.get('epoch')}+1"
        )
    return problems


def _curve(run: Path) -> list[dict[str, float]]:
    """Validation metrics per epoch from a run's CSV log."""
    rows: dict[int, dict[str, float]] = {}
    for log in sorted(run.glob("csv/**/metrics.csv")):
        with log.open() as fh:
            for r in csv.DictReader(fh):
                if not r.get("epoch"):
                    continue
                vals = {k: float(v) for k, v in r.items() if k.startswith("val/") and v}
                if vals:
                    rows.setdefault(int(r["epoch"]), {}).update(vals)
    return [
        {"epoch": e, **{k[4:]: round(v, 5) for k, v in m.items()}} for e, m in sorted(rows.items())
    ]


def ship(
    run: Path,
    name: str,
    summary: str,
    use: str,
    command: str,
    duration: str,
    metrics: dict[str, Any] | None = None,
    folder: Path | None = None,
    checkpoint: str = "best.ckpt",
) -> ModelCard:
    """Write a run's checkpoint (weights and hyper-parameters only: no optimiser state) and its
    card into ``folder`` (default the package's) as ``name``; returns the card."""
    folder = folder or shipped_folder()
    folder.mkdir(parents=True, exist_ok=True)
    src = run / "checkpoints" / checkpoint
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    slim = {
        k: ckpt[k]
        for k in (
            "state_dict",
            "hyper_parameters",
            "epoch",
            "global_step",
            "pytorch-lightning_version",
        )
        if k in ckpt
    }
    dest = folder / f"{name}.ckpt"
    torch.save(slim, dest)
    run_yaml = yaml.safe_load((run / "run.yaml").read_text())
    hp = ckpt["hyper_parameters"]
    task = hp["task"]
    domain = hp.get("training_domain") or {}
    resolution = {
        k: float(task[k]) for k in ("d_low", "d_low_max", "d_high") if task.get(k) is not None
    }
    card = ModelCard(
        name=name,
        file=dest.name,
        sha256=_sha256(dest),
        task=str(task.get("name", "resolution")),
        summary=summary,
        use=use,
        version=str(run_yaml.get("xtalforge_version")),
        commit=run_yaml.get("git_commit"),
        resolution=resolution,
        domain={
            "spacegroups": sorted(domain.get("spacegroups", [])),
            "max_edge": domain.get("max_edge"),
            "source": domain.get("source"),
        },
        training={
            "command": command,
            "config": run_yaml.get("config"),
            "duration": duration,
            "epochs": int(ckpt.get("epoch", 0)) + 1,
            "steps": int(ckpt.get("global_step", 0)),
            "checkpoint": checkpoint,
            "curve": _curve(run),
        },
        metrics=metrics or {},
    )
    (folder / f"{name}.yaml").write_text(
        yaml.safe_dump(card.model_dump(), sort_keys=False, allow_unicode=True)
    )
    return card
