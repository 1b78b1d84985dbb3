"""Output paths checked before any work: a folder that cannot be written (read-only, a file in
its place, no permission) is refused at once with the path and the reason, not after minutes
of computing with a traceback from deep inside a writer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from xtalforge.errors import XtalforgeError

__all__ = ["OutputError", "writable_file", "writable_folder"]


class OutputError(XtalforgeError):
    """An output file or folder that cannot be written."""


def _cannot_write(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (made if missing), or None when one can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".xtalforge-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def writable_folder(folder: Path | str, what: str = "output folder") -> Path:
    """Make ``folder`` (and its parents) if needed and check a file can be created in it;
    returns it. Raises :class:`OutputError` naming the folder and the reason."""
    folder = Path(folder)
    reason = _cannot_write(folder)
    if reason is not None:
        raise OutputError(f"{folder}: cannot write the {what} ({reason})")
    return folder


def writable_file(path: Path | str, what: str = "output file") -> Path:
    """Check that ``path`` can be written (its folder made if needed, ``path`` not a folder);
    returns it. Raises :class:`OutputError` naming the path and the reason."""
    path = Path(path)
    reason = "it is a folder" if path.is_dir() else _cannot_write(path.parent)
    if reason is None and path.exists() and not os.access(path, os.W_OK):
        reason = "permission denied"
    if reason is not None:
        raise OutputError(f"{path}: cannot write the {what} ({reason})")
    return path
