"""The values a reflection file holds (:class:`ReflectionData`) and the SHELX ``HKLF``
instruction that says how to read one (:class:`HklfInstruction`): the types every reader in
:mod:`xtalforge.io` shares."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gemmi
import numpy as np

from xtalforge.errors import ReflectionFileError

__all__ = ["HklfInstruction", "ReflectionData"]


@dataclass(eq=False)
class ReflectionData:
    """Reflection values as read from a file.

    Attributes
    ----------
    hkl : (n, 3) int Miller indices as in the file (not merged).
    values : (n,) intensities (``kind == "intensity"``) or amplitudes (``"amplitude"``).
    sigmas : (n,) standard uncertainties, or None.
    kind : ``"intensity"`` or ``"amplitude"``.
    batch : (n,) batch numbers, or None.
    cell, spacegroup : when the file gives them (MTZ, CIF), else None.
    source : the file read.
    notes : what the reader did that a user should know (rows dropped …).
    """

    hkl: np.ndarray
    values: np.ndarray
    sigmas: np.ndarray | None
    kind: str
    batch: np.ndarray | None = None
    cell: tuple[float, ...] | None = None
    spacegroup: gemmi.SpaceGroup | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hkl)

    def amplitudes(self) -> np.ndarray:
        """|F|: square roots of intensities (negative ones set to 0), or the amplitudes."""
        if self.kind == "amplitude":
            return self.values
        return np.sqrt(np.clip(self.values, 0.0, None))


@dataclass(frozen=True)
class HklfInstruction:
    """The ``HKLF n s r11 … r33`` instruction: format ``n`` (4: I, σ(I); 3: F, σ(F)), scale
    ``s`` of values and sigmas, and the (3, 3) index matrix (h' = matrix @ h)."""

    n: int = 4
    scale: float = 1.0
    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    source: str = ""

    @property
    def is_identity(self) -> bool:
        """No index transformation and no scale."""
        return self.scale == 1.0 and bool(np.array_equal(self.matrix, np.eye(3)))

    def hkl_format(self) -> int:
        """``n`` for the hkl reader (4: I, σ(I); 3: F, σ(F)); raises
        :class:`ReflectionFileError` for the formats this package does not read."""
        if self.n not in (3, 4):
            raise ReflectionFileError(
                f"{self.source or 'HKLF'}: HKLF {self.n} data are not "
                "supported (3 or 4; HKLF 5 twinned data need detwinning "
                "first)"
            )
        return self.n

    def apply(self, data: ReflectionData) -> ReflectionData:
        """``data`` (read from a SHELX hkl in format ``n``) with transformed indices and scaled
        values; raises :class:`ReflectionFileError` for unsupported formats or a matrix that
        does not give integer indices."""
        where = self.source or "HKLF"
        self.hkl_format()
        if self.is_identity:
            return data
        hkl = data.hkl.astype(np.float64) @ self.matrix.T
        rounded = np.rint(hkl)
        if np.abs(hkl - rounded).max(initial=0.0) > 1e-3:
            raise ReflectionFileError(f"{where}: the HKLF matrix gives non-integer indices")
        notes = list(data.notes)
        if not np.array_equal(self.matrix, np.eye(3)):
            rows = " / ".join(" ".join(f"{v:g}" for v in r) for r in self.matrix)
            notes.append(f"indices transformed by the HKLF matrix ({rows}) of {where}")
        if self.scale != 1.0:
            notes.append(f"values and sigmas multiplied by the HKLF scale {self.scale:g}")
        return replace(
            data,
            hkl=rounded.astype(data.hkl.dtype),
            values=data.values * self.scale,
            sigmas=None if data.sigmas is None else data.sigmas * self.scale,
            notes=notes,
        )
