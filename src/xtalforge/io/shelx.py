"""SHELX reflection files (HKLF 4: I, σ(I); HKLF 3: F, σ(F)) and minimal .ins instruction files.

HKLF lines are fixed-format ``(3I4, 2F8.2, I4)``: h, k, l, value, sigma and an optional batch
number; a line with h = k = l = 0 terminates the data. The ``HKLF n s r11 … r33`` instruction of
an .ins/.res file says how to read the .hkl beside it: format n, a scale s of the values and
sigmas, and a matrix that turns the file's indices into those of the cell in the .ins
(h' = r11 h + r12 k + r13 l, …). :class:`HklfInstruction` carries it and applies it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.elements import atomic_number, symbol
from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import space_group_from_ops, symmetry_info
from xtalforge.diffraction.structure_factors import half_ops
from xtalforge.errors import CrystalError, ReflectionFileError
from xtalforge.io.reflection_data import ReflectionData

__all__ = [
    "HklfInstruction",
    "InsFile",
    "hklf_from_ins_text",
    "parse_hkl_text",
    "parse_ins_text",
    "read_hkl",
    "read_ins",
    "write_hkl",
    "write_ins",
]

_LATT = {"P": 1, "I": 2, "R": 3, "F": 4, "A": 5, "B": 6, "C": 7}
_CENTRING = {
    1: [],
    2: ["x+1/2,y+1/2,z+1/2"],
    3: ["x+2/3,y+1/3,z+1/3", "x+1/3,y+2/3,z+2/3"],
    4: ["x,y+1/2,z+1/2", "x+1/2,y,z+1/2", "x+1/2,y+1/2,z"],
    5: ["x,y+1/2,z+1/2"],
    6: ["x+1/2,y,z+1/2"],
    7: ["x+1/2,y+1/2,z"],
}


def _parse_line(line: str) -> tuple[int, int, int, float, float, int | None]:
    """Fixed columns first; whitespace-separated as a fallback for free-format writers."""
    try:
        h, k, l = int(line[0:4]), int(line[4:8]), int(line[8:12])
        if h == k == l == 0:
            return 0, 0, 0, 0.0, 0.0, None
        v, s = float(line[12:20]), float(line[20:28])
        rest = line[28:32].strip()
        return h, k, l, v, s, int(rest) if rest else None
    except ValueError:
        parts = line.split()
        if len(parts) not in (5, 6):
            raise
        batch = int(parts[5]) if len(parts) == 6 else None
        return (
            int(parts[0]),
            int(parts[1]),
            int(parts[2]),
            float(parts[3]),
            float(parts[4]),
            batch,
        )


def parse_hkl_text(text: str, source: str = "<string>", hklf: int = 4) -> ReflectionData:
    """Parse the text of an HKLF 4 or 3 file; errors name ``source`` and the line number."""
    if hklf not in (3, 4):
        raise ReflectionFileError(f"{source}: HKLF {hklf} is not supported (use 3 or 4)")
    rows: list[tuple[int, int, int, float, float, int | None]] = []
    terminated = False
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = _parse_line(line.rstrip("\r\n"))
        except ValueError:
            raise ReflectionFileError(
                f"{source}:{no}: cannot read h k l value sigma from {line.strip()!r}"
            ) from None
        if row[:3] == (0, 0, 0):
            terminated = True
            break
        if not (math.isfinite(row[3]) and math.isfinite(row[4])):
            raise ReflectionFileError(f"{source}:{no}: value or sigma is not a finite number")
        rows.append(row)
    if not rows:
        raise ReflectionFileError(f"{source}: no reflections")
    notes = []
    if not terminated:
        msg = f"{source}: no terminating '0 0 0' line; the file may be truncated"
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
    hkl = np.array([r[:3] for r in rows], dtype=np.int32)
    vals = np.array([r[3] for r in rows])
    sig = np.array([r[4] for r in rows])
    batches = [r[5] for r in rows]
    batch = (
        None
        if all(b is None for b in batches)
        else np.array([0 if b is None else b for b in batches], dtype=np.int32)
    )
    return ReflectionData(
        hkl, vals, sig, "intensity" if hklf == 4 else "amplitude", batch, source=source, notes=notes
    )


def read_hkl(path: str | Path, hklf: int = 4) -> ReflectionData:
    """Read a SHELX HKLF 4 (``hklf=4``: I, σ(I)) or HKLF 3 (F, σ(F)) file."""
    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise ReflectionFileError(f"{path}: {exc}") from None
    return parse_hkl_text(text, str(path), hklf)


def write_hkl(
    path: str | Path,
    hkl: np.ndarray,
    values: np.ndarray,
    sigmas: np.ndarray | None = None,
    hklf: int = 4,
    batch: np.ndarray | None = None,
) -> float:
    """Write an HKLF 4 (intensities) or HKLF 3 (amplitudes) file with its ``0 0 0`` line.

    Values that would overflow the F8.2 columns are scaled down by a power of ten; the factor
    applied is returned (1.0 when none). Sigmas default to 1 % of |value| (at least 0.01).
    """
    hkl = np.asarray(hkl, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if hklf not in (3, 4):
        raise ReflectionFileError(f"{path}: HKLF {hklf} is not supported (use 3 or 4)")
    if hkl.ndim != 2 or hkl.shape[1] != 3 or len(values) != len(hkl):
        raise ReflectionFileError(f"{path}: need (n, 3) indices and n values")
    if not np.isfinite(values).all():
        raise ReflectionFileError(f"{path}: values must be finite")
    if np.abs(hkl).max(initial=0) > 999:
        raise ReflectionFileError(f"{path}: Miller indices above 999 do not fit HKLF columns")
    sig = (
        np.maximum(0.01 * np.abs(values), 0.01)
        if sigmas is None
        else np.asarray(sigmas, dtype=np.float64)
    )
    biggest = max(float(np.abs(values).max(initial=0)), float(np.abs(sig).max(initial=0)))
    scale = 1.0
    while biggest * scale >= 99999.99:
        scale /= 10.0
    lines = []
    for i, (h, k, l) in enumerate(hkl):
        line = f"{h:4d}{k:4d}{l:4d}{values[i] * scale:8.2f}{sig[i] * scale:8.2f}"
        if batch is not None:
            line += f"{int(batch[i]):4d}"
        lines.append(line)
    lines.append(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}")
    Path(path).write_text("\n".join(lines) + "\n")
    return scale


def write_ins(
    path: str | Path,
    crystal: Crystal,
    wavelength: float = 0.71073,
    title: str | None = None,
    hklf: int = 4,
    composition: dict[str, float] | None = None,
) -> str:
    """Write a minimal SHELX .ins (TITL, CELL, ZERR, LATT, SYMM, SFAC, UNIT, HKLF, END) for the
    crystal's cell, space group and unit-cell composition — enough for SHELXT/SHELXS.
    ``composition``: the unit-cell content {element: count} for SFAC/UNIT, when it is known
    otherwise than from the crystal's atoms (default: ``crystal.composition()``)."""
    sg = crystal.spacegroup
    sym = symmetry_info(sg)
    centring = sg.centring_type()
    if centring not in _LATT:
        raise CrystalError(f"{path}: SHELX has no LATT for centring {centring!r}")
    n = _LATT[centring]
    reps = half_ops(sym) if sym.centrosymmetric_origin else np.arange(len(sym.rotations))
    lines = [
        f"TITL {title or crystal.metadata.get('name', 'xtalforge')} in {sg.xhm()}",
        "CELL {:.5f} {:.4f} {:.4f} {:.4f} {:.3f} {:.3f} {:.3f}".format(wavelength, *crystal.cell),
        f"ZERR {len(sym.rotations) * len(sym.centrings)} 0 0 0 0 0 0",
        f"LATT {n if sym.centrosymmetric_origin else -n}",
    ]
    for i in reps:
        op = gemmi.Op()
        op.rot = (sym.rotations[i] * gemmi.Op.DEN).tolist()
        op.tran = np.round(sym.translations[i] * gemmi.Op.DEN).astype(int).tolist()
        if op.rot == gemmi.Op().rot and not any(op.tran):
            continue
        lines.append("SYMM " + op.triplet().upper())
    comp = composition if composition else crystal.composition()
    els = sorted(comp, key=lambda e: (e != "C", e != "H", atomic_number(e)))
    lines.append("SFAC " + " ".join(els))
    lines.append("UNIT " + " ".join(str(max(1, round(comp[e]))) for e in els))
    lines += [f"HKLF {hklf}", "END"]
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


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


def _parse_hklf(parts: list[str], where: str) -> HklfInstruction:
    """``HKLF n [s [r11 … r33 [wt [m]]]]`` (SHELXL defaults: s = 1, identity)."""
    n = int(parts[1]) if len(parts) > 1 else 0
    scale = float(parts[2]) if len(parts) > 2 else 1.0
    matrix = np.eye(3)
    if len(parts) > 3:
        values = [float(v) for v in parts[3:12]]
        if len(values) != 9:
            raise ValueError(f"the matrix needs nine numbers, got {len(values)}")
        matrix = np.array(values).reshape(3, 3)
        if np.linalg.det(matrix) <= 1e-6:
            raise ValueError("the matrix determinant must be positive (SHELXL refuses others)")
    return HklfInstruction(abs(n), scale, matrix, where)


class InsFile:
    """Cell, space group, composition and HKLF instruction read from a SHELX .ins/.res file."""

    def __init__(
        self,
        cell: tuple[float, ...],
        spacegroup: gemmi.SpaceGroup,
        sfac: list[str],
        unit: list[float],
        wavelength: float,
        hklf: HklfInstruction | None = None,
    ) -> None:
        self.cell = cell
        self.spacegroup = spacegroup
        self.sfac = sfac
        self.unit = unit
        self.wavelength = wavelength
        self.hklf = hklf or HklfInstruction()

    def composition(self) -> dict[str, float]:
        """Unit-cell content {element: count} from SFAC/UNIT."""
        return dict(zip(self.sfac, self.unit))


def read_ins(path: str | Path) -> InsFile:
    """Read CELL, LATT, SYMM, SFAC, UNIT and HKLF from a SHELX .ins or .res file."""
    path = Path(path)
    if not path.is_file():
        raise ReflectionFileError(f"{path}: no such file")
    return parse_ins_text(path.read_text(encoding="latin-1"), str(path))


def _instruction_lines(text: str) -> list[tuple[int, str]]:
    """(line number, instruction) with ``!`` comments cut and ``=`` continuation lines joined."""
    joined: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("!")[0].rstrip()
        if joined and joined[-1][1].endswith("="):
            joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
        else:
            joined.append((no, line))
    return joined


def hklf_from_ins_text(text: str, source: str = "<string>") -> HklfInstruction | None:
    """Only the HKLF instruction of an .ins/.res text (None when it has none), whatever the rest
    of the file holds; raises :class:`ReflectionFileError` for a malformed HKLF line."""
    for no, line in _instruction_lines(text):
        parts = line.split()
        if parts and parts[0].upper() == "HKLF":
            try:
                return _parse_hklf(parts, f"{source}:{no}")
            except (ValueError, IndexError) as exc:
                raise ReflectionFileError(f"{source}:{no}: cannot read HKLF: {exc}") from None
    return None


def parse_ins_text(text: str, source: str = "<string>") -> InsFile:
    """Parse the text of a SHELX .ins/.res file (e.g. a CIF's ``_shelx_res_file``); errors name
    ``source`` and the line number."""
    cell, latt, symm, sfac, unit, wl = None, 1, [], [], [], 0.71073
    hklf = None
    for no, line in _instruction_lines(text):
        parts = line.split()
        if not parts:
            continue
        key = parts[0].upper()
        try:
            if key == "CELL":
                wl = float(parts[1])
                cell = tuple(float(x) for x in parts[2:8])
                if len(cell) != 6:
                    raise ValueError("CELL needs wavelength and six parameters")
            elif key == "LATT":
                latt = int(parts[1])
            elif key == "SYMM":
                symm.append(line.split(None, 1)[1].replace(" ", ""))
            elif key == "SFAC":
                if len(parts) > 2 and _is_number(parts[2]):  # long form with coefficients
                    sfac.append(parts[1])
                else:
                    sfac.extend(parts[1:])
            elif key == "UNIT":
                unit = [float(x) for x in parts[1:]]
            elif key == "HKLF":
                hklf = _parse_hklf(parts, f"{source}:{no}")
                break
            elif key == "END":
                break
        except (ValueError, IndexError) as exc:
            raise ReflectionFileError(f"{source}:{no}: cannot read {key}: {exc}") from None
    if cell is None:
        raise ReflectionFileError(f"{source}: no CELL instruction")
    if abs(latt) not in _CENTRING:
        raise ReflectionFileError(f"{source}: LATT {latt} is not one of ±1..7")
    ops = ["x,y,z", *symm]
    ops += _CENTRING[abs(latt)]
    if latt > 0:
        ops.append("-x,-y,-z")
    try:
        sg = space_group_from_ops(ops)
        for el in sfac:
            symbol(atomic_number(el))
    except CrystalError as exc:
        raise ReflectionFileError(f"{source}: {exc}") from None
    return InsFile(cell, sg, sfac, unit, wl, hklf)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
