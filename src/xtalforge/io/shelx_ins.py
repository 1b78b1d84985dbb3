"""SHELX instruction files (.ins/.res): cell, symmetry, SFAC/UNIT and the ``HKLF`` line; and
a minimal .ins writer for SHELXT/SHELXS.

The ``HKLF n s r11 … r33`` instruction says how to read the .hkl beside the file: format n, a
scale s of the values and sigmas, and a matrix that turns the file's indices into those of the
cell in the .ins (h' = r11 h + r12 k + r13 l, …); :class:`~xtalforge.io.types.HklfInstruction`
carries it and applies it.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.cell import CellSymmetry
from xtalforge.crystal.elements import atomic_number, symbol
from xtalforge.crystal.model import Crystal
from xtalforge.crystal.symmetry import space_group_from_ops, symmetry_info
from xtalforge.diffraction.structure_factors import half_ops
from xtalforge.errors import CrystalError, ReflectionFileError
from xtalforge.io.types import HklfInstruction

__all__ = [
    "InsFile",
    "header_lines",
    "hklf_from_ins_text",
    "instruction_lines",
    "parse_ins_text",
    "read_ins",
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


def header_lines(
    crystal: CellSymmetry,
    wavelength: float,
    title: str | None,
    composition: dict[str, float],
    where: str,
) -> tuple[list[str], list[str]]:
    """(TITL, CELL, ZERR, LATT, SYMM, SFAC and UNIT lines; the SFAC elements in order) of a
    cell, space group and unit-cell content {element: count}."""
    sg = crystal.spacegroup
    sym = symmetry_info(sg)
    centring = sg.centring_type()
    if centring not in _LATT:
        raise CrystalError(f"{where}: SHELX has no LATT for centring {centring!r}")
    n = _LATT[centring]
    reps = half_ops(sym) if sym.centrosymmetric_origin else np.arange(len(sym.rotations))
    name = title or getattr(crystal, "metadata", {}).get("name", "xtalforge")
    lines = [
        f"TITL {name} in {sg.xhm()}",
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
    els = sorted(composition, key=lambda e: (e != "C", e != "H", atomic_number(e)))
    lines.append("SFAC " + " ".join(els))
    lines.append("UNIT " + " ".join(str(max(1, round(composition[e]))) for e in els))
    return lines, els


def write_ins(
    path: str | Path,
    crystal: CellSymmetry,
    wavelength: float = 0.71073,
    title: str | None = None,
    hklf: int = 4,
    composition: dict[str, float] | None = None,
) -> str:
    """Write a minimal SHELX .ins (TITL, CELL, ZERR, LATT, SYMM, SFAC, UNIT, HKLF, END) for a
    cell, space group and unit-cell composition — enough for SHELXT/SHELXS.
    ``crystal``: a :class:`CellSymmetry` (then ``composition`` is required) or a
    :class:`Crystal` (``composition`` defaults to ``crystal.composition()``).
    ``composition``: the unit-cell content {element: count} for SFAC/UNIT."""
    if composition is None and not isinstance(crystal, Crystal):
        raise CrystalError(f"{path}: write_ins needs the composition of a cell without atoms")
    comp = composition if composition else crystal.composition()  # type: ignore[attr-defined]
    lines, _ = header_lines(crystal, wavelength, title, comp, str(path))
    lines += [f"HKLF {hklf}", "END"]
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


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


def instruction_lines(text: str) -> list[tuple[int, str]]:
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
    for no, line in instruction_lines(text):
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
    for no, line in instruction_lines(text):
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
