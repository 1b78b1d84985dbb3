"""What the map and phase tasks' LightningModules share: the optimiser from ``hparams.optim``,
validation sums pooled over an epoch, and the headline of an evaluation."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from xtalforge.train.optim import configure_optimizers

__all__ = ["TaskModule", "headline"]


class TaskModule(L.LightningModule):
    """Base of :class:`PattersonSR`, :class:`PattersonDensity` and :class:`PhaseSign`
    (hyper-parameters ``optim`` and ``max_epochs`` expected)."""

    _sums: dict[str, torch.Tensor]

    def add_sums(self, sums: dict[str, torch.Tensor], n: int) -> None:
        """Add per-batch sums (and the batch size as ``n``) to the epoch's totals."""
        if not hasattr(self, "_sums"):
            self._sums = {}
        sums = {**sums, "n": torch.tensor(float(n))}
        for k, v in sums.items():
            self._sums[k] = self._sums.get(k, 0) + v.detach().double().cpu()

    def log_means(self, stage: str, prog_bar: tuple[str, ...] = ()) -> None:
        """Log every total divided by the number of structures, then reset."""
        s, self._sums = getattr(self, "_sums", {}), {}
        for k, v in s.items():
            if k != "n":
                self.log(f"{stage}/{k}", float(v / s["n"]), prog_bar=k in prog_bar)

    def configure_optimizers(self) -> Any:
        return configure_optimizers(self.parameters(), self.hparams.optim, self.hparams.max_epochs)


def headline(
    name: str, value: float, better: str, baseline: float, baseline_name: str
) -> dict[str, Any]:
    """The keys every evaluation starts with: ``metric`` {name, value, better}, ``baseline``
    (the trivial baseline's value of the same metric on the same structures) and its name."""
    return {
        "metric": {"name": name, "value": float(value), "better": better},
        "baseline": float(baseline),
        "baseline_name": baseline_name,
    }
