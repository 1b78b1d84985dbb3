"""``python -m xtalforge.cli``: the command line."""

from xtalforge.cli import app

app()
