"""What a file is and holds (``xtalforge info``): a structure (cell, group, content, reflection
counts), reflections (count, kind, cell, d range, reader notes), a SHELX .ins/.res (cell,
group, SFAC/UNIT, HKLF) or a checkpoint (task, model, domain). Returned as plain tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xtalforge.crystal.model import Crystal
from xtalforge.diffraction.reflections import d_spacing, reflections
from xtalforge.errors import XtalforgeError
from xtalforge.io import file_kind, holds_a_model, read_ins, read_reflections, read_structure
from xtalforge.tasks.checkpoints import describe_checkpoint

__all__ = ["InfoTable", "describe_file"]

#: Resolutions (Å) at which ``info`` counts a structure's unique reflections.
COUNT_RESOLUTIONS = (2.0, 1.5, 1.2, 1.0, 0.8)


@dataclass
class InfoTable:
    """A titled table; ``columns`` empty for a two-column field/value list."""

    title: str
    rows: Sequence[Sequence[str]]
    columns: tuple[str, ...] = field(default_factory=tuple)


def _cell_text(cell: tuple[float, ...]) -> str:
    return "a={:.4f} b={:.4f} c={:.4f} Å  α={:.3f} β={:.3f} γ={:.3f}°".format(*cell)


def _structure(path: Path, crystal: Crystal) -> list[InfoTable]:
    sg = crystal.spacegroup
    comp = crystal.composition()
    rows = [
        ("space group", f"{sg.xhm()} (No. {sg.number}, Hall {sg.hall})"),
        ("cell", _cell_text(crystal.cell)),
        ("volume", f"{crystal.volume:.2f} Å³"),
        ("atoms (ASU)", str(crystal.n_atoms)),
        ("cell content", " ".join(f"{k}{v:g}" for k, v in sorted(comp.items()))),
    ]
    counts = []
    for d_min in COUNT_RESOLUTIONS:
        r = reflections(crystal, d_min)
        counts.append((f"{d_min}", str(len(r)), str(int(r.centric.sum()))))
    return [
        InfoTable(str(path), rows),
        InfoTable("unique reflections", counts, ("d_min (Å)", "unique", "centric")),
    ]


def _reflections(path: Path) -> list[InfoTable]:
    data = read_reflections(path)
    rows = [("reflections", str(len(data))), ("kind", data.kind)]
    if data.cell:
        rows.append(("cell", " ".join(f"{v:.4f}" for v in data.cell)))
    if data.spacegroup:
        sg = data.spacegroup
        rows.append(("space group", f"{sg.xhm()} (No. {sg.number})"))
        if data.cell:
            d = d_spacing(data.hkl, data.cell)
            rows.append(("d range", f"{d.min():.3f} – {d.max():.3f} Å"))
    rows += [("note", note) for note in data.notes]
    return [InfoTable(str(path), rows)]


def _ins(path: Path) -> list[InfoTable]:
    ins = read_ins(path)
    sg = ins.spacegroup
    h = ins.hklf
    line = f"HKLF {h.n}" + (
        ""
        if h.is_identity
        else f", scale {h.scale:g}, matrix "
        + " / ".join(" ".join(f"{v:g}" for v in row) for row in h.matrix)
    )
    rows = [
        ("space group", f"{sg.xhm()} (No. {sg.number}, Hall {sg.hall})"),
        ("cell", _cell_text(ins.cell)),
        ("wavelength", f"{ins.wavelength:g} Å"),
        ("cell content", " ".join(f"{k}{v:g}" for k, v in ins.composition().items())),
        ("reflections", line),
    ]
    return [InfoTable(str(path), rows)]


def describe_file(path: str | Path) -> list[InfoTable]:
    """The tables ``xtalforge info`` prints for ``path`` (its kind told by content)."""
    path = Path(path)
    kind = file_kind(path)
    if kind in ("folder", "dataset"):
        raise XtalforgeError(f"{path}: a folder (for a dataset: xtalforge inspect {path})")
    if kind == "shelx_ins":
        tables = _ins(path)
        if holds_a_model(path):  # a .res with atoms is a structure too
            tables += _structure(path, read_structure(path))
        return tables
    if kind == "checkpoint" or path.suffix.lower() == ".ckpt":
        return [InfoTable(str(path), describe_checkpoint(path))]
    if kind in ("mtz", "xds_ascii", "cif_reflections", "shelx_hkl"):
        return _reflections(path)
    return _structure(path, read_structure(path))
