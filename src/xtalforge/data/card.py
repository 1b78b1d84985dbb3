"""``xtalforge inspect``: a dataset card (counts, splits, distributions, tensor slices)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from xtalforge.data.shards import read_manifest

__all__ = ["dataset_card"]

#: Rows read for the distributions (spread over the shards); the card never loads everything.
MAX_ROWS = 5000


def dataset_card(root: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``card.md``, ``distributions.png`` and ``slices.png`` to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root, out = Path(root), Path(out)
    m = read_manifest(root)
    out.mkdir(parents=True, exist_ok=True)
    files = [root / s["file"] for s in m.get("shards", [])]
    per_file = max(1, MAX_ROWS // max(1, len(files)))
    cols = ["cell", "n_refl", "d_min", "z", "spacegroup"]
    cells, n_refl, n_atoms = [], [], []
    elements: Counter[str] = Counter()
    for path in files:
        t = pq.read_table(path, columns=cols).slice(0, per_file)
        cells.append(np.array(t.column("cell").to_pylist(), float).reshape(-1, 6))
        n_refl.append(t.column("n_refl").to_numpy())
        for z in t.column("z").to_pylist():
            n_atoms.append(len(z))
            elements.update(z)
    cells_a = np.concatenate(cells) if cells else np.zeros((0, 6))
    from xtalforge.crystal.elements import symbol
    from xtalforge.crystal.model import cell_volume

    volumes = np.array([cell_volume(*c) for c in cells_a])
    fig, ax = plt.subplots(2, 3, figsize=(13, 7))
    panels = [
        (volumes, "cell volume (Å³)"),
        (cells_a[:, :3].max(axis=1) if len(cells_a) else [], "largest edge (Å)"),
        (np.array(n_atoms), "atoms in the asymmetric unit"),
        (np.concatenate(n_refl) if n_refl else [], "unique reflections"),
    ]
    for a, (values, title) in zip(ax.ravel(), panels):
        a.hist(values, bins=30, color="C0")
        a.set_title(title)
    top = Counter(m.get("spacegroups", {})).most_common(10)
    ax[1, 1].barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color="C1")
    ax[1, 1].set_title("space groups")
    el = elements.most_common(10)
    ax[1, 2].bar([symbol(int(k)) for k, _ in el], [v for _, v in el], color="C2")
    ax[1, 2].set_title("elements (asymmetric unit)")
    fig.suptitle(f"{m['name']}: {m.get('rows')} structures")
    fig.tight_layout()
    dist_png = out / "distributions.png"
    fig.savefig(dist_png, dpi=80)
    plt.close(fig)
    written = [dist_png]
    if files and m.get("hkl_grid") and m.get("kind") != "measured":
        written.append(_slices(root, m, out / "slices.png", plt))
    card = out / "card.md"
    splits = m.get("splits", {})
    lines = [
        f"# Dataset card: {m['name']}",
        "",
        f"- structures: {m.get('rows')} in {len(files)} shard(s); splits "
        + ", ".join(f"{k} {v}" for k, v in splits.items()),
        f"- status: {m.get('status')}; xtalforge {m.get('version')}, commit "
        f"{m.get('git_commit')}; spec hash {m.get('spec_hash')}",
        f"- reflections: {m.get('n_reflections', 0):,}; hkl grid {m.get('hkl_grid')}",
        f"- space groups: {dict(top)}",
        f"- median volume {np.median(volumes) if len(volumes) else float('nan'):.0f} Å³, "
        f"median atoms (ASU) {np.median(n_atoms) if n_atoms else float('nan'):.0f}",
        "",
        *[f"![{p.stem}]({p.name})" for p in written],
        "",
        *_reading_it(root),
    ]
    card.write_text("\n".join(lines) + "\n")
    return {"manifest": m, "files": [str(p) for p in [card, *written]]}


def _reading_it(root: Path) -> list[str]:
    """How to read the shards with pandas, DuckDB and Hugging Face ``datasets``."""
    shards = root / "shards"
    return [
        "## Reading it",
        "",
        "Plain zstd Parquet, one row per structure (the `.json` files beside the shards are",
        "checksums):",
        "",
        "```python",
        "import glob, pandas as pd",
        f'files = sorted(glob.glob("{shards}/*.parquet"))',
        "df = pd.concat(pd.read_parquet(f) for f in files)",
        "",
        "import duckdb",
        f"duckdb.sql(\"SELECT split, count(*) FROM '{shards}/*.parquet' GROUP BY split\")",
        "",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_files={"train": files}, split="train")',
        "",
        "from xtalforge.data.torch_data import ShardDataset",
        f'train = ShardDataset("{root}", "train")  # streamed, one row group at a time',
        "```",
    ]


def _slices(root: Path, m: dict, path: Path, plt: Any) -> Path:
    """l = 0 slices of the hkl-grid amplitudes and of each stored map for the first rows."""
    from xtalforge.data.torch_data import ShardDataset
    from xtalforge.diffraction.hkl_grid import HKLGrid
    from xtalforge.diffraction.reflections import reflections_from_hkl

    spec = m.get("spec", {}).get("compute", {})
    d_high = spec.get("d_high", 0.8)
    d_low = spec.get("d_low") or d_high * 1.5
    ds = ShardDataset(root, None)
    grid = HKLGrid.from_bounds(tuple(m["max_edges"]), d_high, list(m["spacegroups"]))
    table = pq.read_table(root / m["shards"][0]["file"]).slice(0, 3)
    maps = [c for c in table.column_names if c.startswith(("patterson_", "density_"))]
    shapes = {mp["name"]: mp["shape"] for mp in spec.get("patterson", []) + spec.get("density", [])}
    n = min(3, len(ds))
    fig, ax = plt.subplots(n, 2 + len(maps), figsize=(3.2 * (2 + len(maps)), 3 * n), squeeze=False)
    for r in range(n):
        row = ds.row(r)
        refl = reflections_from_hkl(
            row["hkl"].reshape(-1, 3).astype(np.int64),
            tuple(row["cell"].tolist()),
            row["spacegroup"],
        )
        dense = grid.to_dense(refl, np.asarray(row["F"], np.float32), d_low, d_high)
        top = float(dense.values[dense.known].max()) if dense.known.any() else 1.0
        known = np.where(dense.known, dense.values, 0.0) / (top or 1.0)
        ax[r, 0].imshow(known[:, :, 0].T, origin="lower", cmap="viridis")
        ax[r, 0].set_title(f"id {row['id']}: known |F|, l=0")
        ax[r, 1].imshow((dense.values / (top or 1.0))[:, :, 0].T, origin="lower", cmap="viridis")
        ax[r, 1].set_title("known + target, l=0")
        for c, name in enumerate(maps):
            shape = shapes.get(name.split("_", 1)[1])
            arr = np.asarray(table.column(name)[r].as_py(), np.float32).reshape(shape)
            ax[r, 2 + c].imshow(arr[:, :, 0].T, origin="lower", cmap="magma")
            ax[r, 2 + c].set_title(f"{name}, w=0")
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
