"""``xtalforge report RUN_DIR``: one self-contained static HTML page for a training run.

Sections: configuration (resolved, seed, versions, commit), dataset card, training curves,
test metrics beside the Wilson baseline (evaluated on the spot when the run folder holds no
``eval/metrics.json``), reconstruction slices, interpretability (Grad-CAM and sensitivity for
the U-Nets; attention maps, absent/ordinary attention statistics and sensitivity for the
transformer), Patterson and density slices of a test structure, and the solve benchmark when
the run folder holds ``solve.json``. Images are embedded as base64 PNG; the page is written to
a temporary name and renamed, so an interrupted report never leaves a half page.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from xtalforge.analysis.attention import attention_statistics
from xtalforge.analysis.gradcam import conv_layers, grad_cam
from xtalforge.analysis.plots import (
    attention_figure,
    curves_figure,
    overlay_figure,
    png_bytes,
    solve_figure,
    structure_maps_figure,
)
from xtalforge.analysis.sensitivity import sensitivity_map
from xtalforge.data.card import dataset_card
from xtalforge.diffraction.reflections import reflections_from_hkl
from xtalforge.errors import XtalforgeError
from xtalforge.tasks import evaluate, load_checkpoint
from xtalforge.tasks.resolution import ResolutionExtension, collate_reflections, extension_dataset
from xtalforge.tasks.resolution.evaluate import N_SLICES

__all__ = ["build_report"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}img{max-width:100%}
.note{color:#555;font-size:.9em}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.3f}"
    return str(v)


def _checkpoint(run_dir: Path) -> Path:
    for name in ("best.ckpt", "last.ckpt"):
        p = run_dir / "checkpoints" / name
        if p.is_file():
            return p
    raise XtalforgeError(
        f"{run_dir}: no checkpoints/best.ckpt or last.ckpt (is it a run "
        "folder of `xtalforge train`?)"
    )


def _metrics_section(m: dict[str, Any]) -> str:
    rows = [
        ["R on the target shell (pooled)", _fmt(m["R_target"]), _fmt(m["R_wilson"])],
        ["median R per structure", _fmt(m.get("median_R_target")), _fmt(m.get("median_R_wilson"))],
        ["R on all reflections", _fmt(m.get("R_all")), "–"],
        ["SSIM (3D)", _fmt(m.get("ssim")), "–"],
    ]
    out = _table(["metric", "model", "Wilson fill"], rows)
    out += (
        f"<p>{m.get('fraction_beating_wilson', float('nan')):.0%} of the "
        f"{m.get('n_structures', '?')} test structures have a lower R than the Wilson fill.</p>"
    )
    shells = m.get("R_shells") or []
    if shells:
        out += _table(
            ["shell (Å)", "R"],
            [[f"{s['d_upper']:.3f}–{s['d_lower']:.3f}", _fmt(s["R"])] for s in shells],
        )
    return out


def _interpretability(module: Any, ds: Any, cell: tuple, sg: str) -> list[str]:
    import torch

    parts: list[str] = []
    item = ds[0]
    if module.input_mode == "grid":
        batch = {k: (v[None] if torch.is_tensor(v) else torch.tensor([v])) for k, v in item.items()}
        layers = conv_layers(module.net)
        for layer in (layers[len(layers) // 2], layers[-2]):
            cam = grad_cam(module, batch, layer)[0].numpy()
            parts.append(
                _img(
                    png_bytes(
                        overlay_figure(
                            batch["input"][0, 0].numpy(),
                            cam,
                            f"Grad-CAM at {layer} (structure {item['id']})",
                        )
                    ),
                    f"Grad-CAM {layer}",
                )
            )
        sens = sensitivity_map(module, batch)[0, 0].numpy()
        parts.append(
            _img(
                png_bytes(
                    overlay_figure(
                        batch["input"][0, 0].numpy(),
                        sens,
                        "sensitivity: mean |Δ output| / σ under 5 % input noise",
                        "sensitivity",
                    )
                ),
                "sensitivity",
            )
        )
        return parts
    stats = attention_statistics(module, item, cell, sg)
    parts.append(
        _img(
            png_bytes(
                attention_figure(stats["maps"], stats["absent_over_ordinary"], stats["ordinary"])
            ),
            "attention maps",
        )
    )
    parts.append(
        _table(
            ["block", "attention to one absent / one ordinary reflection"],
            [[i + 1, _fmt(r)] for i, r in enumerate(stats["absent_over_ordinary"])],
        )
    )
    parts.append(
        f"<p class=note>{stats['absent']} systematically absent reflections appended "
        f"as known-zero tokens to the {stats['ordinary']} ordinary ones.</p>"
    )
    batch = collate_reflections([item])
    sens = sensitivity_map(module, batch)[0].numpy()
    parts.append(
        _table(
            ["reflections", "mean sensitivity |Δ output| / σ"],
            [
                ["known", _fmt(float(sens[item["known"].numpy()].mean()))],
                ["target shell", _fmt(float(sens[item["target_mask"].numpy()].mean()))],
            ],
        )
    )
    return parts


def _configuration(record: dict[str, Any], ckpt: Path) -> str:
    cfg = record["config"]
    rows: list[list[Any]] = [
        ["model", f"{cfg['model']['name']} ({cfg['model']['size']})"],
        [
            "task",
            f"{cfg['task']['d_low']} → {cfg['task']['d_high']} Å, "
            f"{cfg['task']['normalization']} normalisation",
        ],
        ["seed", record.get("seed")],
        ["xtalforge", record.get("xtalforge_version")],
        ["git commit", record.get("git_commit")],
        ["torch", record.get("torch")],
        ["checkpoint", ckpt.name],
    ]
    return (
        "<h2>Configuration</h2>"
        + _table(["", ""], rows)
        + f"<details><summary>resolved config</summary><pre>"
        f"{html.escape(yaml.safe_dump(cfg, sort_keys=False))}</pre></details>"
    )


def _dataset(data_root: Path, run_dir: Path) -> str:
    card_dir = run_dir / "report-assets"
    m = dataset_card(data_root, card_dir)["manifest"]
    dist = card_dir / "distributions.png"
    return (
        f"<h2>Dataset</h2><p>{html.escape(str(m.get('name')))}: {m.get('rows')} "
        f"structures, splits {html.escape(json.dumps(m.get('splits', {})))}, "
        f"{m.get('n_reflections', 0):,} reflections.</p>"
        + (_img(dist.read_bytes(), "dataset distributions") if dist.is_file() else "")
    )


def _curves(run_dir: Path) -> str:
    fig = curves_figure(run_dir / "csv" / "metrics.csv")
    return "<h2>Training curves</h2>" + (
        _img(png_bytes(fig), "training curves") if fig else "<p>no CSV log found</p>"
    )


def _evaluation(ckpt: Path, data_root: Path, run_dir: Path, limit: int) -> str:
    eval_dir = run_dir / "eval"
    if not (eval_dir / "metrics.json").is_file():
        evaluate(ckpt, data_root, "test", out=eval_dir, limit=limit)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    out = "<h2>Test metrics beside the Wilson baseline</h2>" + _metrics_section(metrics)
    slices = sorted(eval_dir.glob("slice-*.png"))
    if slices:
        out += "<h2>Reconstructions</h2>" + "".join(
            _img(p.read_bytes(), p.stem) for p in slices[:N_SLICES]
        )
    return out


def _test_structure(module: ResolutionExtension, data_root: Path) -> str:
    """Interpretability maps, and Patterson and density maps, of the first test structure."""
    ds = extension_dataset(
        data_root, "test", module.extension, module.input_mode, extra_columns=("phase",)
    )
    if not len(ds):
        return ""
    full = ds.row(0)
    cell, sg = tuple(full["cell"].tolist()), full["spacegroup"]
    out = "<h2>Interpretability</h2>" + "".join(_interpretability(module, ds, cell, sg))
    if "phase" in full:
        refl = reflections_from_hkl(full["hkl"].reshape(-1, 3).astype(np.int64), cell, sg)
        f = np.asarray(full["F"], float) * np.exp(1j * np.asarray(full["phase"], float))
        title = f"test structure {int(full['id'])} ({sg}), true phases to {refl.d_min:.2f} Å"
        out += "<h2>Patterson and density</h2>" + _img(
            png_bytes(structure_maps_figure(refl, f, title)), "Patterson and density"
        )
    return out


_SOLVE_COLUMNS = [
    "method",
    "data",
    "d (Å)",
    "scored to",
    "n",
    "solved",
    "solved (P1 map)",
    "median CC",
    "phase error (°)",
    "atom recovery",
    "s / structure",
]


def _solve(run_dir: Path) -> str:
    solve_json = run_dir / "solve.json"
    if not solve_json.is_file():
        return ""
    rows = json.loads(solve_json.read_text())
    cells = [
        [
            r["method"],
            r["data"],
            r["d_min"],
            r["scored_to"],
            r["n"],
            f"{r['solved_fraction']:.0%}",
            f"{r['solved_fraction_p1']:.0%}",
            _fmt(r["median_cc"]),
            _fmt(r["median_phase_error"]),
            _fmt(r["median_atom_recovery"]),
            _fmt(r["seconds_per_structure"]),
        ]
        for r in rows
    ]
    return (
        "<h2>Solve benchmark</h2>"
        + _table(_SOLVE_COLUMNS, cells)
        + _img(png_bytes(solve_figure(rows)), "solve benchmark")
    )


#: Test structures whose maps the density-modification report shows.
DM_MAP_STRUCTURES = 3


def _dm_sections(run_dir: Path, record: dict[str, Any], limit: int) -> list[str]:
    """A density-modification run: configuration, curves, test metrics beside the unmodified
    input, and the maps of a few test structures before and after the model step."""
    from xtalforge.analysis.plots import dm_maps_figure
    from xtalforge.data.items import evaluation_structures
    from xtalforge.tasks.density_modification.maps import crystal_rng, map_pair

    ckpt = _checkpoint(run_dir)
    module: Any = load_checkpoint(ckpt)
    cfg = record["config"]
    t = cfg["task"]
    rows: list[list[Any]] = [
        ["model", f"{cfg['model']['name']} ({cfg['model']['size']})"],
        ["task", f"maps {t['d_low']}–{t['d_low_max']} Å → {t['d_high']} Å, {t['spacing']} Å grid"],
        ["seed", record.get("seed")],
        ["xtalforge", record.get("xtalforge_version")],
        ["git commit", record.get("git_commit")],
        ["checkpoint", ckpt.name],
    ]
    config = (
        "<h2>Configuration</h2>"
        + _table(["", ""], rows)
        + "<details><summary>resolved config</summary><pre>"
        + html.escape(yaml.safe_dump(cfg, sort_keys=False))
        + "</pre></details>"
    )
    metrics = evaluate(ckpt, None, None, limit=limit)
    maps = []
    for name, crystal in evaluation_structures(module.data_source, None, DM_MAP_STRUCTURES):
        pair = map_pair(crystal, module.task, crystal_rng(crystal, 1))
        after = module.modify(torch.from_numpy(pair.input)[None])[0].numpy()
        maps.append((f"{name} ({pair.d_low:.2f} Å)", pair.input, after, pair.target))
    figure = _img(png_bytes(dm_maps_figure(maps)), "maps before and after the model step")
    return [
        config,
        _curves(run_dir),
        "<h2>Test metrics beside the unmodified input</h2>"
        + _table(
            ["metric", "model", "unmodified input"],
            [
                [
                    "map CC with the truth",
                    _fmt(metrics["metric"]["value"]),
                    _fmt(metrics["baseline"]),
                ],
                ["shell phases within 45°", _fmt(metrics["shell_phases_within_45"]), "0.250"],
            ],
        )
        + f"<p class=note>{metrics['n_structures']} generated test structures.</p>",
        "<h2>Maps before and after the model step</h2><p class=note>Generated test structures "
        "with partly wrong phases (maximum over the third axis): the input map, the model's, "
        "and the true map to d_high.</p>" + figure,
    ]


def _run_record(run_dir: Path) -> dict[str, Any]:
    record_path = run_dir / "run.yaml"
    if not record_path.is_file():
        raise XtalforgeError(f"{run_dir}: no run.yaml (not a run folder of `xtalforge train`)")
    record = yaml.safe_load(record_path.read_text())
    task_name = record["config"].get("task", {}).get("name", "resolution")
    if task_name not in ("resolution", "density_modification"):
        raise XtalforgeError(
            f"{run_dir}: the report covers resolution-extension and density-modification "
            "runs; this is "
            f"a {task_name} run — use `xtalforge evaluate` (--out, --json)"
        )
    return record


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    data: str | Path | None = None,
    limit: int = 64,
) -> Path:
    """Write the HTML report of a run folder; returns its path (default RUN_DIR/report.html).
    ``data``: the dataset to evaluate on (default: the run's own dataset)."""
    run_dir = Path(run_dir)
    record = _run_record(run_dir)
    out = Path(out) if out else run_dir / "report.html"
    if record["config"]["task"].get("name") == "density_modification":
        return _write_page(out, record, run_dir, _dm_sections(run_dir, record, limit))
    data_root = Path(data or record["dataset"]["path"])
    if not (data_root / "manifest.json").is_file():
        raise XtalforgeError(f"{data_root}: dataset folder not found (pass --data)")
    ckpt = _checkpoint(run_dir)
    module = load_checkpoint(ckpt)
    assert isinstance(module, ResolutionExtension)
    sections = [
        _configuration(record, ckpt),
        _dataset(data_root, run_dir),
        _curves(run_dir),
        _evaluation(ckpt, data_root, run_dir, limit),
        _test_structure(module, data_root),
        _solve(run_dir),
    ]
    return _write_page(out, record, run_dir, sections)


def _write_page(out: Path, record: dict[str, Any], run_dir: Path, sections: list[str]) -> Path:
    """The page, written whole or not at all."""
    name = html.escape(record["config"]["name"])
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>xtalforge report: "
        f"{name}</title><style>{_CSS}</style></head><body>"
        f"<h1>xtalforge run report — {name}</h1>"
        f"<p class=note>{html.escape(str(run_dir))}</p>" + "".join(sections) + "</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
