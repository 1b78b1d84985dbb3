"""Generated versus real structures (``xtalforge compare``): cell volume, largest edge, sorted-edge
ratios, monoclinic β and the interatomic-distance histogram, each with a two-sample KS
statistic. Lengths in Å, volumes in Å³, angles in degrees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from xtalforge.crystal.model import Crystal
from xtalforge.generate.descriptors import cell_descriptors, interatomic_distances

__all__ = ["Comparison", "compare_sets", "plot_comparison"]

#: Distances (Å) binned for the histogram.
DISTANCE_BINS = np.linspace(0.0, 4.0, 81)


@dataclass
class Comparison:
    """Per-quantity samples of the generated and the real set, and KS statistics."""

    generated: dict[str, np.ndarray]
    real: dict[str, np.ndarray]
    ks: dict[str, float]

    def rows(self) -> list[tuple[str, float, float, float]]:
        """(quantity, generated median, real median, KS statistic) per quantity."""
        out = []
        for key in self.generated:
            g, r = self.generated[key], self.real[key]
            out.append(
                (
                    key,
                    float(np.median(g)) if len(g) else float("nan"),
                    float(np.median(r)) if len(r) else float("nan"),
                    self.ks[key],
                )
            )
        return out


def _quantities(crystals: list[Crystal], hydrogens: bool) -> dict[str, np.ndarray]:
    cells = cell_descriptors(crystals)
    dist = [interatomic_distances(c, float(DISTANCE_BINS[-1]), hydrogens) for c in crystals]
    return {
        "volume (Å³)": cells.volume,
        "largest edge (Å)": cells.largest_edge,
        "a3/a2": cells.ratio_32,
        "a2/a1": cells.ratio_21,
        "β monoclinic (°)": cells.beta,
        "interatomic distance (Å)": np.concatenate(dist) if dist else np.zeros(0),
    }


def compare_sets(
    generated: list[Crystal], real: list[Crystal], hydrogens: bool = False
) -> Comparison:
    """Descriptors of both sets and the two-sample Kolmogorov–Smirnov statistic of each (NaN
    where a set has no values, e.g. β without monoclinic cells)."""
    gen, ref = _quantities(generated, hydrogens), _quantities(real, hydrogens)
    ks = {
        k: float(stats.ks_2samp(gen[k], ref[k]).statistic)
        if len(gen[k]) and len(ref[k])
        else float("nan")
        for k in gen
    }
    return Comparison(gen, ref, ks)


def distance_histogram(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density of distances per bin of :data:`DISTANCE_BINS` (bin centres, density)."""
    hist, edges = np.histogram(distances, bins=DISTANCE_BINS, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), hist


def plot_comparison(
    cmp: Comparison, path: str | Path, labels: tuple[str, str] = ("generated", "real")
) -> Path:
    """One PNG, a panel per quantity, generated and real overlaid as normalised histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for ax, key in zip(axes.ravel(), cmp.generated):
        g, r = cmp.generated[key], cmp.real[key]
        both = np.concatenate([g, r])
        if not len(both):
            ax.set_title(f"{key}: no values")
            continue
        if key.startswith("interatomic"):
            bins = DISTANCE_BINS
        elif key.startswith("volume"):
            bins = np.geomspace(max(both.min(), 1.0), both.max() * 1.01, 40)
            ax.set_xscale("log")
        else:
            bins = np.linspace(both.min(), both.max() * 1.0001, 40)
        for values, label, colour in ((g, labels[0], "C0"), (r, labels[1], "C3")):
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    histtype="step",
                    lw=1.6,
                    color=colour,
                    label=f"{label} (n={len(values)})",
                )
        ax.set_title(f"{key}   KS = {cmp.ks[key]:.2f}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
