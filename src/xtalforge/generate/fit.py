"""Fit a generator config to a set of real structures (``xtalforge stats``).

Fitted: space-group frequencies (mapped to the reference setting of each group, which is what
the generator draws cells for), a log-normal cell volume, edge bounds and the bounded edge ratio,
the monoclinic β bound, element frequencies on general and on special positions, the hydrogen
fraction, the volume per non-H atom, U_iso per structure and its spread within a structure, and
the probability that a special position is occupied. Lengths in Å, volumes in Å³, angles in
degrees, displacement parameters in Å².
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.elements import symbol
from xtalforge.crystal.model import Crystal
from xtalforge.errors import XtalforgeError
from xtalforge.generate.config import GeneratorConfig, LogNormal
from xtalforge.generate.descriptors import cell_descriptors
from xtalforge.generate.placement import special_operations

__all__ = ["FitResult", "fit_config", "plot_fit", "write_fit"]

#: Quantiles used for fitted ranges: wide enough for the bulk, robust to outliers.
LOW_Q, HIGH_Q = 0.05, 0.95


@dataclass
class FitResult:
    """The fitted config and the per-structure samples it was fitted to (for plots)."""

    config: GeneratorConfig
    n_structures: int
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    spacegroups: Counter = field(default_factory=Counter)
    elements_general: Counter = field(default_factory=Counter)
    elements_special: Counter = field(default_factory=Counter)

    @property
    def volume(self) -> LogNormal:
        """The fitted ln V distribution."""
        volume = self.config.cell.volume
        assert isinstance(volume, LogNormal)  # fit_config fits a log-normal volume
        return volume


def _reference_setting(sg: gemmi.SpaceGroup) -> str:
    return gemmi.find_spacegroup_by_number(sg.number).xhm()


def _range(values: np.ndarray, floor: float | None = None, digits: int = 3) -> list[float]:
    lo, hi = np.quantile(values, [LOW_Q, HIGH_Q])
    if floor is not None:
        lo = max(lo, floor)
    return [round(float(lo), digits), round(float(max(hi, lo)), digits)]


def _frequencies(counts: Counter, digits: int = 4) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, digits) for k, v in counts.most_common() if v / total >= 1e-4}


def fit_config(crystals: list[Crystal], name: str = "fitted") -> FitResult:
    """A ready :class:`GeneratorConfig` (volume-first cells, atom count from V_atom, artificial
    molecules) whose distributions match ``crystals``."""
    if len(crystals) < 2:
        raise XtalforgeError(f"need at least 2 structures to fit a generator, got {len(crystals)}")
    groups: Counter = Counter()
    general: Counter = Counter()
    special: Counter = Counter()
    h_frac, v_atom, u_mean, u_spread, p_special = [], [], [], [], []
    for c in crystals:
        groups[_reference_setting(c.spacegroup)] += 1
        order = c.site_symmetry_order()
        is_h = c.z == 1
        on_special = order > 1
        for z, sp, h in zip(c.z, on_special, is_h):
            if not h:
                (special if sp else general)[symbol(int(z))] += 1
        heavy_cell = float((c.occ * c.symmetry.n_ops / order)[~is_h].sum())
        if heavy_cell > 0:
            v_atom.append(c.volume / heavy_cell)
        h_frac.append(float(is_h.sum()) / c.n_atoms)
        u = c.u_iso[~is_h] if (~is_h).any() else c.u_iso
        defaulted = any("no displacement" in w for w in c.metadata.get("warnings", ()))
        if (u > 0).any() and not defaulted:
            u = u[u > 0]
            u_mean.append(float(u.mean()))
            u_spread.append(float(np.abs(u - u.mean()).mean()))
        n_sites = len(special_operations(c.symmetry))
        if n_sites:
            p_special.append(min(1.0, float((on_special & ~is_h).sum()) / n_sites))
    cells = cell_descriptors(crystals)
    log_v = np.log(cells.volume)
    edges = np.array([c.cell[:3] for c in crystals])
    ratio = float(np.quantile(np.maximum(cells.ratio_21, cells.ratio_32), HIGH_Q))
    beta_max = float(np.clip(np.max(cells.beta), 91.0, 150.0)) if len(cells.beta) else 125.0
    h = np.array(h_frac)
    h_range = _range(h[h > 0]) if (h > 0).sum() >= 2 else None
    if h_range is not None:
        h_range[1] = min(h_range[1], 0.9)
    u_range = _range(np.array(u_mean), floor=0.005, digits=4) if u_mean else [0.01, 0.1]
    jitter = round(min(float(np.median(u_spread)) if u_spread else 0.005, u_range[0]), 4)
    cfg = GeneratorConfig(
        name=name,
        spacegroups=_frequencies(groups),
        atoms=None,
        v_atom_count=_range(np.array(v_atom), floor=3.0, digits=2),
        cell={
            "strategy": "volume_first",
            "volume": {
                "mu": round(float(log_v.mean()), 4),
                "sigma": round(max(float(log_v.std(ddof=1)), 1e-3), 4),
            },
            "a_min": round(max(float(np.quantile(edges, 0.01)), 2.0), 2),
            "a_max": round(float(np.quantile(edges, 0.99)), 2),
            "ratio": round(max(ratio, 1.0), 3),
            "beta_max": round(beta_max, 2),
        },
        composition={
            "elements": _frequencies(general),
            "special_elements": _frequencies(special) if special else None,
            "h_fraction": h_range,
        },
        placement={
            "method": "molecule",
            "special_probability": round(float(np.mean(p_special)), 4) if p_special else 0.05,
        },
        u_iso=u_range,
        u_jitter=jitter,
    )
    samples = {
        "ln V (Å³)": log_v,
        "edge ratio max(a2/a1, a3/a2)": np.maximum(cells.ratio_21, cells.ratio_32),
        "β monoclinic (°)": cells.beta,
        "H fraction": h,
        "V per non-H atom (Å³)": np.array(v_atom),
        "mean U_iso (Å²)": np.array(u_mean),
    }
    return FitResult(cfg, len(crystals), samples, groups, general, special)


def plot_fit(fit: FitResult, path: str | Path) -> Path:
    """A PNG with one panel per fitted distribution (histogram of the real values, fitted
    range or density overlaid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = fit.config
    fig, axes = plt.subplots(3, 3, figsize=(13, 11))
    ax = axes.ravel()
    top = fit.spacegroups.most_common(12)
    ax[0].barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color="C0")
    ax[0].set_title(f"space groups (top {len(top)} of {len(fit.spacegroups)})")
    bounds = {
        "edge ratio max(a2/a1, a3/a2)": (None, cfg.cell.ratio),
        "β monoclinic (°)": (None, cfg.cell.beta_max),
        "H fraction": cfg.composition.h_fraction,
        "V per non-H atom (Å³)": cfg.v_atom_count,
        "mean U_iso (Å²)": cfg.u_iso,
    }
    for a, (label, values) in zip(ax[1:7], fit.samples.items()):
        if len(values):
            a.hist(values, bins=30, density=True, color="0.6")
        a.set_title(label)
        if label.startswith("ln V"):
            mu, sigma = fit.volume.mu, fit.volume.sigma
            x = np.linspace(mu - 4 * sigma, mu + 4 * sigma, 200)
            a.plot(
                x,
                np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi)),
                "C3",
                label=f"LogNormal μ={mu:.2f}, σ={sigma:.2f}",
            )
            a.legend(fontsize=8)
        for b in bounds.get(label) or ():
            if b is not None:
                a.axvline(b, color="C3", ls="--")
    for a, counts, title in (
        (ax[7], fit.elements_general, "elements, general positions"),
        (ax[8], fit.elements_special, "elements, special positions"),
    ):
        top_el = counts.most_common(12)
        a.bar([k for k, _ in top_el], [v for _, v in top_el], color="C2")
        a.set_title(title)
    fig.suptitle(f"{cfg.name}: fitted to {fit.n_structures} structures")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_fit(fit: FitResult, path: str | Path, header: str = "") -> Path:
    """Write the fitted config as YAML (``header`` lines first, each starting with ``#``) and
    its plots beside it (``.png``); returns the plot's path."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = fit.config.model_dump(mode="json", exclude_none=False)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return plot_fit(fit, path.with_suffix(".png"))
