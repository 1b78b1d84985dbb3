"""Commands on one file: ``info``, ``sf`` (structure factors), ``powder``."""

from __future__ import annotations

from pathlib import Path

import typer

from xtalforge.cli.common import out_file, user_errors
from xtalforge.workflows.render import console, print_table, table


def info(
    file: Path = typer.Argument(
        ...,
        help="Structure (CIF, PDB, mmCIF), SHELX .ins/.res, reflections (.hkl, .mtz, "
        "XDS_ASCII, CIF with _refln) or a checkpoint (.ckpt).",
    ),
) -> None:
    """Cell, space group, composition and reflection counts of a file; what a checkpoint is."""
    from xtalforge.workflows.describe import describe_file

    with user_errors():
        tables = describe_file(file)
    for t in tables:
        columns = t.columns or ("field", "value")
        print_table(table(t.title, columns, t.rows, right=t.columns[1:], header=bool(t.columns)))


def sf(
    file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
    d_min: float = typer.Option(0.8, "--d-min", help="Resolution limit in Å."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output: .mtz (FC, PHIC, E), .cif (_refln F_calc, phase_calc), .hkl (HKLF 4 "
        "intensities), .csv or .parquet.",
        callback=out_file,
    ),
) -> None:
    """Compute structure factors F, |E| and write them."""
    from xtalforge.diffraction import normalize, reflections, structure_factors
    from xtalforge.io import read_structure, write_structure_factors

    with user_errors():
        crystal = read_structure(file)
        refl = reflections(crystal, d_min)
        f = structure_factors(crystal, refl)
        scale = write_structure_factors(out, refl, f, normalize(f, refl, crystal=crystal))
    if scale != 1.0:
        console.print(f"intensities scaled by {scale:g} to fit the HKLF columns")
    console.print(f"wrote {len(refl)} reflections (d ≥ {d_min} Å) to {out}")


def powder(
    file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output .xy (2θ, counts).", callback=out_file
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write a PNG plot.", callback=out_file
    ),
    instrument: Path | None = typer.Option(
        None, "--instrument", help="YAML file of Instrument fields."
    ),
    wavelengths: str = typer.Option("CuKa12", help="CuKa1, CuKa12, MoKa1, MoKa12."),
    two_theta_max: float = typer.Option(90.0, "--two-theta-max", help="Degrees."),
    noise: bool = typer.Option(False, help="Poisson counting noise."),
    seed: int = typer.Option(0, help="Seed of the noise."),
) -> None:
    """Simulate a Bragg–Brentano powder pattern (TCH + FCJ profile, background, noise)."""
    from xtalforge.analysis.plots import powder_figure, save_png
    from xtalforge.io import read_structure
    from xtalforge.powder import load_instrument, simulate, write_xy

    with user_errors():
        ins = load_instrument(instrument, wavelengths=wavelengths, two_theta_max=two_theta_max)
        crystal = read_structure(file)
        x, y = simulate(crystal, ins, noise=noise, seed=seed)
        write_xy(out, x, y)
        if plot is not None:
            save_png(powder_figure(x, y, f"{file.name} — {crystal.spacegroup.xhm()}"), plot)
    console.print(f"wrote {len(x)} points ({x[0]:.2f}–{x[-1]:.2f}° 2θ) to {out}")


def register(app: typer.Typer) -> None:
    app.command()(info)
    app.command()(sf)
    app.command()(powder)
