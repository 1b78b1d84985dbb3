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
from xtalforge.tasks.shipped import shipped_cards

__all__ = ["InfoTable", "describe_file", "model_card_table", "shipped_models_table"]

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
    if not path.exists() and path.name in {c.name for c in shipped_cards()}:
        return [InfoTable(f"{path} (shipped model)", describe_checkpoint(path))]
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


def _resolution_text(res: dict[str, float]) -> str:
    low = f"{res['d_low']:g}"
    if res.get("d_low_max") and res["d_low_max"] != res["d_low"]:
        low += f"–{res['d_low_max']:g}"
    return f"{low} → {res['d_high']:g} Å"


def shipped_models_table() -> InfoTable:
    """One row per model that ships with xtalforge (``xtalforge models list``)."""
    rows = [
        (
            c.name,
            c.task,
            _resolution_text(c.resolution),
            f"{len(c.domain.get('spacegroups', []))} groups, edges ≤ "
            f"{float(c.domain.get('max_edge') or 0):.1f} Å",
            f"{c.training.get('duration')} (shipped: epoch {c.training.get('epochs')})",
            c.use,
        )
        for c in shipped_cards()
    ]
    return InfoTable(
        "models shipped with xtalforge (use a name wherever a checkpoint path is taken)",
        rows,
        ("name", "task", "resolution", "domain", "training", "use"),
    )


def model_card_table(name: str) -> InfoTable:
    """A shipped model's card as field/value rows (``xtalforge models show NAME``)."""
    cards = {c.name: c for c in shipped_cards()}
    if name not in cards:
        raise XtalforgeError(
            f"{name}: no shipped model of that name (shipped: {', '.join(cards) or 'none'})"
        )
    c = cards[name]
    t = c.training
    rows = [
        ("summary", c.summary),
        ("use", c.use),
        ("task", c.task),
        ("resolution", _resolution_text(c.resolution)),
        ("space groups seen", ", ".join(c.domain.get("spacegroups", []))),
        ("longest cell edge seen", f"{float(c.domain.get('max_edge') or 0):.1f} Å"),
        ("training command", str(t.get("command"))),
        ("training", str(t.get("duration"))),
        ("shipped checkpoint", f"after epoch {t.get('epochs')} ({t.get('steps')} steps)"),
    ]
    rows += [
        (
            f"curve, epoch {p['epoch']}",
            ", ".join(f"{k} {v:.3f}" for k, v in p.items() if k != "epoch"),
        )
        for p in t.get("curve", [])
    ]
    rows += [(f"metric: {k}", str(v)) for k, v in c.metrics.items()]
    rows += [
        ("version, commit", f"{c.version}, {c.commit}"),
        ("file", f"{c.file} ({c.sha256[:12]}…)"),
    ]
    return InfoTable(f"model card: {c.name}", rows)
