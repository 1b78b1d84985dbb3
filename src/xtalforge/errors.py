"""Exceptions raised by xtalforge.

Every error raised on bad input derives from :class:`XtalforgeError` and names the file, line or
field at fault, so that a user never sees a traceback from deep inside a library.
"""

from __future__ import annotations


class XtalforgeError(ValueError):
    """Base class of all xtalforge errors about bad input."""


class CrystalError(XtalforgeError):
    """An invalid crystal: cell, space group, atoms, or a structure file that cannot be read."""


class ReflectionFileError(XtalforgeError):
    """A reflection file (SHELX .hkl, MTZ, CIF ``_refln``) that cannot be read or written."""


class ReflectionError(XtalforgeError):
    """Reflections inconsistent with a tensor layout, a space group or a value array."""


def where(path: object | None, line: int | None = None, field: str | None = None) -> str:
    """Format a location prefix such as ``"data.hkl:12: "`` or ``"x.cif [_cell_length_a]: "``."""
    out = "" if path is None else str(path)
    if line is not None:
        out += f":{line}"
    if field is not None:
        out += f" [{field}]"
    return out + ": " if out else ""
