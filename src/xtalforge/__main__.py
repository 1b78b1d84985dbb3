"""``python -m xtalforge`` runs the command-line interface (the same as ``xtalforge``)."""

from xtalforge.cli import app

if __name__ == "__main__":
    app(prog_name="xtalforge")
