"""The ``xtalforge`` command line (Typer + rich)."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from xtalforge.errors import XtalforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Synthetic crystals, diffraction data and deep learning for the phase "
                       "problem.")
console = Console(soft_wrap=True)
STRUCTURE_SUFFIXES = {".cif", ".pdb", ".ent", ".mmcif"}
REFLECTION_SUFFIXES = {".hkl", ".mtz", ".fcf"}


def _version(value: bool) -> None:
    if value:
        from xtalforge import __version__

        console.print(f"xtalforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """xtalforge command line."""


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def load_structure(path: Path):
    """Read a small-molecule CIF, or a PDB/mmCIF model (recognised by content)."""
    from xtalforge.crystal import Crystal

    suffix = path.suffix.lower()
    if suffix in (".pdb", ".ent"):
        return Crystal.from_pdb(path)
    if suffix in (".cif", ".mmcif"):
        text = path.read_text(errors="replace")[:200000] if path.is_file() else ""
        mmcif = "_atom_site.Cartn_x" in text
        if mmcif or ("_atom_site.fract_x" in text and "_atom_site_fract_x" not in text):
            return Crystal.from_pdb(path)
    return Crystal.from_cif(path)


@app.command()
def info(file: Path = typer.Argument(..., help="Structure (CIF, PDB, mmCIF) or reflections "
                                                "(.hkl, .mtz, CIF with _refln).")) -> None:
    """Cell, space group, composition and reflection counts of a file."""
    from xtalforge.diffraction import reflections
    from xtalforge.io import read_reflections

    try:
        is_refl = file.suffix.lower() in REFLECTION_SUFFIXES
        if not is_refl and file.suffix.lower() == ".cif" and file.is_file():
            head = file.read_text(errors="replace")
            is_refl = "_atom_site_fract_x" not in head and "_atom_site.fract_x" not in head \
                and "_atom_site.Cartn_x" not in head and "_refln" in head
        if is_refl:
            data = read_reflections(file)
            table = Table(title=str(file), show_header=False)
            table.add_row("reflections", str(len(data)))
            table.add_row("kind", data.kind)
            if data.cell:
                table.add_row("cell", " ".join(f"{v:.4f}" for v in data.cell))
            if data.spacegroup:
                sg = data.spacegroup
                table.add_row("space group", f"{sg.xhm()} (No. {sg.number})")
                if data.cell:
                    from xtalforge.diffraction.reflections import reciprocal_metric

                    inv_d2 = ((data.hkl @ reciprocal_metric(data.cell)) * data.hkl).sum(1)
                    table.add_row("d range", f"{1 / math.sqrt(inv_d2.max()):.3f} – "
                                             f"{1 / math.sqrt(inv_d2.min()):.3f} Å")
            for note in data.notes:
                table.add_row("note", note)
            console.print(table)
            return
        crystal = load_structure(file)
    except XtalforgeError as exc:
        _fail(exc)
    table = Table(title=str(file), show_header=False)
    table.add_row("space group", f"{crystal.spacegroup.xhm()} (No. {crystal.spacegroup.number}, "
                                 f"Hall {crystal.spacegroup.hall})")
    table.add_row("cell", "a={:.4f} b={:.4f} c={:.4f} Å  α={:.3f} β={:.3f} γ={:.3f}°".format(
        *crystal.cell))
    table.add_row("volume", f"{crystal.volume:.2f} Å³")
    table.add_row("atoms (ASU)", str(crystal.n_atoms))
    comp = crystal.composition()
    table.add_row("cell content", " ".join(f"{k}{v:g}" for k, v in sorted(comp.items())))
    for w in crystal.metadata.get("warnings", []):
        table.add_row("warning", w)
    console.print(table)
    counts = Table(title="unique reflections")
    counts.add_column("d_min (Å)")
    counts.add_column("unique", justify="right")
    counts.add_column("centric", justify="right")
    for d_min in (2.0, 1.5, 1.2, 1.0, 0.8):
        r = reflections(crystal, d_min)
        counts.add_row(f"{d_min}", str(len(r)), str(int(r.centric.sum())))
    console.print(counts)


@app.command()
def sf(file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
       d_min: float = typer.Option(0.8, "--d-min", help="Resolution limit in Å."),
       out: Path = typer.Option(..., "--out", "-o", help="Output: .hkl (HKLF 4 intensities), "
                                                        ".csv or .parquet."),
       ) -> None:
    """Compute structure factors F, |E| and write them."""
    import numpy as np

    from xtalforge.diffraction import normalize, reflections, structure_factors
    from xtalforge.io import write_hkl

    try:
        crystal = load_structure(file)
        refl = reflections(crystal, d_min)
        f = structure_factors(crystal, refl)
        e = normalize(f, refl, crystal=crystal)
        suffix = out.suffix.lower()
        if suffix == ".hkl":
            scale = write_hkl(out, refl.hkl, np.abs(f) ** 2, hklf=4)
            if scale != 1.0:
                console.print(f"intensities scaled by {scale:g} to fit the HKLF columns")
        elif suffix in (".csv", ".parquet"):
            import pyarrow as pa

            table = pa.table({"h": refl.hkl[:, 0], "k": refl.hkl[:, 1], "l": refl.hkl[:, 2],
                              "d": refl.d, "epsilon": refl.epsilon, "centric": refl.centric,
                              "F": np.abs(f), "phase": np.angle(f), "E": e})
            if suffix == ".csv":
                import pyarrow.csv as pacsv

                pacsv.write_csv(table, out)
            else:
                import pyarrow.parquet as pq

                pq.write_table(table, out)
        else:
            raise XtalforgeError(f"{out}: unknown output format (use .hkl, .csv or .parquet)")
    except XtalforgeError as exc:
        _fail(exc)
    console.print(f"wrote {len(refl)} reflections (d ≥ {d_min} Å) to {out}")


@app.command()
def powder(file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
           out: Path = typer.Option(..., "--out", "-o", help="Output .xy (2θ, counts)."),
           plot: Path | None = typer.Option(None, "--plot", help="Also write a PNG plot."),
           instrument: Path | None = typer.Option(None, "--instrument",
                                                  help="YAML file of Instrument fields."),
           wavelengths: str = typer.Option("CuKa12", help="CuKa1, CuKa12, MoKa1, MoKa12."),
           two_theta_max: float = typer.Option(90.0, "--two-theta-max", help="Degrees."),
           noise: bool = typer.Option(False, help="Poisson counting noise."),
           seed: int = typer.Option(0, help="Seed of the noise."),
           ) -> None:
    """Simulate a Bragg–Brentano powder pattern (TCH + FCJ profile, background, noise)."""
    import numpy as np
    import yaml

    from xtalforge.powder import simulate

    try:
        fields = {"wavelengths": wavelengths, "two_theta_max": two_theta_max}
        if instrument is not None:
            try:
                loaded = yaml.safe_load(instrument.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise XtalforgeError(f"{instrument}: cannot read instrument YAML: {exc}") from None
            if not isinstance(loaded, dict):
                raise XtalforgeError(f"{instrument}: expected a mapping of Instrument fields")
            fields.update(loaded)
        ins = _instrument(fields, instrument)
        crystal = load_structure(file)
        x, y = simulate(crystal, ins, noise=noise, seed=seed)
        np.savetxt(out, np.column_stack([x, y]), fmt="%.4f %.3f", header="2theta counts")
        if plot is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(10, 3.5))
            ax.plot(x, y, lw=0.7)
            ax.set_xlabel("2θ (°)")
            ax.set_ylabel("counts")
            ax.set_title(f"{file.name} — {crystal.spacegroup.xhm()}")
            fig.tight_layout()
            fig.savefig(plot, dpi=110)
            plt.close(fig)
    except XtalforgeError as exc:
        _fail(exc)
    console.print(f"wrote {len(x)} points ({x[0]:.2f}–{x[-1]:.2f}° 2θ) to {out}")


def _instrument(fields: dict, source: Path | None):
    from pydantic import ValidationError

    from xtalforge.powder import Instrument, PowderError

    try:
        return Instrument(**fields)
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'instrument'}: {e['msg']}"
                         for e in exc.errors())
        raise PowderError(f"{where}{msgs}") from None


@app.command()
def sample(config: str = typer.Argument(..., help="Generator YAML file or preset name "
                                                  "(thesis-monoclinic, powder, phai-p21c)."),
           n: int = typer.Option(5, "--n", help="Number of structures."),
           out: Path = typer.Option(..., "--out", "-o", help="Output folder for the CIFs."),
           seed: int = typer.Option(0, help="Seed of the first structure (then seed+1, …)."),
           ) -> None:
    """Write n generated structures as CIF files (readable by any crystallography viewer)."""
    from xtalforge.generate import Generator

    try:
        gen = Generator.from_config(config)
        out.mkdir(parents=True, exist_ok=True)
        table = Table(title=f"{gen.config.name} ({n} structures)")
        for col in ("file", "space group", "cell (Å, °)", "atoms", "skipped"):
            table.add_column(col)
        for i in range(n):
            c = gen.sample(seed + i)
            path = out / f"{gen.config.name}-{seed + i:06d}.cif"
            c.to_cif(path, name=path.stem.replace("-", "_"))
            table.add_row(path.name, c.spacegroup.xhm(),
                          " ".join(f"{v:.2f}" for v in c.cell), str(c.n_atoms),
                          str(c.metadata["skipped_atoms"] + c.metadata["skipped_hydrogens"]))
    except XtalforgeError as exc:
        _fail(exc)
    console.print(table)


@app.command()
def stats(cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
          out: Path = typer.Option(Path("gen.yaml"), "--out", "-o",
                                   help="Generator config to write (plots go beside it, .png)."),
          name: str = typer.Option("", help="Config name (default: the output file's stem)."),
          limit: int = typer.Option(0, help="Read at most this many CIFs (0: all)."),
          ) -> None:
    """Fit the generator's distributions to real CIFs; write a ready config and PNG plots."""
    import yaml

    from xtalforge.generate.descriptors import read_cif_folder
    from xtalforge.generate.fit import fit_config, plot_fit

    try:
        with console.status(f"reading {cif_dir}"):
            crystals, failed = read_cif_folder(cif_dir, limit or None)
        fit = fit_config(crystals, name=name or out.stem)
    except XtalforgeError as exc:
        _fail(exc)
    for file, why in failed:
        console.print(f"[yellow]skipped[/] {file}: {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = fit.config.model_dump(mode="json", exclude_none=False)
    header = (f"# Fitted by `xtalforge stats {cif_dir}` to {fit.n_structures} structures "
              f"({len(failed)} unreadable files skipped).\n")
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    png = plot_fit(fit, out.with_suffix(".png"))
    cell = fit.config.cell
    console.print(f"fitted {fit.n_structures} structures: {len(fit.spacegroups)} space groups, "
                  f"ln V ~ N({cell.volume.mu:.2f}, {cell.volume.sigma:.2f}), edges "
                  f"{cell.a_min}–{cell.a_max} Å, ratio ≤ {cell.ratio}, β ≤ {cell.beta_max}°")
    console.print(f"wrote {out} and {png}")


@app.command()
def compare(config: str = typer.Argument(..., help="Generator YAML file or preset name."),
            cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
            n: int = typer.Option(500, "--n", help="Structures to generate."),
            seed: int = typer.Option(0, help="Seed of the first generated structure."),
            out: Path = typer.Option(Path("compare.png"), "--out", "-o", help="PNG to write."),
            hydrogens: bool = typer.Option(False, help="Include H in the distance histogram."),
            ) -> None:
    """Plot generated vs real: volume, largest edge, a3/a2, a2/a1, β, interatomic distances."""
    from rich.progress import track

    from xtalforge.generate import Generator
    from xtalforge.generate.compare import compare_sets, plot_comparison
    from xtalforge.generate.descriptors import read_cif_folder

    try:
        gen = Generator.from_config(config)
        with console.status(f"reading {cif_dir}"):
            real, failed = read_cif_folder(cif_dir)
        generated = [gen.sample(seed + i) for i in track(range(n), description="generating",
                                                          console=console)]
        cmp = compare_sets(generated, real, hydrogens=hydrogens)
    except XtalforgeError as exc:
        _fail(exc)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(cmp, out, labels=(gen.config.name, cif_dir.name))
    table = Table(title=f"{gen.config.name} (n={n}) vs {cif_dir} (n={len(real)}, "
                        f"{len(failed)} unreadable)")
    for col in ("quantity", "generated median", "real median", "KS"):
        table.add_column(col)
    for key, g, r, ks in cmp.rows():
        table.add_row(key, f"{g:.3g}", f"{r:.3g}", f"{ks:.2f}")
    console.print(table)
    console.print(f"wrote {out}")


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
         seed: int = typer.Option(0, help="Seed of the example structure.")) -> None:
    """Run the main job on an embedded example (no data, no server)."""
    from xtalforge.demo import run_demo

    run_demo(out, seed=seed, console=console)


if __name__ == "__main__":  # pragma: no cover
    app()
