"""Optimiser and learning-rate schedule of every task (from ``OptimConfig`` as a mapping)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["configure_optimizers"]


def configure_optimizers(
    params: Any, o: dict[str, Any], max_epochs: int, monitor: str = "val/loss"
) -> Any:
    """Adam/AdamW with ReduceLROnPlateau on ``monitor``, cosine (with linear warm-up) or no
    schedule, in Lightning's ``configure_optimizers`` return format."""
    cls = torch.optim.AdamW if o.get("name", "adam") == "adamw" else torch.optim.Adam
    opt = cls(params, lr=o.get("lr", 1e-3), weight_decay=o.get("weight_decay", 0))
    sched = o.get("scheduler", "plateau")
    if sched == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min",
            factor=o.get("factor", 0.1),
            patience=o.get("patience", 5),
            min_lr=o.get("min_lr", 0.0),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": monitor}}
    if sched == "cosine":
        epochs = max(1, max_epochs)
        warm = min(o.get("warmup_epochs", 0), epochs - 1)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, epochs - warm), eta_min=o.get("min_lr", 0.0)
        )
        if not warm:
            return {"optimizer": opt, "lr_scheduler": cosine}
        ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=warm)
        both = torch.optim.lr_scheduler.SequentialLR(opt, [ramp, cosine], [warm])
        return {"optimizer": opt, "lr_scheduler": both}
    return opt
