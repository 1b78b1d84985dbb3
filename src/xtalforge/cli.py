"""The ``xtalforge`` command line (Typer + rich)."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xtalforge.errors import XtalforgeError
from xtalforge.io import write_cif

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Synthetic crystals, diffraction data and deep learning for the phase problem.",
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
STRUCTURE_SUFFIXES = {".cif", ".pdb", ".ent", ".mmcif"}
REFLECTION_SUFFIXES = {".hkl", ".mtz", ".fcf"}


def _version(value: bool) -> None:
    if value:
        from xtalforge import __version__

        console.print(f"xtalforge {__version__}")
        raise typer.Exit()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a user-facing warning as one ``warning: …`` line (no source path or code line)."""
    if issubclass(category, (UserWarning, RuntimeWarning)):
        err_console.print("[yellow]warning:[/] " + escape(str(message)), highlight=False)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """xtalforge command line."""
    warnings.showwarning = _show_warning


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def load_structure(path: Path):
    """Read a small-molecule CIF, or a PDB/mmCIF model (recognised by content)."""
    from xtalforge.io import read_structure

    return read_structure(path)


@app.command()
def info(
    file: Path = typer.Argument(
        ...,
        help="Structure (CIF, PDB, mmCIF), SHELX .ins/.res, "
        "reflections (.hkl, .mtz, XDS_ASCII, CIF "
        "with _refln) or a checkpoint (.ckpt).",
    ),
) -> None:
    """Cell, space group, composition and reflection counts of a file; what a checkpoint is."""
    from xtalforge.diffraction import reflections
    from xtalforge.io import read_reflections
    from xtalforge.io.detect import MODEL_TAGS

    try:
        if file.is_dir():
            raise XtalforgeError(f"{file}: a folder (for a dataset: xtalforge inspect {file})")
        if file.suffix.lower() in (".ins", ".res"):
            _ins_info(file)
            return
        if file.suffix.lower() == ".ckpt":
            _checkpoint_info(file)
            return
        is_refl = file.suffix.lower() in REFLECTION_SUFFIXES
        if not is_refl and file.is_file():
            with open(file, "rb") as fh:
                start = fh.read(32)
            is_refl = start[:4] == b"MTZ " or start.startswith(b"!FORMAT=XDS_ASCII")
        if not is_refl and file.suffix.lower() == ".cif" and file.is_file():
            head = file.read_text(errors="replace")
            is_refl = "_refln" in head and not any(tag in head for tag in MODEL_TAGS)
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
                    table.add_row(
                        "d range",
                        f"{1 / math.sqrt(inv_d2.max()):.3f} – {1 / math.sqrt(inv_d2.min()):.3f} Å",
                    )
            for note in data.notes:
                table.add_row("note", note)
            console.print(table)
            return
        crystal = load_structure(file)
    except XtalforgeError as exc:
        _fail(exc)
    table = Table(title=str(file), show_header=False)
    table.add_row(
        "space group",
        f"{crystal.spacegroup.xhm()} (No. {crystal.spacegroup.number}, "
        f"Hall {crystal.spacegroup.hall})",
    )
    table.add_row(
        "cell", "a={:.4f} b={:.4f} c={:.4f} Å  α={:.3f} β={:.3f} γ={:.3f}°".format(*crystal.cell)
    )
    table.add_row("volume", f"{crystal.volume:.2f} Å³")
    table.add_row("atoms (ASU)", str(crystal.n_atoms))
    comp = crystal.composition()
    table.add_row("cell content", " ".join(f"{k}{v:g}" for k, v in sorted(comp.items())))
    console.print(table)
    counts = Table(title="unique reflections")
    counts.add_column("d_min (Å)")
    counts.add_column("unique", justify="right")
    counts.add_column("centric", justify="right")
    for d_min in (2.0, 1.5, 1.2, 1.0, 0.8):
        r = reflections(crystal, d_min)
        counts.add_row(f"{d_min}", str(len(r)), str(int(r.centric.sum())))
    console.print(counts)


def _ins_info(path: Path) -> None:
    """Print what a SHELX .ins/.res says: cell, space group, SFAC/UNIT and the HKLF line."""
    from xtalforge.io import read_ins

    ins = read_ins(path)
    sg = ins.spacegroup
    table = Table(title=str(path), show_header=False)
    table.add_row("space group", f"{sg.xhm()} (No. {sg.number}, Hall {sg.hall})")
    table.add_row(
        "cell", "a={:.4f} b={:.4f} c={:.4f} Å  α={:.3f} β={:.3f} γ={:.3f}°".format(*ins.cell)
    )
    table.add_row("wavelength", f"{ins.wavelength:g} Å")
    table.add_row("cell content", " ".join(f"{k}{v:g}" for k, v in ins.composition().items()))
    h = ins.hklf
    line = f"HKLF {h.n}" + (
        ""
        if h.is_identity
        else f", scale {h.scale:g}, matrix "
        + " / ".join(" ".join(f"{v:g}" for v in row) for row in h.matrix)
    )
    table.add_row("reflections", line)
    console.print(table)


def _checkpoint_info(path: Path) -> None:
    """Print what a trained model is: task, model, resolution, training domain, progress."""
    import torch

    from xtalforge.train.run import load_checkpoint

    module = load_checkpoint(path)
    hp = module.hparams
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    table = Table(title=str(path), show_header=False)
    model = hp.get("model", {})
    n_params = sum(p.numel() for p in module.parameters())
    table.add_row("task", str(hp.get("task", {}).get("name", "resolution")))
    table.add_row(
        "model",
        f"{model.get('name')} ({model.get('size', 'small')}, {n_params / 1e6:.2f} M parameters)",
    )
    task = dict(hp.get("task", {}))
    if task.get("name", "resolution") != "resolution":
        table.add_row(
            "task settings", ", ".join(f"{k}={v}" for k, v in task.items() if k != "name")
        )
    else:
        table.add_row(
            "resolution",
            f"{task['d_low']} → {task['d_high']} Å "
            f"({task.get('normalization', 'wilson')} normalisation)",
        )
        domain = hp.get("training_domain")
        if domain:
            table.add_row(
                "trained on", f"{domain.get('source')}: {', '.join(domain.get('spacegroups', []))}"
            )
            if domain.get("max_edge"):
                table.add_row("longest cell edge", f"{domain['max_edge']:.1f} Å")
        else:
            table.add_row("trained on", "not recorded (an older checkpoint)")
    table.add_row("epoch, step", f"{ckpt.get('epoch')}, {ckpt.get('global_step')}")
    console.print(table)


@app.command()
def sf(
    file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
    d_min: float = typer.Option(0.8, "--d-min", help="Resolution limit in Å."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output: .mtz (FC, PHIC, E), .cif "
        "(_refln F_calc, phase_calc), .hkl "
        "(HKLF 4 intensities), .csv or "
        ".parquet.",
    ),
) -> None:
    """Compute structure factors F, |E| and write them."""
    import numpy as np

    from xtalforge.diffraction import normalize, reflections, structure_factors
    from xtalforge.io import write_calculated_cif, write_calculated_mtz, write_hkl

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
        elif suffix == ".mtz":
            write_calculated_mtz(out, refl, f, e)
        elif suffix == ".cif":
            write_calculated_cif(out, refl, f, name=file.stem)
        elif suffix in (".csv", ".parquet"):
            import pyarrow as pa

            table = pa.table(
                {
                    "h": refl.hkl[:, 0],
                    "k": refl.hkl[:, 1],
                    "l": refl.hkl[:, 2],
                    "d": refl.d,
                    "epsilon": refl.epsilon,
                    "centric": refl.centric,
                    "F": np.abs(f),
                    "phase": np.angle(f),
                    "E": e,
                }
            )
            if suffix == ".csv":
                import pyarrow.csv as pacsv

                pacsv.write_csv(table, out)
            else:
                import pyarrow.parquet as pq

                pq.write_table(table, out)
        else:
            raise XtalforgeError(
                f"{out}: unknown output format (use .mtz, .cif, .hkl, .csv or .parquet)"
            )
    except XtalforgeError as exc:
        _fail(exc)
    console.print(f"wrote {len(refl)} reflections (d ≥ {d_min} Å) to {out}")


@app.command()
def powder(
    file: Path = typer.Argument(..., help="Structure: CIF, PDB or mmCIF."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .xy (2θ, counts)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a PNG plot."),
    instrument: Path | None = typer.Option(
        None, "--instrument", help="YAML file of Instrument fields."
    ),
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
        msgs = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'instrument'}: {e['msg']}" for e in exc.errors()
        )
        raise PowderError(f"{where}{msgs}") from None


@app.command()
def sample(
    config: str = typer.Argument(
        ..., help="Generator YAML file or preset name (thesis-monoclinic, powder, phai-p21c)."
    ),
    n: int = typer.Option(5, "--n", "-n", help="Number of structures."),
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
            write_cif(c, path, name=path.stem.replace("-", "_"))
            table.add_row(
                path.name,
                c.spacegroup.xhm(),
                " ".join(f"{v:.2f}" for v in c.cell),
                str(c.n_atoms),
                str(c.metadata["skipped_atoms"] + c.metadata["skipped_hydrogens"]),
            )
    except XtalforgeError as exc:
        _fail(exc)
    console.print(table)


@app.command()
def stats(
    cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
    out: Path = typer.Option(
        Path("gen.yaml"),
        "--out",
        "-o",
        help="Generator config to write (plots go beside it, .png).",
    ),
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
    header = (
        f"# Fitted by `xtalforge stats {cif_dir}` to {fit.n_structures} structures "
        f"({len(failed)} unreadable files skipped).\n"
    )
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    png = plot_fit(fit, out.with_suffix(".png"))
    cell = fit.config.cell
    console.print(
        f"fitted {fit.n_structures} structures: {len(fit.spacegroups)} space groups, "
        f"ln V ~ N({cell.volume.mu:.2f}, {cell.volume.sigma:.2f}), edges "
        f"{cell.a_min}–{cell.a_max} Å, ratio ≤ {cell.ratio}, β ≤ {cell.beta_max}°"
    )
    console.print(f"wrote {out} and {png}")


@app.command()
def compare(
    config: str = typer.Argument(..., help="Generator YAML file or preset name."),
    cif_dir: Path = typer.Argument(..., help="Folder of real small-molecule CIFs."),
    n: int = typer.Option(500, "--n", "-n", help="Structures to generate."),
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
        generated = [
            gen.sample(seed + i) for i in track(range(n), description="generating", console=console)
        ]
        cmp = compare_sets(generated, real, hydrogens=hydrogens)
    except XtalforgeError as exc:
        _fail(exc)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(cmp, out, labels=(gen.config.name, cif_dir.name))
    table = Table(
        title=f"{gen.config.name} (n={n}) vs {cif_dir} (n={len(real)}, {len(failed)} unreadable)"
    )
    for col in ("quantity", "generated median", "real median", "KS"):
        table.add_column(col)
    for key, g, r, ks in cmp.rows():
        table.add_row(key, f"{g:.3g}", f"{r:.3g}", f"{ks:.2f}")
    console.print(table)
    console.print(f"wrote {out}")


def _progress_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} structures/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


@contextmanager
def _structures_progress(label: str):
    """A rich progress bar (rate, ETA); yields the ``progress(done, total)`` callback."""
    import time

    with _progress_bar() as bar:
        task = bar.add_task(label, total=None, rate="–")
        t0, first = time.perf_counter(), [None]

        def progress(done: int, total: int) -> None:
            if first[0] is None:
                first[0] = done
            dt = time.perf_counter() - t0
            rate = (done - first[0]) / dt if dt > 0 and done > first[0] else 0.0
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        yield progress


def _run_build(
    spec, out: Path, workers: int, executor: str, scheduler: str | None, overwrite: bool, label: str
) -> dict:
    from xtalforge.data.build import build_dataset

    with _structures_progress(label) as progress:
        return build_dataset(
            spec,
            out,
            workers=workers,
            executor=executor,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=progress,
        )


def _manifest_table(m: dict) -> Table:
    table = Table(title=f"dataset {m['name']} ({m['status']})")
    table.add_column("field")
    table.add_column("value")
    table.add_row("structures", str(m.get("rows")))
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in m.get("splits", {}).items()))
    table.add_row("shards", str(len(m.get("shards", []))))
    table.add_row("reflections", f"{m.get('n_reflections', 0):,}")
    groups = list(m.get("spacegroups", {}).items())
    table.add_row(
        "space groups",
        ", ".join(f"{k} ({v})" for k, v in groups[:6]) + (" …" if len(groups) > 6 else ""),
    )
    if "hkl_grid" in m:
        g = m["hkl_grid"]
        table.add_row("hkl grid", f"lower {tuple(g['lower'])}, shape {tuple(g['shape'])}")
    if "import_report" in m:
        table.add_row(
            "import", ", ".join(f"{k} {v}" for k, v in m["import_report"]["status"].items())
        )
    return table


_EXECUTOR = typer.Option("local", help="local (process pool) or dask.")
_SCHEDULER = typer.Option(
    None,
    help="Dask scheduler address (tcp://host:8786); default: a "
    "local cluster of --workers processes.",
)


@app.command()
def generate(
    spec: str = typer.Argument(
        ..., help="Dataset spec YAML or preset (tiny, thesis-d1, thesis-d2, thesis-d3)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder."),
    workers: int = typer.Option(1, help="Worker processes."),
    executor: str = _EXECUTOR,
    scheduler: str = _SCHEDULER,
    n: int = typer.Option(None, "--n", "-n", help="Override the spec's n."),
    seed: int = typer.Option(None, help="Override the spec's seed."),
    overwrite: bool = typer.Option(False, help="Replace a folder of another spec."),
) -> None:
    """Generate a sharded dataset (resumable: rerun the same command after an interruption)."""
    from xtalforge.data.spec import load_spec

    try:
        spec_obj = load_spec(spec, n=n, seed=seed)
        if spec_obj.generator is None:
            raise XtalforgeError(f"{spec}: this spec imports CIFs; use xtalforge import-cif")
        m = _run_build(spec_obj, out, workers, executor, scheduler, overwrite, "generating")
    except XtalforgeError as exc:
        _fail(exc)
    console.print(_manifest_table(m))
    console.print(f"wrote {out}")


@app.command("import-cif")
def import_cif(
    cif_dir: Path = typer.Argument(..., help="Folder of CIF files."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder."),
    spec: str = typer.Option("real-import", help="Dataset spec (what to compute)."),
    workers: int = typer.Option(1, help="Worker processes."),
    executor: str = _EXECUTOR,
    scheduler: str = _SCHEDULER,
    overwrite: bool = typer.Option(False, help="Replace a folder of another spec."),
) -> None:
    """Import real CIFs (calculated F) with a per-file report of what was fixed or skipped."""
    from xtalforge.data.spec import load_spec

    try:
        spec_obj = load_spec(spec, cif_dir=str(cif_dir.resolve()), generator=None)
        m = _run_build(spec_obj, out, workers, executor, scheduler, overwrite, "importing")
    except XtalforgeError as exc:
        _fail(exc)
    console.print(_manifest_table(m))
    console.print(f"wrote {out} (per-file report: {out / 'import-report.csv'})")


@app.command("import-hkl")
def import_hkl_cmd(
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
    from xtalforge.data.hkl_import import import_hkl

    try:
        m = import_hkl(files, out, structure=structure)
    except XtalforgeError as exc:
        _fail(exc)
    console.print(_manifest_table(m))
    report = Table(title="per file", show_lines=False)
    for column in ("file", "status", "notes"):
        report.add_column(column)
    for row in m.get("import_report", {}).get("files", []):
        report.add_row(
            row["file"], row["status"], "\n".join(row.get("notes", []) + row.get("problems", []))
        )
    console.print(report)
    console.print(f"wrote {out}")


@app.command()
def verify(dataset: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Check a dataset: manifest complete, shard checksums and row counts, unique ids."""
    from xtalforge.data.build import verify_dataset

    try:
        problems = verify_dataset(dataset)
    except XtalforgeError as exc:
        _fail(exc)
    if problems:
        for p in problems:
            console.print(f"[red]✗[/] {p}")
        raise typer.Exit(code=1)
    console.print(f"[green]✓[/] {dataset}: intact")


@app.command()
def inspect(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder for the card (default DATASET/card)."
    ),
) -> None:
    """A dataset card: counts, splits, distributions and tensor slices (PNG + card.md)."""
    from xtalforge.data.card import dataset_card

    try:
        card = dataset_card(dataset, out or dataset / "card")
    except XtalforgeError as exc:
        _fail(exc)
    console.print(_manifest_table(card["manifest"]))
    for name in card["files"]:
        console.print(f"wrote {name}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    seed: int = typer.Option(0, help="Seed of the dataset and training."),
    n: int = typer.Option(2000, "-n", "--n", help="Structures to generate."),
    train_seconds: int = typer.Option(240, help="Training time budget (s)."),
    solve_n: int = typer.Option(8, help="Held-out structures in the solve benchmark."),
    fresh: bool = typer.Option(False, help="Train again even if a finished run exists."),
) -> None:
    """The whole loop on an embedded default, no data and no server: generate, train the quick
    resolution-extension model, evaluate it against the Wilson baseline, solve held-out
    structures, write report.html."""
    from xtalforge.demo import run_demo

    try:
        run_demo(
            out,
            seed=seed,
            console=console,
            n=n,
            train_seconds=train_seconds,
            solve_n=solve_n,
            fresh=fresh,
        )
    except XtalforgeError as exc:
        _fail(exc)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Run folder of `xtalforge train`."),
    out: Path = typer.Option(None, "--out", help="HTML file (default RUN_DIR/report.html)."),
    data: Path = typer.Option(
        None, "--data", help="Dataset to evaluate on (default: the run's own)."
    ),
) -> None:
    """One self-contained HTML page for a run: config, dataset, curves, metrics beside the
    Wilson baseline, reconstructions, interpretability maps, solve table."""
    from xtalforge.analysis.report import build_report

    try:
        path = build_report(run_dir, out, data)
    except XtalforgeError as exc:
        _fail(exc)
    console.print(f"report: {path.resolve()}")


@app.command()
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
    """Train a model for any task (resolution, patterson_sr, patterson_density, phase); the run
    folder holds checkpoints, CSV + TensorBoard logs and run.yaml (resolved config, seed,
    version, commit)."""
    from xtalforge.train.config import load_run_config
    from xtalforge.train.run import prepare_data
    from xtalforge.train.run import train as train_run

    try:
        cfg = load_run_config(config, overrides or [])
        if cfg.data.spec is not None:
            with _structures_progress("dataset") as bar:
                prepare_data(cfg, bar)
        run_dir = train_run(cfg, progress=progress, resume=resume)
    except XtalforgeError as exc:
        _fail(exc)
    console.print(f"run folder: {run_dir}")


def _task_table(result: dict) -> Table:
    """Any task's evaluation: its metric beside the trivial baseline, then the other numbers."""
    table = Table(
        title=f"{result['task']}: {result['model']} on {result['data']} "
        f"({result['n_structures']} structures)"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column(result["baseline_name"], justify="right")
    m = result["metric"]
    table.add_row(
        f"{m['name']} ({m['better']} is better)", f"{m['value']:.4g}", f"{result['baseline']:.4g}"
    )
    skip = {
        "checkpoint",
        "data",
        "split",
        "task",
        "model",
        "n_structures",
        "metric",
        "baseline",
        "baseline_name",
        "units",
    }
    for k, v in result.items():
        if k not in skip and isinstance(v, float):
            table.add_row(k, f"{v:.4g}", "")
    for sh in result.get("phase_error_shells", []):
        table.add_row(
            f"phase error {sh['d_upper']:.2f}–{sh['d_lower']:.2f} Å",
            f"{sh['phase_error']:.1f}°",
            "",
        )
    return table


def _metrics_table(result: dict) -> Table:
    if result.get("task", "resolution") != "resolution":
        return _task_table(result)
    table = Table(
        title=f"{result['model']} on {result['data']} ({result['split']}, "
        f"{result['n_structures']} structures)"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("Wilson fill", justify="right")
    table.add_row("R (target shell)", f"{result['R_target']:.4f}", f"{result['R_wilson']:.4f}")
    table.add_row(
        "median R per structure",
        f"{result['median_R_target']:.4f}",
        f"{result['median_R_wilson']:.4f}",
    )
    table.add_row("R_all (known + target)", f"{result['R_all']:.4f}", "")
    table.add_row("MSE (target)", f"{result['mse']:.3g}", "")
    table.add_row("3D SSIM", f"{result['ssim']:.4f}", "")
    table.add_row("structures beating the fill", f"{result['fraction_beating_wilson']:.1%}", "")
    for sh in result["R_shells"]:
        table.add_row(f"R {sh['d_upper']:.3f}–{sh['d_lower']:.3f} Å", f"{sh['R']:.4f}", "")
    return table


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.ckpt)."),
    data: Path = typer.Option(
        None,
        "--data",
        help="Dataset folder, or a folder of "
        "structure CIFs (calculated F); omitted: the run's "
        "generated test structures (not for resolution "
        "extension).",
    ),
    split: str = typer.Option("test", help="Split to score (train, val, test, all)."),
    out: Path = typer.Option(
        None, "--out", help="Folder for per_structure.csv, metrics.json and slice PNGs."
    ),
    json_path: Path = typer.Option(None, "--json", help="Write the metrics JSON here."),
    limit: int = typer.Option(None, help="Score only the first N structures."),
) -> None:
    """Score a checkpoint (any task) beside its trivial baseline (the Wilson fill for
    resolution extension); --json holds task, metric {name, value} and baseline."""
    import json

    from xtalforge.train.run import evaluate as evaluate_run

    try:
        result = evaluate_run(
            checkpoint, data, None if split == "all" else split, out=out, limit=limit
        )
    except XtalforgeError as exc:
        _fail(exc)
    console.print(_metrics_table(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.ckpt)."),
    hkl: Path = typer.Option(..., "--hkl", help="Measured reflections (.hkl, .mtz, CIF)."),
    out: Path = typer.Option(..., "--out", help="Extended SHELX HKLF 4 file."),
    ins: Path = typer.Option(
        None, "--ins", "--structure", help="Cell, symmetry (HKLF): .ins/.res, CIF or PDB."
    ),
    cell: str = typer.Option(None, "--cell", help='"a b c alpha beta gamma" (Å, °).'),
    spacegroup: str = typer.Option(None, "--spacegroup", help="With --cell."),
) -> None:
    """Extend measured data to the model's d_high (predicted reflections get batch number 2)."""
    from xtalforge.train.run import predict_hkl

    try:
        info = predict_hkl(
            checkpoint, hkl, out, structure=ins, cell=_parse_cell(cell), spacegroup=spacegroup
        )
    except XtalforgeError as exc:
        _fail(exc)
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


def _parse_cell(cell: str | None) -> tuple[float, ...] | None:
    """``--cell "a b c alpha beta gamma"`` → six floats (Å, degrees)."""
    if cell is None:
        return None
    try:
        values = tuple(float(v) for v in cell.replace(",", " ").split())
    except ValueError:
        raise XtalforgeError(f"--cell {cell!r}: six numbers expected") from None
    if len(values) != 6:
        raise XtalforgeError(f"--cell {cell!r}: six numbers expected")
    return values


_DATA_HELP = (
    "Reflections (.hkl/.mtz/CIF) with --ins or --cell/--spacegroup; a structure CIF/PDB "
    "(calculated F, scored against itself); or a dataset folder (--entry)."
)


@app.command()
def solve(
    data: Path = typer.Argument(..., help=_DATA_HELP),
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
        help="Reflections with d "
        "below this (Å) are predictions (e.g. from "
        "`predict`): a restrained free-lunch shell, not "
        "data (cf only).",
    ),
    prior_weight: float = typer.Option(
        None,
        "--prior-weight",
        help="Weight of the predictions against the map in that shell, 0–1 (default 0.5).",
    ),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Phase a data set ab initio; print the score when the truth is known."""
    from xtalforge.phasing.solve import (
        DEFAULT_PRIOR_WEIGHT,
        default_peak_count,
        load_solve_data,
        measured_part,
        score_solution,
        solve_batch,
        write_map,
        write_peaks,
    )

    try:
        if prior_weight is not None and prior_below is None:
            raise XtalforgeError(
                "--prior-weight needs --prior-below (which reflections are predictions)"
            )
        sd = load_solve_data(data, ins, _parse_cell(cell), spacegroup, d_min, entry)
        opts = (
            {}
            if prior_below is None
            else {
                "prior_below": prior_below,
                "prior_weight": DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight,
            }
        )
        with console.status(
            f"solving {sd.source} ({len(sd.refl)} reflections, "
            f"d ≥ {sd.refl.d_min:.2f} Å) with {method}"
        ):
            sol = solve_batch([sd], method, starts=starts, seed=seed, d_ext=d_ext, **opts)[0]
        if prior_below is not None:
            sd, sol = measured_part(sd, sol, prior_below)
        if sol.phases is None:
            raise XtalforgeError(
                f"{method} found no solution ({sol.info.get('error') or 'no phase transition'})"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        n = write_peaks(out, sd, sol.phases, peaks or default_peak_count(sd))
        map_path = out.with_suffix(".ccp4")
        write_map(map_path, sd, sol.phases)
    except XtalforgeError as exc:
        _fail(exc)
    table = Table(title=f"{method} solution of {sd.source}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("reflections", str(len(sd.refl)))
    table.add_row("seconds", f"{sol.seconds:.2f}")
    table.add_row(
        "figure of merit (no truth)",
        "–" if sol.figure_of_merit is None else f"{sol.figure_of_merit:.3f}",
    )
    if sd.true_phases is not None:
        sc = score_solution(sd, sol)
        table.add_row("CC (final map)", f"{sc['cc']:.3f}")
        table.add_row("phase error (°)", f"{sc['phase_error']:.1f}")
        table.add_row("CC (raw P1 map)", f"{sc['cc_p1']:.3f}")
        table.add_row("atom recovery (0.5 Å)", f"{sc['atom_recovery']:.2f}")
        table.add_row("solved (CC ≥ 0.8)", "yes" if sc["solved"] else "no")
    console.print(table)
    console.print(f"{n} peaks → {out}; map → {map_path}")


benchmark_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Benchmarks that answer a question end to end."
)
app.add_typer(benchmark_app, name="benchmark")


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise XtalforgeError(f"{what} {text!r}: expected comma-separated numbers") from None


def _range(text: str, what: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise XtalforgeError(f"{what} {text!r}: expected D_LOW:D_HIGH, e.g. 1.2:1.0") from None
    return lo, hi


def solve_table(rows: list) -> Table:
    """The solve benchmark as a rich table."""
    table = Table(title="solve benchmark (medians; d and 'to' in Å, err in °, s per structure)")
    for col in ("method", "data", "d", "to", "n", "solved", "P1", "CC", "err", "atoms", "s"):
        table.add_column(
            col, justify="left" if col in ("method", "data") else "right", no_wrap=True
        )
    for r in rows:
        table.add_row(
            r.method,
            r.data,
            f"{r.d_min:g}",
            f"{r.scored_to:g}",
            str(r.n),
            f"{r.solved_fraction:.0%}",
            f"{r.solved_fraction_p1:.0%}",
            f"{r.median_cc:.3f}",
            f"{r.median_phase_error:.1f}",
            f"{r.median_atom_recovery:.2f}",
            f"{r.seconds_per_structure:.3f}",
        )
    return table


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
        help="D_LOW:D_HIGH rows (truth, Wilson, "
        "free lunch, model, truth at D_HIGH); with --model, default "
        "its task, and a D_HIGH above the model's cuts its "
        "predictions there.",
    ),
    split: str = typer.Option("test", help="Dataset split (train, val, test, all)."),
    n: int = typer.Option(50, "-n", "--n", help="Structures."),
    starts: int = typer.Option(4, help="Random starts per structure (cf)."),
    smtbx_starts: int = typer.Option(1, help="Random starts per structure (smtbx)."),
    prior_weights: str = typer.Option(
        None,
        "--prior-weights",
        help="With an "
        "amplitude-extension --model: comma-separated "
        "weights w in [0, 1], a cf row each with the model's "
        "shell as a restrained free-lunch prior instead of "
        "data (default 0.5; '' for none).",
    ),
    json_path: Path = typer.Option(None, "--json", help="Write the rows here (JSON list)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Solved fraction, CC, phase error, atom recovery and time per structure, per resolution
    and solver, on calculated data scored against the truth."""
    import json

    from xtalforge.phasing.benchmark import solve_benchmark
    from xtalforge.phasing.solve import (
        DEFAULT_PRIOR_WEIGHT,
        calculated_solve_data,
        dataset_entries,
    )

    try:
        res = list(_floats(resolutions, "--resolutions"))
        ext = _range(extend, "--extend") if extend else None
        meths = tuple(m.strip() for m in methods.split(",") if m.strip())
        weights = (
            _floats(prior_weights, "--prior-weights")
            if prior_weights is not None
            else (DEFAULT_PRIOR_WEIGHT,)
            if model is not None
            else ()
        )
        if weights and model is None:
            raise XtalforgeError("--prior-weights needs --model (the priors are its predictions)")
        module = None
        if model is not None:
            from xtalforge.phasing.benchmark import check_extension, model_label, model_range
            from xtalforge.train.run import load_checkpoint

            module = load_checkpoint(model)
            if model_label(module) in ("phai", "density"):
                res = sorted(set(res) | {module.task["d_high"]})
            else:
                ext = ext or model_range(module)
                check_extension(ext, module)
        finest = min(res + ([ext[1]] if ext else []))
        if (data / "manifest.json").is_file():
            structures = dataset_entries(data, None if split == "all" else split, n)
        else:
            from xtalforge.io.cif_structure import cif_entries, entry_name, read_cif

            structures = []
            for path, block in cif_entries(data):
                if len(structures) >= n:
                    break
                try:
                    crystal = read_cif(path, block=block)
                    structures.append(
                        calculated_solve_data(crystal, finest, entry_name(path, block))
                    )
                except XtalforgeError as exc:
                    console.print(f"[yellow]skipped[/] {entry_name(path, block)}: {exc}")
        total = sum(len(res) for _ in meths) * len(structures) + (
            len(structures) * (4 * len(meths) + len(weights)) if ext else 0
        )
        with _progress_bar() as bar:
            task = bar.add_task("solving", total=total, rate="–")

            def progress(label: str, done: int) -> None:
                bar.update(task, advance=done, description=label)

            rows = solve_benchmark(
                structures,
                res,
                meths,
                ext,
                module,
                starts=starts,
                smtbx_starts=smtbx_starts,
                seed=seed,
                prior_weights=weights,
                progress=progress,
            )
    except XtalforgeError as exc:
        _fail(exc)
    console.print(solve_table(rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([r.as_dict() for r in rows], indent=2))


@app.command("export-shelx")
def export_shelx(
    data: Path = typer.Argument(..., help=_DATA_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Prefix: writes PREFIX.ins and PREFIX.hkl (HKLF 4) for SHELXT."
    ),
    ins: Path = typer.Option(None, "--ins", help="Cell and symmetry (.ins/CIF)."),
    d_min: float = typer.Option(None, "--d-min", help="Resolution cut (Å)."),
    entry: int = typer.Option(None, "--entry", help="Dataset sample id."),
) -> None:
    """Write SHELX .ins + .hkl for a data set (for users who have SHELXT)."""
    import numpy as np

    from xtalforge.crystal import CellSymmetry
    from xtalforge.io import write_hkl, write_ins
    from xtalforge.phasing.solve import cell_content, load_solve_data

    try:
        sd = load_solve_data(data, ins, None, None, d_min, entry)
        cell_atoms = CellSymmetry(sd.refl.cell, sd.refl.spacegroup)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_ins(
            out.with_suffix(".ins"),
            cell_atoms,
            title=Path(sd.source).name,
            composition=cell_content(sd),
        )
        write_hkl(
            out.with_suffix(".hkl"),
            sd.refl.hkl,
            sd.amplitudes**2,
            np.maximum(0.02 * sd.amplitudes**2, 1e-3),
            hklf=4,
        )
    except XtalforgeError as exc:
        _fail(exc)
    console.print(
        f"{len(sd.refl)} reflections → {out.with_suffix('.hkl')}, {out.with_suffix('.ins')}"
    )


if __name__ == "__main__":  # pragma: no cover
    app()
