"""What a run or a dataset records about the code that made it: the git commit of the source
tree and the versions of the libraries that set its numbers."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

__all__ = ["git_commit", "versions"]


def git_commit() -> str | None:
    """The commit of the source tree xtalforge runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str]:
    """Versions of xtalforge, Python and (when imported) torch and Lightning."""
    import sys

    from xtalforge import __version__

    out = {"xtalforge_version": __version__, "python": platform.python_version()}
    for name, key in (("torch", "torch"), ("lightning", "lightning")):
        if name in sys.modules:
            out[key] = str(sys.modules[name].__version__)
    return out
