"""The ``xtalforge`` command line (Typer + rich): one module of thin commands per area in
:mod:`xtalforge.cli.commands`. Commands parse and render; the library does the work."""

from __future__ import annotations

import warnings

import typer

from xtalforge.cli.commands import datasets, files, generation, models, solving
from xtalforge.workflows.render import console, show_warning

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Synthetic crystals, diffraction data and deep learning for the phase problem.",
)


def _version(value: bool) -> None:
    if value:
        from xtalforge import __version__

        console.print(f"xtalforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """xtalforge command line."""
    warnings.showwarning = show_warning


for area in (files, generation, datasets, models, solving):
    area.register(app)
