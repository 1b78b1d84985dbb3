"""What a model was trained on (space groups, longest cell edge), saved in its checkpoint, and
the warnings when it is applied to data outside that: a model trained on P2_1 has never seen
P-3 intensity statistics, so its predictions there are an extrapolation the user should know
about.

A domain is a plain dict (it is stored among the checkpoint's hyper-parameters):
``{"spacegroups": [xhm, ...], "max_edge": Å, "source": str}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gemmi

from xtalforge.crystal.symmetry import resolve_space_group
from xtalforge.data.shards import read_manifest
from xtalforge.errors import CrystalError
from xtalforge.generate.config import load_config
from xtalforge.tasks.base import DataSource

__all__ = ["domain_warnings", "merge_domains", "training_domain"]

#: A cell edge up to this factor beyond the longest training edge is not flagged (Å / Å).
EDGE_SLACK = 1.05


def training_domain(source: DataSource) -> dict[str, Any]:
    """The domain of a run's training data: the dataset manifest's space groups and longest
    cell edge, or for on-the-fly data the generator config's space groups and ``a_max``."""
    if source.root is not None:
        m = read_manifest(source.root)
        edges = m.get("max_edges") or []
        return {
            "spacegroups": sorted(m.get("spacegroups") or {}),
            "max_edge": float(max(edges)) if edges else None,
            "source": str(m.get("name") or source.root),
        }
    gen = load_config(source.generator)
    return {
        "spacegroups": sorted(gen.spacegroups),
        "max_edge": float(gen.cell.a_max),
        "source": f"generator {gen.name}",
    }


def merge_domains(
    first: dict[str, Any] | None, second: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The union of two domains (a fine-tuned model has seen both its base's data and its own);
    None stays unknown."""
    if not first or not second:
        return None
    edges = [e for e in (first.get("max_edge"), second.get("max_edge")) if e is not None]
    return {
        "spacegroups": sorted(set(first["spacegroups"]) | set(second["spacegroups"])),
        "max_edge": max(edges) if edges else None,
        "source": f"{first.get('source')} + {second.get('source')}",
    }


def _numbers(symbols: Iterable[str]) -> set[int]:
    out = set()
    for s in symbols:
        try:
            out.add(resolve_space_group(s).number)
        except CrystalError:
            continue
    return out


def domain_warnings(
    domain: dict[str, Any] | None,
    spacegroups: Iterable[gemmi.SpaceGroup | str],
    max_edge: float | None,
    what: str,
) -> list[str]:
    """Warnings when data (``what``: a file or dataset name) lie outside a model's training
    domain: a space group (compared by IT number, so another setting of a trained group is
    in) that the model never saw, or a cell edge longer than any it saw (Å). Empty for an
    unknown domain (checkpoints from before it was recorded)."""
    if not domain or not domain.get("spacegroups"):
        return []
    trained = _numbers(domain["spacegroups"])
    groups = {sg.xhm(): sg.number for sg in map(resolve_space_group, spacegroups)}
    outside = sorted(x for x, n in groups.items() if n not in trained)
    shown = ", ".join(domain["spacegroups"][:6]) + (" …" if len(domain["spacegroups"]) > 6 else "")
    notes = []
    if outside:
        some = ", ".join(outside[:6]) + (
            f" and {len(outside) - 6} more" if len(outside) > 6 else ""
        )
        these = f"space group {some} is" if len(outside) == 1 else f"space groups {some} are"
        notes.append(
            f"{what}: {these} outside the model's training set ({shown}); its "
            "predictions there are an extrapolation"
        )
    limit = domain.get("max_edge")
    if limit and max_edge is not None and max_edge > EDGE_SLACK * limit:
        notes.append(
            f"{what}: a cell edge of {max_edge:.1f} Å is longer than any the model "
            f"was trained on ({limit:.1f} Å); its predictions there are an "
            "extrapolation"
        )
    return notes
