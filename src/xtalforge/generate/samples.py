"""Generated structures written as CIF files (``xtalforge sample``)."""

from __future__ import annotations

from pathlib import Path

from xtalforge.crystal.model import Crystal
from xtalforge.generate.generator import Generator
from xtalforge.io.cif_structure import write_cif

__all__ = ["write_samples"]


def write_samples(gen: Generator, n: int, seed: int, out: str | Path) -> list[tuple[Path, Crystal]]:
    """Write structures ``seed`` … ``seed + n − 1`` of ``gen`` as
    ``out/<name>-<seed>.cif``; returns (path, structure) of each."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(n):
        c = gen.sample(seed + i)
        path = out / f"{gen.config.name}-{seed + i:06d}.cif"
        write_cif(c, path, name=path.stem.replace("-", "_"))
        written.append((path, c))
    return written
