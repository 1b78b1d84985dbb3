"""Phasing commands: ``solve``, ``export-shelx`` and ``benchmark solve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xtalforge.cli.common import (
    DATA_HELP,
    floats,
    out_file,
    parse_cell,
    resolution_range,
    user_errors,
)
from xtalforge.workflows.render import (
    console,
    print_table,
    progress_bar,
    solve_table,
    space_group_table,
    table,
)

benchmark_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmarks that answer a question end to end.",
)


# the options of ``solve``, declared once here so that the command reads as a list of them
Out = Annotated[
    Path,
    typer.Option(
        "--out",
        help="NAME.res (or NAME.cif): writes NAME.res, NAME.cif, NAME.ccp4.",
        callback=out_file,
    ),
]
Formula = Annotated[
    str | None, typer.Option(help="Chemical formula, e.g. C12H22O11 (Z from the cell volume).")
]
Method = Annotated[
    str,
    typer.Option(
        help="cf (charge flipping, this package) or smtbx (cctbx, needs the cctbx extra)."
    ),
]
Ins = Annotated[
    Path | None,
    typer.Option("--ins", "--structure", help="Cell, symmetry (HKLF): .ins/.res, CIF or PDB."),
]
Cell = Annotated[str | None, typer.Option("--cell", help='"a b c alpha beta gamma" (Å, °).')]
Group = Annotated[str | None, typer.Option("--spacegroup", help="With --cell.")]
DMin = Annotated[
    float | None,
    typer.Option(
        "--d-min", help="Use reflections with d ≥ this (Å); 0.8 Å for calculated data by default."
    ),
]
Entry = Annotated[int | None, typer.Option("--entry", help="Dataset sample id.")]
Starts = Annotated[int, typer.Option(help="Random starts.")]
Peaks = Annotated[
    int | None,
    typer.Option(
        help="Peaks to write (default: non-H atoms per ASU when known, else V / 18 Å³ per ASU)."
    ),
]
DExt = Annotated[
    float | None,
    typer.Option("--d-ext", help="Free-lunch extrapolation to this resolution (Å; cf only)."),
]
PriorBelow = Annotated[
    float | None,
    typer.Option(
        "--prior-below",
        help="Reflections with d below this (Å) are predictions (e.g. from `predict`): a "
        "restrained free-lunch shell, not data (cf only).",
    ),
]
PriorWeight = Annotated[
    float | None,
    typer.Option(
        "--prior-weight",
        help="Weight of the predictions against the map in that shell, 0–1 (default 0.5).",
    ),
]
Seed = Annotated[int, typer.Option(help="Random seed.")]
SolveModel = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Trained model joining charge flipping: a checkpoint or a shipped name "
        "(`xtalforge models list`); a density-modification model and/or an amplitude model.",
    ),
]
Ai = Annotated[
    bool,
    typer.Option(
        "--ai", help="Use the best shipped models for the data's resolution (and say which)."
    ),
]


def solve(
    data: Annotated[Path, typer.Argument(help=DATA_HELP)],
    out: Out = Path("solution.res"),
    method: Method = "cf",
    ins: Ins = None,
    cell: Cell = None,
    spacegroup: Group = None,
    d_min: DMin = None,
    entry: Entry = None,
    starts: Starts = 4,
    peaks: Peaks = None,
    d_ext: DExt = None,
    prior_below: PriorBelow = None,
    prior_weight: PriorWeight = None,
    seed: Seed = 0,
    formula: Formula = None,
    model: SolveModel = None,
    ai: Ai = False,
) -> None:
    """Solve a data set: space group (with --cell alone), phases, atoms, refinement, R1; with
    --model or --ai, trained models help charge flipping (below atomic resolution)."""
    from xtalforge.workflows.solve import solve_file

    with user_errors(), console.status(f"solving {data} with {method}"):
        args = (data, out, method, ins, parse_cell(cell), spacegroup, d_min, entry, starts, peaks)
        res = solve_file(*args, d_ext, prior_below, prior_weight, seed, formula, model, ai)
    if res.candidates:
        print_table(space_group_table(res.candidates))
    title = f"{method} solution of {res.data.source}"
    print_table(table(title, ("quantity", "value"), res.summary(), right=("value",)))
    console.print("written: " + ", ".join(str(p) for p in res.paths.values() if p.exists()))


def export_shelx(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Prefix: writes PREFIX.ins and PREFIX.hkl (HKLF 4) for SHELXT.",
        callback=out_file,
    ),
    ins: Path = typer.Option(None, "--ins", help="Cell and symmetry (.ins/CIF)."),
    d_min: float = typer.Option(None, "--d-min", help="Resolution cut (Å)."),
    entry: int = typer.Option(None, "--entry", help="Dataset sample id."),
) -> None:
    """Write SHELX .ins + .hkl for a data set (for users who have SHELXT)."""
    from xtalforge.workflows.solve import export_shelx as export

    with user_errors():
        sd = export(data, out, ins, d_min, entry)
    console.print(
        f"{len(sd.refl)} reflections → {out.with_suffix('.hkl')}, {out.with_suffix('.ins')}"
    )


# the options of ``benchmark solve``
BData = Annotated[
    Path,
    typer.Option(
        "--data", help="Dataset folder (with phases), or a folder of structure CIFs (calculated F)."
    ),
]
Resolutions = Annotated[str, typer.Option(help="Comma-separated d_min (Å).")]
Methods = Annotated[str, typer.Option(help="Solvers: cf, smtbx.")]
Model = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Checkpoint or shipped model name (`xtalforge models list`) for the model rows; "
        "twice for a density-modification model and an amplitude model together.",
    ),
]
Extend = Annotated[
    str | None,
    typer.Option(
        "--extend",
        help="D_LOW:D_HIGH rows (truth, Wilson, free lunch, model, truth at D_HIGH); with "
        "--model, default its task, and a D_HIGH above the model's cuts its predictions there.",
    ),
]
Split = Annotated[str, typer.Option(help="Dataset split (train, val, test, all).")]
N = Annotated[int, typer.Option("-n", "--n", help="Structures.")]
CfStarts = Annotated[int, typer.Option(help="Random starts per structure (cf).")]
SmtbxStarts = Annotated[int, typer.Option(help="Random starts per structure (smtbx).")]
PriorWeights = Annotated[
    str | None,
    typer.Option(
        "--prior-weights",
        help="With an amplitude-extension --model: comma-separated weights w in [0, 1], a cf "
        "row each with the model's shell as a restrained free-lunch prior instead of data "
        "(default 0.5; '' for none).",
    ),
]
Json = Annotated[
    Path | None,
    typer.Option("--json", help="Write the rows here (JSON list).", callback=out_file),
]


@benchmark_app.command("solve")
def benchmark_solve(
    data: BData,
    resolutions: Resolutions = "0.8,1.0,1.2,1.5",
    methods: Methods = "cf,smtbx",
    model: Model = None,
    extend: Extend = None,
    split: Split = "test",
    n: N = 50,
    starts: CfStarts = 4,
    smtbx_starts: SmtbxStarts = 1,
    prior_weights: PriorWeights = None,
    json_path: Json = None,
    seed: Seed = 0,
) -> None:
    """Solved fraction, CC, phase error, atoms and R1, time per structure, per resolution and
    solver, on calculated data scored against the truth."""
    from xtalforge.workflows.solve_benchmark import benchmark_structures, plan_benchmark, write_rows

    with user_errors():
        weights = floats(prior_weights, "--prior-weights") if prior_weights is not None else None
        plan = plan_benchmark(
            list(floats(resolutions, "--resolutions")),
            tuple(m.strip() for m in methods.split(",") if m.strip()),
            model,
            resolution_range(extend, "--extend") if extend else None,
            weights,
        )
        structures = benchmark_structures(data, None if split == "all" else split, n, plan.finest)
        with progress_bar() as bar:
            task = bar.add_task("solving", total=plan.solves(len(structures)), rate="–")
            rows = plan.run(
                structures,
                starts,
                smtbx_starts,
                seed,
                lambda label, k: bar.update(task, advance=k, description=label),
            )
    print_table(solve_table(rows))
    if json_path is not None:
        write_rows(json_path, rows)


def register(app: typer.Typer) -> None:
    app.command()(solve)
    app.command("export-shelx")(export_shelx)
    app.add_typer(benchmark_app, name="benchmark")
