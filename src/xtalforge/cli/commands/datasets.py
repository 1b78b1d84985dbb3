"""Dataset commands: ``generate``, ``import-cif``, ``import-hkl``, ``verify``, ``inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from xtalforge.cli.common import EXECUTOR, SCHEDULER, out_folder, user_errors
from xtalforge.errors import XtalforgeError
from xtalforge.workflows.render import (
    console,
    manifest_table,
    print_table,
    structures_progress,
    table,
)


def _build(
    spec: Any,
    out: Path,
    workers: int,
    executor: str,
    scheduler: str | None,
    overwrite: bool,
    label: str,
) -> dict[str, Any]:
    from xtalforge.data.build import build_dataset

    with structures_progress(label) as progress:
        return build_dataset(
            spec,
            out,
            workers=workers,
            executor=executor,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=progress,
        )


def generate(
    spec: str = typer.Argument(
        ..., help="Dataset spec YAML or preset (tiny, thesis-d1, thesis-d2, thesis-d3)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder."),
    workers: int = typer.Option(1, help="Worker processes."),
    executor: str = EXECUTOR,
    scheduler: str = SCHEDULER,
    n: int = typer.Option(None, "--n", "-n", help="Override the spec's n."),
    seed: int = typer.Option(None, help="Override the spec's seed."),
    overwrite: bool = typer.Option(False, help="Replace a folder of another spec."),
) -> None:
    """Generate a sharded dataset (resumable: rerun the same command after an interruption)."""
    from xtalforge.data.spec import load_spec

    with user_errors():
        spec_obj = load_spec(spec, n=n, seed=seed)
        if spec_obj.generator is None:
            raise XtalforgeError(f"{spec}: this spec imports CIFs; use xtalforge import-cif")
        m = _build(spec_obj, out, workers, executor, scheduler, overwrite, "generating")
    print_table(manifest_table(m))
    console.print(f"wrote {out}")


def import_cif(
    cif_dir: Path = typer.Argument(..., help="Folder of CIF files."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder."),
    spec: str = typer.Option("real-import", help="Dataset spec (what to compute)."),
    workers: int = typer.Option(1, help="Worker processes."),
    executor: str = EXECUTOR,
    scheduler: str = SCHEDULER,
    overwrite: bool = typer.Option(False, help="Replace a folder of another spec."),
) -> None:
    """Import real CIFs (calculated F) with a per-file report of what was fixed or skipped."""
    from xtalforge.data.spec import load_spec

    with user_errors():
        spec_obj = load_spec(spec, cif_dir=str(cif_dir.resolve()), generator=None)
        m = _build(spec_obj, out, workers, executor, scheduler, overwrite, "importing")
    print_table(manifest_table(m))
    console.print(f"wrote {out} (per-file report: {out / 'import-report.csv'})")


def import_hkl(
    files: list[Path] = typer.Argument(..., help="Reflection files (.hkl, .mtz, CIF with _refln)."),
    structure: Path = typer.Option(
        None,
        "--structure",
        "-s",
        help=".ins/.res, CIF or PDB with cell and symmetry (default: beside each file, same stem).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder."),
) -> None:
    """Import measured data (amplitudes merged to the ASU, no phases) in the dataset format."""
    from xtalforge.data.hkl_import import import_hkl as import_files

    with user_errors():
        m = import_files(files, out, structure=structure)
    print_table(manifest_table(m))
    rows = [
        (r["file"], r["status"], "\n".join(r.get("notes", []) + r.get("problems", [])))
        for r in m.get("import_report", {}).get("files", [])
    ]
    print_table(table("per file", ("file", "status", "notes"), rows))
    console.print(f"wrote {out}")


def verify(dataset: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Check a dataset: manifest complete, shard checksums and row counts, unique ids."""
    from xtalforge.data.build import verify_dataset

    with user_errors():
        problems = verify_dataset(dataset)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}")
        raise typer.Exit(code=1)
    console.print(f"[green]✓[/] {dataset}: intact")


def inspect(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder for the card (default DATASET/card).", callback=out_folder
    ),
) -> None:
    """A dataset card: counts, splits, distributions and tensor slices (PNG + card.md)."""
    from xtalforge.data.card import dataset_card

    with user_errors():
        card = dataset_card(dataset, out or dataset / "card")
    print_table(manifest_table(card["manifest"]))
    for name in card["files"]:
        console.print(f"wrote {name}")


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command("import-cif")(import_cif)
    app.command("import-hkl")(import_hkl)
    app.command()(verify)
    app.command()(inspect)
