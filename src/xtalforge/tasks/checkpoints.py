"""Checkpoints: loading a trained model of any task, and describing one (what ``xtalforge
info CKPT`` prints) from a single read of the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xtalforge.errors import XtalforgeError
from xtalforge.tasks.base import TaskModule
from xtalforge.tasks.registry import get_task
from xtalforge.tasks.shipped import model_path

__all__ = ["describe_checkpoint", "load_checkpoint", "read_checkpoint"]


def read_checkpoint(path: str | Path) -> tuple[TaskModule, dict[str, Any]]:
    """(the model in eval mode on the CPU, the checkpoint's other contents: epoch,
    global_step, …); ``path`` may also name a shipped model (``dm-1.5``,
    :mod:`xtalforge.tasks.shipped`). The task's name is in the hyper-parameters (``resolution``
    for checkpoints older than the name). Raises :class:`XtalforgeError` naming the file."""
    path = model_path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = ckpt["hyper_parameters"]
        name = str(hparams["task"].get("name", "resolution"))
    except Exception as exc:  # any unreadable file is a bad checkpoint
        raise XtalforgeError(f"{path}: not an xtalforge checkpoint ({exc})") from None
    try:
        module = get_task(name).module(**hparams)
        module.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError, XtalforgeError) as exc:
        raise XtalforgeError(f"{path}: not a {name} checkpoint ({exc})") from None
    rest = {k: v for k, v in ckpt.items() if k not in ("state_dict", "hyper_parameters")}
    return module.eval(), rest


def load_checkpoint(path: str | Path) -> TaskModule:
    """A trained model of any task from a checkpoint (CPU, eval mode)."""
    return read_checkpoint(path)[0]


def describe_checkpoint(path: str | Path) -> list[tuple[str, str]]:
    """(field, value) rows that say what a checkpoint is: task, model and size, its settings
    (resolution range for amplitude extension), training data and domain, epoch and step."""
    module, rest = read_checkpoint(path)
    hp = module.hparams
    model = hp.get("model", {})
    n_params = sum(p.numel() for p in module.parameters())
    task = dict(hp.get("task", {}))
    rows = [
        ("task", module.task_name),
        (
            "model",
            f"{model.get('name')} ({model.get('size', 'small')}, {n_params / 1e6:.2f} M "
            "parameters)",
        ),
    ]
    if module.task_name == "resolution":
        rows.append(
            (
                "resolution",
                f"{task['d_low']} → {task['d_high']} Å "
                f"({task.get('normalization', 'wilson')} normalisation)",
            )
        )
    else:
        rows.append(
            ("task settings", ", ".join(f"{k}={v}" for k, v in task.items() if k != "name"))
        )
    domain = hp.get("training_domain")
    if domain:
        rows.append(
            ("trained on", f"{domain.get('source')}: {', '.join(domain.get('spacegroups', []))}")
        )
        if domain.get("max_edge"):
            rows.append(("longest cell edge", f"{domain['max_edge']:.1f} Å"))
    elif module.task_name == "resolution":
        rows.append(("trained on", "not recorded (an older checkpoint)"))
    source = module.data_source or {}
    if source.get("path"):
        rows.append(("training data", source["path"]))
    elif source.get("generator"):
        gen = source["generator"]
        name = gen if isinstance(gen, str) else gen.get("name", "a generator config")
        rows.append(("training data", f"generated on the fly ({name})"))
    rows.append(("epoch, step", f"{rest.get('epoch')}, {rest.get('global_step')}"))
    return rows
