"""Figures for the run report (matplotlib, Agg): training curves, solve-benchmark plots,
heat-map overlays, attention maps, Patterson and density slices. Each function returns a
matplotlib Figure; :func:`png_bytes` renders one."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "attention_figure",
    "curves_figure",
    "dm_maps_figure",
    "overlay_figure",
    "png_bytes",
    "powder_figure",
    "save_png",
    "solve_figure",
    "structure_maps_figure",
]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure as a PNG file (the figure is closed); returns the path."""
    Path(path).write_bytes(png_bytes(fig, dpi))
    return Path(path)


def png_bytes(fig: Any, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _plt().close(fig)
    return buf.getvalue()


def curves_figure(metrics_csv: str | Path) -> Any | None:
    """Training curves from a Lightning CSV log: loss per step, R_target and R_wilson per
    epoch (train and val; for a map task's log its val CC, the baseline's and the shell phases
    within 45°). None when the log is empty."""
    path = Path(metrics_csv)
    if not path.is_file():
        return None
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None

    def series(key: str, x: str = "step") -> tuple[list[float], list[float]]:
        pts = [(float(r[x]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        return [p[0] for p in pts], [p[1] for p in pts]

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    x, y = series("train/loss")
    axes[0].plot(x, y, lw=0.8, label="train loss (MSE)")
    axes[0].set_xlabel("step")
    axes[0].set_yscale("log")
    axes[0].legend()
    maps = any(r.get("val/cc") not in (None, "") for r in rows)  # a map task's log
    keys = (
        (("val/cc", "C1o-"), ("val/cc_baseline", "k--"), ("val/shell_45", "C2s-"))
        if maps
        else (("train/R_target", "C0-"), ("val/R_target", "C1o-"), ("val/R_wilson", "k--"))
    )
    for key, style in keys:
        x, y = series(key, "epoch")
        if x:
            # one value per epoch (the step-wise train R averaged)
            epochs = sorted(set(x))
            means = [
                float(np.mean([v for e, v in zip(x, y, strict=True) if e == ep])) for ep in epochs
            ]
            axes[1].plot(epochs, means, style, label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("map CC, shell phases ≤ 45°" if maps else "R on the target shell")
    axes[1].legend()
    fig.tight_layout()
    return fig


def solve_figure(rows: list[dict[str, Any]]) -> Any:
    """Solved fraction vs resolution, one line per (method, data), and the extension rows
    as bars."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    plain = [r for r in rows if r["data"] == "truth" and r["scored_to"] == r["d_min"]]
    for method in sorted({r["method"] for r in plain}):
        pts = sorted((r["d_min"], r["solved_fraction"]) for r in plain if r["method"] == method)
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
    axes[0].set_xlabel("d_min (Å)")
    axes[0].set_ylabel("solved fraction (CC ≥ 0.8)")
    axes[0].set_ylim(-0.05, 1.05)
    if plain:
        axes[0].legend()
    ext = [r for r in rows if r["scored_to"] != r["d_min"] or r["data"] != "truth"]
    labels = [f"{r['method']}\n{r['data']} {r['d_min']:g}" for r in ext]
    axes[1].bar(range(len(ext)), [r["solved_fraction"] for r in ext], color="C2")
    axes[1].set_xticks(range(len(ext)), labels, fontsize=7)
    axes[1].set_ylabel("solved fraction")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("resolution extension rows")
    fig.tight_layout()
    return fig


def overlay_figure(
    base: np.ndarray, heat: np.ndarray, title: str, heat_label: str = "Grad-CAM"
) -> Any:
    """A heat map over an hkl-grid input, both averaged over l (arrays (h, k, l))."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    b, h = base.mean(axis=2).T, heat.mean(axis=2).T
    axes[0].imshow(b, origin="lower", cmap="gray")
    axes[0].set_title("input (known amplitudes)")
    im = axes[1].imshow(h, origin="lower", cmap="inferno")
    axes[1].set_title(heat_label)
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[2].imshow(b, origin="lower", cmap="gray")
    axes[2].imshow(h, origin="lower", cmap="inferno", alpha=0.55)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_xlabel("h (voxel)")
        ax.set_ylabel("k (voxel)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def attention_figure(maps: list[np.ndarray], ratios: list[float], n_ordinary: int) -> Any:
    """Head-mean attention of every block for one structure, and the absent/ordinary
    attention ratio per block."""
    plt = _plt()
    k = len(maps)
    fig, axes = plt.subplots(1, k + 1, figsize=(3.0 * (k + 1), 3.2))
    for i, (ax, m) in enumerate(zip(axes, maps, strict=False)):
        ax.imshow(m.mean(axis=0), cmap="viridis", aspect="auto")
        ax.axhline(n_ordinary - 0.5, color="w", lw=0.5)
        ax.axvline(n_ordinary - 0.5, color="w", lw=0.5)
        ax.set_title(f"block {i + 1} (head mean)")
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    axes[-1].bar(range(1, k + 1), ratios, color="C3")
    axes[-1].axhline(1.0, color="k", ls="--", lw=0.8)
    axes[-1].set_xlabel("block")
    axes[-1].set_title("attention to absent / ordinary")
    fig.tight_layout()
    return fig


def structure_maps_figure(refl: Any, f: np.ndarray, title: str) -> Any:
    """Patterson and density of one structure, each averaged over c (w, z)."""
    from xtalforge.diffraction.maps import density_map, patterson_map

    plt = _plt()
    patt = patterson_map(refl, f)
    rho = density_map(refl, f)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (name, arr, xl) in zip(
        axes, (("Patterson P(u, v)", patt, "u"), ("density ρ(x, y)", rho, "x")), strict=True
    ):
        im = ax.imshow(arr.mean(axis=2).T, origin="lower", cmap="magma", extent=(0, 1, 0, 1))
        ax.set_title(f"{name}, mean over the third axis")
        ax.set_xlabel(xl)
        ax.set_ylabel("v" if xl == "u" else "y")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def finite(v: float) -> str:
    """Format a metric for a table (– for NaN)."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def powder_figure(two_theta: np.ndarray, counts: np.ndarray, title: str) -> Any:
    """A powder pattern: counts against 2θ (degrees)."""
    fig, ax = _plt().subplots(figsize=(10, 3.5))
    ax.plot(two_theta, counts, lw=0.7)
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel("counts")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def dm_maps_figure(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> Any:
    """Learned density modification, one row per structure (title, map before the model step,
    after it, the truth; 3-D maps on one grid, each shown as its maximum over the third axis
    and scaled to its own range): what the step did to a flipping map."""
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3.0 * len(rows)), squeeze=False)
    for r, (title, *maps) in enumerate(rows):
        for c, (name, m) in enumerate(
            zip(("before the step", "after", "truth"), maps, strict=True)
        ):
            ax = axes[r, c]
            ax.imshow(m.max(axis=2).T, origin="lower", cmap="magma", extent=(0, 1, 0, 1))
            ax.set_title(f"{title}: {name}" if c == 0 else name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
