"""Attention maps of the XRD transformer, and their statistics by reflection class.

The dataset's reflection lists hold no systematically absent reflections, so for the thesis's
question — do the blocks attend to absences? — they are appended as extra tokens that are
*known to be zero* (value 0, known); the statistic per block is the mean attention weight a
query gives to one absent key over the mean weight it gives to one ordinary key (1: no
preference), averaged over heads and over the real (ordinary) queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xtalforge.errors import XtalforgeError

__all__ = ["absent_reflections", "attention_maps", "attention_statistics"]


def attention_maps(module: Any, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per block (B, heads, N, N) attention weights for a list-mode batch."""
    net = module.net
    if not hasattr(net, "attention_maps"):
        raise XtalforgeError("attention maps need the transformer (a list-mode model)")
    module.eval()
    with torch.no_grad():
        return net.attention_maps(
            batch["hkl"],
            batch["value"] * batch["known"],
            batch["known"],
            batch["d"],
            batch["pad_mask"],
        )


def absent_reflections(
    cell: tuple[float, ...], spacegroup: str, d_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """Systematically absent reflections (one of each Friedel pair, h ≥ 0 half) with d ≥ d_min:
    (hkl (n, 3), d (n,) Å)."""
    import gemmi

    from xtalforge.diffraction.reflections import d_spacing

    sg = gemmi.SpaceGroup(spacegroup)
    ops = sg.operations()
    uc = gemmi.UnitCell(*cell)
    lim = [int(np.floor(e / d_min)) + 1 for e in (uc.a, uc.b, uc.c)]
    hkl = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in lim], indexing="ij"), -1).reshape(
        -1, 3
    )
    first = np.where(hkl[:, 0] != 0, hkl[:, 0], np.where(hkl[:, 1] != 0, hkl[:, 1], hkl[:, 2]))
    hkl = hkl[first > 0]
    d = d_spacing(hkl, cell)
    hkl, d = hkl[d >= d_min], d[d >= d_min]
    absent = np.array([ops.is_systematically_absent(h.tolist()) for h in hkl], bool)
    return hkl[absent], d[absent]


def attention_statistics(
    module: Any, item: dict[str, torch.Tensor], cell: tuple[float, ...], spacegroup: str
) -> dict[str, Any]:
    """Per block: attention to an absent key / attention to an ordinary key (see module doc),
    plus the maps for the one structure (heads and head mean) for plotting."""
    from xtalforge.tasks.resolution.items import collate_reflections

    hkl_abs, d_abs = absent_reflections(cell, spacegroup, float(item["d"].min()))
    n_abs = len(hkl_abs)
    extended = dict(item)
    extended["hkl"] = torch.cat([item["hkl"], torch.from_numpy(hkl_abs.astype(np.int64))])
    extended["d"] = torch.cat([item["d"], torch.from_numpy(d_abs.astype(np.float32))])
    extended["value"] = torch.cat([item["value"], torch.zeros(n_abs)])
    for key in ("known",):
        extended[key] = torch.cat([item[key], torch.ones(n_abs, dtype=torch.bool)])
    for key in ("target_mask",):
        extended[key] = torch.cat([item[key], torch.zeros(n_abs, dtype=torch.bool)])
    for key in ("wilson", "scale"):
        extended[key] = torch.cat([item[key], torch.zeros(n_abs)])
    batch = collate_reflections([extended])
    maps = attention_maps(module, batch)
    n = len(item["hkl"])
    ratios = []
    for w in maps:
        w = w[0, :, :n]  # real queries only
        if n_abs:
            to_abs = w[..., n:].mean(dim=-1)
            to_ord = w[..., :n].mean(dim=-1)
            ratios.append(float((to_abs / to_ord.clamp_min(1e-12)).mean()))
        else:
            ratios.append(float("nan"))
    return {
        "absent": n_abs,
        "ordinary": n,
        "absent_over_ordinary": ratios,
        "maps": [m[0].numpy() for m in maps],
    }
