"""What the commands share: turning a library error into a one-line message and exit code 2,
and parsing the compound options (a cell, lists of numbers, a resolution range)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from xtalforge.errors import XtalforgeError
from xtalforge.outputs import writable_file, writable_folder
from xtalforge.workflows.render import console

__all__ = [
    "floats",
    "out_file",
    "out_folder",
    "parse_cell",
    "resolution_range",
    "user_errors",
]

DATA_HELP = (
    "Reflections (.hkl/.mtz/CIF) with --ins or --cell/--spacegroup; a structure CIF/PDB "
    "(calculated F, scored against itself); or a dataset folder (--entry)."
)
EXECUTOR = typer.Option("local", help="local (process pool) or dask.")
SCHEDULER = typer.Option(
    None,
    help="Dask scheduler address (tcp://host:8786); default: a local cluster of --workers "
    "processes.",
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input (:class:`XtalforgeError`) ends the command with ``error: …`` and exit code 2."""
    try:
        yield
    except XtalforgeError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None


def _refused_as_bad_parameter(check: Callable[[Path], Path], path: Path | None) -> Path | None:
    """Run an output check on an option's value; its error becomes typer's usage error."""
    if path is not None:
        try:
            check(path)
        except XtalforgeError as exc:
            raise typer.BadParameter(str(exc)) from None
    return path


def out_file(path: Path | None) -> Path | None:
    """Option callback: an output file that cannot be written is refused before any work."""
    return _refused_as_bad_parameter(writable_file, path)


def out_folder(path: Path | None) -> Path | None:
    """Option callback: an output folder that cannot be written is refused before any work."""
    return _refused_as_bad_parameter(writable_folder, path)


def parse_cell(cell: str | None) -> tuple[float, ...] | None:
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


def floats(text: str, what: str) -> tuple[float, ...]:
    """Comma-separated numbers of option ``what``."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise XtalforgeError(f"{what} {text!r}: expected comma-separated numbers") from None


def resolution_range(text: str, what: str) -> tuple[float, float]:
    """``D_LOW:D_HIGH`` (Å) of option ``what``."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise XtalforgeError(f"{what} {text!r}: expected D_LOW:D_HIGH, e.g. 1.2:1.0") from None
    return lo, hi
