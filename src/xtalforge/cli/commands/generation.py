"""Commands about generated structures: ``sample``, ``stats`` (fit a generator to real CIFs),
``compare`` (generated against real)."""

from __future__ import annotations

from pathlib import Path

import typer

from xtalforge.cli.common import out_file, out_folder, user_errors
from xtalforge.workflows.render import console, print_table, table


def sample(
    config: str = typer.Argument(
        ..., help="Generator YAML file or preset name (thesis-monoclinic, powder, phai-p21c)."
    ),
    n: int = typer.Option(5, "--n", "-n", help="Number of structures."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder for the CIFs.", callback=out_folder
    ),
    seed: int = typer.Option(0, help="Seed of the first structure (then seed+1, …)."),
) -> None:
    """Write n generated structures as CIF files (readable by any crystallography viewer)."""
    from xtalforge.generate import Generator, write_samples

    with user_errors():
        gen = Generator.from_config(config)
        written = write_samples(gen, n, seed, out)
    rows = [
        (
            p.name,
            c.spacegroup.xhm(),
            " ".join(f"{v:.2f}" for v in c.cell),
            c.n_atoms,
            c.metadata["skipped_atoms"] + c.metadata["skipped_hydrogens"],
        )
        for p, c in written
    ]
    columns = ("file", "space group", "cell (Å, °)", "atoms", "skipped")
    print_table(table(f"{gen.config.name} ({n} structures)", columns, rows))


def stats(
    cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
    out: Path = typer.Option(
        Path("gen.yaml"),
        "--out",
        "-o",
        help="Generator config to write (plots go beside it, .png).",
        callback=out_file,
    ),
    name: str = typer.Option("", help="Config name (default: the output file's stem)."),
    limit: int = typer.Option(0, help="Read at most this many CIFs (0: all)."),
) -> None:
    """Fit the generator's distributions to real CIFs; write a ready config and PNG plots."""
    from xtalforge.generate.descriptors import read_cif_folder
    from xtalforge.generate.fit import fit_config, write_fit

    with user_errors():
        with console.status(f"reading {cif_dir}"):
            crystals, failed = read_cif_folder(cif_dir, limit or None)
        fit = fit_config(crystals, name=name or out.stem)
    for file, why in failed:
        console.print(f"[yellow]skipped[/] {file}: {why}")
    header = (
        f"# Fitted by `xtalforge stats {cif_dir}` to {fit.n_structures} structures "
        f"({len(failed)} unreadable files skipped).\n"
    )
    png = write_fit(fit, out, header)
    cell, volume = fit.config.cell, fit.volume
    console.print(
        f"fitted {fit.n_structures} structures: {len(fit.spacegroups)} space groups, "
        f"ln V ~ N({volume.mu:.2f}, {volume.sigma:.2f}), edges "
        f"{cell.a_min}–{cell.a_max} Å, ratio ≤ {cell.ratio}, β ≤ {cell.beta_max}°"
    )
    console.print(f"wrote {out} and {png}")


def compare(
    config: str = typer.Argument(..., help="Generator YAML file or preset name."),
    cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
    n: int = typer.Option(500, "--n", "-n", help="Structures to generate."),
    seed: int = typer.Option(0, help="Seed of the first generated structure."),
    out: Path = typer.Option(
        Path("compare.png"), "--out", "-o", help="PNG to write.", callback=out_file
    ),
    hydrogens: bool = typer.Option(False, help="Include H in the distance histogram."),
) -> None:
    """Plot generated vs real: volume, largest edge, a3/a2, a2/a1, β, interatomic distances."""
    from rich.progress import track

    from xtalforge.generate import Generator
    from xtalforge.generate.compare import compare_sets, plot_comparison
    from xtalforge.generate.descriptors import read_cif_folder

    with user_errors():
        gen = Generator.from_config(config)
        with console.status(f"reading {cif_dir}"):
            real, failed = read_cif_folder(cif_dir)
        generated = [
            gen.sample(seed + i) for i in track(range(n), description="generating", console=console)
        ]
        cmp = compare_sets(generated, real, hydrogens=hydrogens)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(cmp, out, labels=(gen.config.name, cif_dir.name))
    rows = [(key, f"{g:.3g}", f"{r:.3g}", f"{ks:.2f}") for key, g, r, ks in cmp.rows()]
    title = f"{gen.config.name} (n={n}) vs {cif_dir} (n={len(real)}, {len(failed)} unreadable)"
    print_table(table(title, ("quantity", "generated median", "real median", "KS"), rows))
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.command()(stats)
    app.command()(compare)
