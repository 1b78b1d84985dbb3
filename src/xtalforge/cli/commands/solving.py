"""Phasing commands: ``solve``, ``export-shelx`` and ``benchmark solve``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xtalforge.cli.common import DATA_HELP, floats, parse_cell, resolution_range, user_errors
from xtalforge.workflows.render import console, print_table, progress_bar, solve_table, table

benchmark_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmarks that answer a question end to end.",
)


def solve(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(
        Path("solution.cif"),
        "--out",
        help="Peaks as atoms (CIF); the map is written beside it as .ccp4.",
    ),
    method: str = typer.Option(
        "cf", help="cf (charge flipping, this package) or smtbx (cctbx, needs the cctbx extra)."
    ),
    ins: Path = typer.Option(
        None, "--ins", "--structure", help="Cell, symmetry (HKLF): .ins/.res, CIF or PDB."
    ),
    cell: str = typer.Option(None, "--cell", help='"a b c alpha beta gamma" (Å, °).'),
    spacegroup: str = typer.Option(None, "--spacegroup", help="With --cell."),
    d_min: float = typer.Option(
        None,
        "--d-min",
        help="Use reflections with d ≥ this (Å); 0.8 Å for calculated data by default.",
    ),
    entry: int = typer.Option(None, "--entry", help="Dataset sample id."),
    starts: int = typer.Option(4, help="Random starts."),
    peaks: int = typer.Option(
        None,
        help="Peaks to write (default: non-H atoms per ASU when known, else V / 18 Å³ per ASU).",
    ),
    d_ext: float = typer.Option(
        None, "--d-ext", help="Free-lunch extrapolation to this resolution (Å; cf only)."
    ),
    prior_below: float = typer.Option(
        None,
        "--prior-below",
        help="Reflections with d below this (Å) are predictions (e.g. from `predict`): a "
        "restrained free-lunch shell, not data (cf only).",
    ),
    prior_weight: float = typer.Option(
        None,
        "--prior-weight",
        help="Weight of the predictions against the map in that shell, 0–1 (default 0.5).",
    ),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Phase a data set ab initio; print the score when the truth is known."""
    from xtalforge.workflows.solve import solve_file

    with user_errors(), console.status(f"solving {data} with {method}"):
        res = solve_file(
            data,
            out,
            method,
            ins,
            parse_cell(cell),
            spacegroup,
            d_min,
            entry,
            starts,
            peaks,
            d_ext,
            prior_below,
            prior_weight,
            seed,
        )
    sol, sc = res.solution, res.score
    fom = sol.figure_of_merit
    rows = [
        ("reflections", str(len(res.data.refl))),
        ("seconds", f"{sol.seconds:.2f}"),
        ("figure of merit (no truth)", "–" if fom is None else f"{fom:.3f}"),
    ]
    if sc is not None:
        rows += [
            ("CC (final map)", f"{sc['cc']:.3f}"),
            ("phase error (°)", f"{sc['phase_error']:.1f}"),
            ("CC (raw P1 map)", f"{sc['cc_p1']:.3f}"),
            ("atom recovery (0.5 Å)", f"{sc['atom_recovery']:.2f}"),
            ("solved (CC ≥ 0.8)", "yes" if sc["solved"] else "no"),
        ]
    print_table(
        table(
            f"{method} solution of {res.data.source}", ("quantity", "value"), rows, right=("value",)
        )
    )
    console.print(f"{res.n_peaks} peaks → {res.peaks_path}; map → {res.map_path}")


def export_shelx(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Prefix: writes PREFIX.ins and PREFIX.hkl (HKLF 4) for SHELXT."
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


@benchmark_app.command("solve")
def benchmark_solve(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Dataset folder (with phases), or a folder of structure CIFs (calculated F).",
    ),
    resolutions: str = typer.Option("0.8,1.0,1.2,1.5", help="Comma-separated d_min (Å)."),
    methods: str = typer.Option("cf,smtbx", help="Solvers: cf, smtbx."),
    model: Path = typer.Option(None, "--model", help="Checkpoint for the model row."),
    extend: str = typer.Option(
        None,
        "--extend",
        help="D_LOW:D_HIGH rows (truth, Wilson, free lunch, model, truth at D_HIGH); with "
        "--model, default its task, and a D_HIGH above the model's cuts its predictions there.",
    ),
    split: str = typer.Option("test", help="Dataset split (train, val, test, all)."),
    n: int = typer.Option(50, "-n", "--n", help="Structures."),
    starts: int = typer.Option(4, help="Random starts per structure (cf)."),
    smtbx_starts: int = typer.Option(1, help="Random starts per structure (smtbx)."),
    prior_weights: str = typer.Option(
        None,
        "--prior-weights",
        help="With an amplitude-extension --model: comma-separated weights w in [0, 1], a cf "
        "row each with the model's shell as a restrained free-lunch prior instead of data "
        "(default 0.5; '' for none).",
    ),
    json_path: Path = typer.Option(None, "--json", help="Write the rows here (JSON list)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Solved fraction, CC, phase error, atom recovery and time per structure, per resolution
    and solver, on calculated data scored against the truth."""
    from xtalforge.workflows.solve_benchmark import (
        benchmark_structures,
        plan_benchmark,
        solve_benchmark,
    )

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
            rows = solve_benchmark(
                structures,
                plan.resolutions,
                plan.methods,
                plan.extend,
                plan.module,
                starts=starts,
                smtbx_starts=smtbx_starts,
                seed=seed,
                prior_weights=plan.prior_weights,
                progress=lambda label, k: bar.update(task, advance=k, description=label),
            )
    print_table(solve_table(rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([r.as_dict() for r in rows], indent=2))


def register(app: typer.Typer) -> None:
    app.command()(solve)
    app.command("export-shelx")(export_shelx)
    app.add_typer(benchmark_app, name="benchmark")
