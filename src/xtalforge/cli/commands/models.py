"""Model commands: ``train``, ``evaluate``, ``predict``, ``report`` and the ``demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xtalforge.cli.common import out_file, out_folder, parse_cell, user_errors
from xtalforge.workflows.render import (
    console,
    metrics_table,
    print_table,
    structures_progress,
    table,
)


def train(
    config: str = typer.Argument(
        ..., help="Run config YAML or preset from configs/experiments (e.g. quick-unet3d)."
    ),
    overrides: list[str] = typer.Argument(
        None, help="key.sub=value overrides, e.g. trainer.max_epochs=3 seed=1."
    ),
    resume: Path = typer.Option(None, help="Run folder to continue from its last.ckpt."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train a model for any task (resolution, patterson_sr, patterson_density, phase,
    density_modification); the run folder holds checkpoints, CSV + TensorBoard logs and
    run.yaml (resolved config, seed, version, commit)."""
    from xtalforge.tasks import load_run_config, prepare_data
    from xtalforge.tasks import train as train_run

    with user_errors():
        cfg = load_run_config(config, overrides or [])
        if cfg.data.spec is not None:
            with structures_progress("dataset") as bar:
                prepare_data(cfg, bar)
        run_dir = train_run(cfg, progress=progress, resume=resume)
    console.print(f"run folder: {run_dir}")


def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.ckpt)."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Dataset folder, or a folder of structure CIFs (calculated F); omitted: the "
        "run's own test split or generated test structures.",
    ),
    split: str = typer.Option("test", help="Split to score (train, val, test, all)."),
    out: Path = typer.Option(
        None,
        "--out",
        help="Folder for per_structure.csv, metrics.json and slice PNGs.",
        callback=out_folder,
    ),
    json_path: Path = typer.Option(
        None, "--json", help="Write the metrics JSON here.", callback=out_file
    ),
    limit: int = typer.Option(None, help="Score only the first N structures."),
) -> None:
    """Score a checkpoint (any task) beside its trivial baseline (the Wilson fill for
    resolution extension); --json holds task, metric {name, value} and baseline."""
    from xtalforge.tasks import evaluate as evaluate_run

    with user_errors():
        result = evaluate_run(
            checkpoint, data, None if split == "all" else split, out=out, limit=limit
        )
    print_table(metrics_table(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))


def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.ckpt)."),
    hkl: Path = typer.Option(..., "--hkl", help="Measured reflections (.hkl, .mtz, CIF)."),
    out: Path = typer.Option(..., "--out", help="Extended SHELX HKLF 4 file.", callback=out_file),
    ins: Path = typer.Option(
        None, "--ins", "--structure", help="Cell, symmetry (HKLF): .ins/.res, CIF or PDB."
    ),
    cell: str = typer.Option(None, "--cell", help='"a b c alpha beta gamma" (Å, °).'),
    spacegroup: str = typer.Option(None, "--spacegroup", help="With --cell."),
) -> None:
    """Extend measured data to the model's d_high (predicted reflections get batch number 2)."""
    from xtalforge.tasks import predict_hkl

    with user_errors():
        info = predict_hkl(
            checkpoint, hkl, out, structure=ins, cell=parse_cell(cell), spacegroup=spacegroup
        )
    for note in info["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(
        f"{info['measured']} measured + {info['predicted']} predicted reflections "
        f"({info['d_low']} → {info['d_high']} Å) written to {out}"
    )
    where = f"--ins {ins}" if ins else f'--cell "{cell}" --spacegroup "{spacegroup}"'
    console.print(
        f"to phase it with the predictions as priors: xtalforge solve {out} {where} "
        f"--prior-below {info['d_low']}",
        markup=False,
        highlight=False,
    )


def report(
    run_dir: Path = typer.Argument(..., help="Run folder of `xtalforge train`."),
    out: Path = typer.Option(
        None, "--out", help="HTML file (default RUN_DIR/report.html).", callback=out_file
    ),
    data: Path = typer.Option(
        None, "--data", help="Dataset to evaluate on (default: the run's own)."
    ),
) -> None:
    """One self-contained HTML page for a run: config, dataset, curves, metrics beside the
    Wilson baseline, reconstructions, interpretability maps, solve table."""
    from xtalforge.workflows.report import build_report

    with user_errors():
        path = build_report(run_dir, out, data)
    console.print(f"report: {path.resolve()}")


def demo(
    out: Path = typer.Option(
        Path("demo-output"), "--out", help="Output folder.", callback=out_folder
    ),
    seed: int = typer.Option(0, help="Seed of the dataset and training."),
    n: int = typer.Option(2000, "-n", "--n", help="Structures to generate."),
    train_seconds: int = typer.Option(240, help="Training time budget (s)."),
    solve_n: int = typer.Option(8, help="Held-out structures in the solve benchmark."),
    fresh: bool = typer.Option(False, help="Train again even if a finished run exists."),
) -> None:
    """The whole loop on an embedded default, no data and no server: generate, train the quick
    resolution-extension model, evaluate it against the Wilson baseline, solve held-out
    structures, write report.html."""
    from xtalforge.workflows.demo import run_demo

    with user_errors():
        run_demo(
            out,
            seed=seed,
            console=console,
            n=n,
            train_seconds=train_seconds,
            solve_n=solve_n,
            fresh=fresh,
        )


shipped = typer.Typer(no_args_is_help=True, help="Trained models that ship with xtalforge.")


@shipped.command("list")
def list_models() -> None:
    """The shipped models: name, task, resolution, domain, training, use."""
    from xtalforge.workflows.describe import shipped_models_table

    with user_errors():
        t = shipped_models_table()
    print_table(table(t.title, t.columns, t.rows))


@shipped.command("show")
def show_model(
    name: str = typer.Argument(..., help="A shipped model's name (models list)."),
) -> None:
    """A shipped model's card: training data, command and curve, domain, metrics, version."""
    from xtalforge.workflows.describe import model_card_table

    with user_errors():
        t = model_card_table(name)
    print_table(table(t.title, ("field", "value"), t.rows))


def register(app: typer.Typer) -> None:
    for command in (train, evaluate, predict, report, demo):
        app.command()(command)
    app.add_typer(shipped, name="models")
