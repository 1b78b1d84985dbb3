"""SHELX .ins/.res files as structure models: the atom lines read into a
:class:`~xtalforge.crystal.model.Crystal`, and a model written as a SHELXL-ready ``.res``.

Reading follows SHELXL's conventions: a parameter written ``10m + p`` is fixed at p (m = 1),
``p·fv(m)`` (m > 1) or ``p·(fv(−m) − 1)`` (m < −1) with the free variables of ``FVAR``; a
site-occupation factor includes the 1/m of a special position (SHELXL writes 10.5 for an atom on
a twofold axis), which is turned into the chemical occupancy the :class:`Crystal` holds; a
negative U between −0.5 and −5 (riding hydrogen) is that multiple of U_eq of the last non-H
atom; anisotropic U_ij (``U11 U22 U33 U23 U13 U12``) become U_eq, the tensors kept in
``metadata["u_aniso"]`` (per atom [U11, U22, U33, U12, U13, U23] or None). Difference peaks
(``Q1`` …) and everything after ``HKLF``/``END`` are not atoms.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from xtalforge.crystal.elements import atomic_number
from xtalforge.crystal.model import OCC_SLACK, Crystal
from xtalforge.errors import CrystalError, ReflectionFileError
from xtalforge.io.shelx_ins import header_lines, instruction_lines, parse_ins_text

__all__ = ["parse_res_text", "read_res", "res_has_atoms", "write_res"]

#: SHELXL instructions (first four letters): a line starting with one is never an atom.
INSTRUCTIONS = frozenset(
    """ABIN ACTA AFIX ANIS ANSC ANSR BASF BIND BLOC BOND BUMP CELL CGLS CHIV CONF CONN DAMP DANG
    DEFS DELU DFIX DISP EADP END EQIV EXTI EXYZ FEND FLAT FMAP FRAG FREE FVAR GRID HFIX HKLF HTAB
    ISOR LATT LAUE LIST L.S. MERG MORE MOVE MPLA NCSY NEUT OMIT PART PLAN PRIG REM RESI RIGU RTAB
    SADI SAME SFAC SHEL SIMU SIZE SPEC STIR SUMP SWAT SYMM TEMP TITL TWIN TWST UNIT WGHT WIGL WPDB
    XNPD ZERR BEDE LONE SKIP NOTR ABIN""".split()
)


def _decode(value: float, fvar: list[float], where: str) -> tuple[float, bool]:
    """(value, fixed) of a SHELXL parameter coded as 10m + p (see the module docstring)."""
    if not np.isfinite(value) or abs(value) > 1e6:
        raise ReflectionFileError(f"{where}: {value} is not a usable number")
    if -5.0 < value < 5.0:
        return value, False
    m = round(value / 10.0)
    p = value - 10.0 * m
    if m == 1:
        return p, True
    k = abs(m)
    if k > len(fvar):
        raise ReflectionFileError(f"{where}: free variable {k} is not given on FVAR")
    return (p * fvar[k - 1] if m > 0 else p * (fvar[k - 1] - 1.0)), False


def _numbers(parts: list[str]) -> list[float] | None:
    try:
        return [float(x) for x in parts]
    except ValueError:
        return None


def _is_atom(parts: list[str], n_sfac: int) -> bool:
    """An atom line: ``label sfac x y z [sof [U…]]`` with a label that is no instruction."""
    if len(parts) < 5 or parts[0].upper()[:4] in INSTRUCTIONS or not parts[1].isdigit():
        return False
    return 1 <= int(parts[1]) <= max(n_sfac, 1) and _numbers(parts[2:]) is not None


def res_has_atoms(text: str) -> bool:
    """Whether an .ins/.res text has at least one atom line (not only instructions/peaks)."""
    for _, line in instruction_lines(text):
        parts = line.split()
        if parts and parts[0].upper() in ("HKLF", "END"):
            return False
        if parts and _is_atom(parts, 99) and not _is_peak(parts[0]):
            return True
    return False


def _is_peak(label: str) -> bool:
    return label[:1].upper() == "Q" and label[1:].isdigit()


def parse_res_text(text: str, source: str = "<string>") -> Crystal:
    """The model of a SHELX .ins/.res text (cell, symmetry, atoms); errors name ``source`` and
    the line. Raises :class:`CrystalError` when the file has no atoms."""
    ins = parse_ins_text(text, source)
    try:
        cell = gemmi.UnitCell(*ins.cell)
    except (RuntimeError, ValueError) as exc:
        raise CrystalError(f"{source}: CELL {ins.cell}: {exc}") from None
    fvar: list[float] = []
    z: list[int] = []
    frac: list[list[float]] = []
    u_iso: list[float] = []
    sof: list[float] = []
    labels: list[str] = []
    lines: list[int] = []
    tensors: list[list[float] | None] = []
    last_ueq = 0.05
    for no, line in instruction_lines(text):
        parts = line.split()
        if not parts:
            continue
        key = parts[0].upper()
        where = f"{source}:{no}"
        if key in ("HKLF", "END"):
            break
        if key == "FVAR":
            values = _numbers(parts[1:])
            if values is None:
                raise ReflectionFileError(f"{where}: cannot read FVAR")
            fvar.extend(values)
            continue
        if not _is_atom(parts, len(ins.sfac)) or _is_peak(parts[0]):
            continue
        values = _numbers(parts[2:]) or []
        if int(parts[1]) > len(ins.sfac):
            raise CrystalError(
                f"{where}: atom {parts[0]} has SFAC number {parts[1]}, the file lists "
                f"{len(ins.sfac)} SFAC elements"
            )
        element = ins.sfac[int(parts[1]) - 1]
        xyz = [_decode(v, fvar, where)[0] for v in values[:3]]
        occupancy = _decode(values[3], fvar, where)[0] if len(values) > 3 else 1.0
        u_values = values[4:]
        try:
            zz = atomic_number(element)
        except CrystalError as exc:
            raise CrystalError(f"{where}: {exc}") from None
        if len(u_values) >= 6:
            u = [_decode(v, fvar, where)[0] for v in u_values[:6]]
            u11, u22, u33, u23, u13, u12 = u
            ueq = cell.calculate_u_eq(gemmi.SMat33d(u11, u22, u33, u12, u13, u23))
            tensors.append([u11, u22, u33, u12, u13, u23])
        elif u_values:
            tensors.append(None)
            ueq = _decode(u_values[0], fvar, where)[0]
            if -5.0 <= ueq <= -0.5:  # riding: a multiple of the last non-H atom's U_eq
                ueq = -ueq * last_ueq
        else:
            tensors.append(None)
            ueq = 0.05
        if not (np.isfinite(ueq) and 0.0 <= ueq < 2.0):
            raise CrystalError(f"{where}: U = {ueq:g} Å² of atom {parts[0]} is unphysical")
        if zz > 1:
            last_ueq = ueq
        z.append(zz)
        frac.append(xyz)
        u_iso.append(ueq)
        sof.append(occupancy)
        labels.append(parts[0])
        lines.append(no)
    if not z:
        raise CrystalError(f"{source}: no atoms (an .ins/.res with instructions only)")
    try:
        crystal = Crystal(ins.cell, ins.spacegroup, z, frac, u_iso, None, labels)
    except CrystalError as exc:
        raise CrystalError(f"{source}: {exc}") from None
    order = crystal.site_symmetry_order()
    occ = np.asarray(sof) * order
    # SHELX writes 1/m with five decimals (10.02083 on a site of 48 operations): full again
    occ = np.where(np.abs(occ - 1.0) <= 6e-6 * order + 1e-9, 1.0, occ)
    for i in np.flatnonzero((occ <= 0) | (occ > 1 + 1e-3)):
        raise CrystalError(
            f"{source}:{lines[i]}: site occupation {sof[i]:g} of atom {labels[i]} gives "
            f"occupancy {occ[i]:.3f} on its site, outside (0, 1]"
        )
    meta = {
        "source": source,
        "composition_sfac_unit": ins.composition(),
        "u_aniso": tensors if any(t is not None for t in tensors) else None,
    }
    return crystal.copy(occ=np.minimum(occ, 1.0 + OCC_SLACK / 2), metadata=meta)


def read_res(path: str | Path) -> Crystal:
    """Read the model (cell, symmetry, atoms) of a SHELX .ins/.res file."""
    path = Path(path)
    if not path.is_file():
        raise CrystalError(f"{path}: no such file")
    return parse_res_text(path.read_text(encoding="latin-1"), str(path))


def write_res(
    path: str | Path,
    crystal: Crystal,
    wavelength: float = 0.71073,
    title: str | None = None,
    hklf: int = 4,
    remarks: list[str] | None = None,
    composition: dict[str, float] | None = None,
    u_aniso: np.ndarray | None = None,
    riding: tuple[np.ndarray, np.ndarray] | None = None,
) -> str:
    """Write ``crystal`` as a SHELXL .res: TITL, CELL, ZERR, LATT/SYMM, SFAC/UNIT, ``L.S.``,
    ``FVAR`` (scale 1), the atoms (label, SFAC number, x y z, site-occupation factor 10 + occ/m
    fixed; atoms of partial occupancy inside ``PART 1`` (above ½, the major part of a split
    site) or ``PART 2``), U_iso in Å² or, given ``u_aniso`` (N, 6: U11 U22 U33 U12 U13 U23, NaN
    rows for isotropic atoms), the six U_ij in SHELX's order), ``HKLF`` and ``END``. ``remarks``
    become REM lines (e.g. R1). ``composition`` (unit-cell content) sets UNIT; by default the
    atoms' own. ``riding``: (parent index, AFIX code) per atom, parent −1 for atoms that do not
    ride: each riding H is written after its parent inside ``AFIX m`` … ``AFIX 0`` with U −1.2
    or −1.5 (× the parent's U_eq: 1.5 for CH₃, NH₃ and OH groups), as SHELXL's HFIX writes them."""
    comp = composition if composition else crystal.composition()
    for el in crystal.elements:
        comp.setdefault(el, 1.0)
    lines, sfac = header_lines(crystal, wavelength, title, comp, str(path))
    lines += [f"REM {r}" for r in remarks or []]
    lines += ["L.S. 10", "LIST 4", "FMAP 2", "PLAN 20", "FVAR 1.00000"]
    order = crystal.site_symmetry_order()
    labels = _unique_labels(crystal)
    parent = np.full(crystal.n_atoms, -1) if riding is None else np.asarray(riding[0], int)
    code = np.zeros(crystal.n_atoms, int) if riding is None else np.asarray(riding[1], int)
    part = 0
    for i in np.flatnonzero(parent < 0).tolist():
        # split sites: the major part (occupancy above ½) as PART 1, the minor as PART 2
        here = 0 if crystal.occ[i] >= 1 else (1 if crystal.occ[i] > 0.5 else 2)
        if here != part:
            lines.append(f"PART {here}")
            part = here
        lines += _atom_lines(crystal, i, sfac, labels[i], order[i], u_aniso)
        riders = np.flatnonzero(parent == i)
        for m in dict.fromkeys(code[riders].tolist()):
            lines.append(f"AFIX {m}")
            for h in riders[code[riders] == m].tolist():
                factor = -1.5 if m in (137, 147) else -1.2
                lines += _atom_lines(crystal, h, sfac, labels[h], order[h], None, factor)
            lines.append("AFIX 0")
    if part:
        lines.append("PART 0")
    lines += [f"HKLF {hklf}", "END"]
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


def _atom_lines(
    crystal: Crystal,
    i: int,
    sfac: list[str],
    label: str,
    order: float,
    u_aniso: np.ndarray | None,
    u_riding: float | None = None,
) -> list[str]:
    """The .res line(s) of atom ``i``: label, SFAC number, x y z, sof, U_iso (or ``u_riding``,
    a negative multiple of the parent's U_eq) or the six U_ij."""
    number = sfac.index(crystal.elements[i]) + 1
    x, y, zc = crystal.frac[i]
    occ = 10.0 + crystal.occ[i] / order
    head = f"{label:<5s}{number:>3d} {x:10.6f} {y:10.6f} {zc:10.6f} {occ:10.5f}"
    tensor = None if u_aniso is None else np.asarray(u_aniso[i], float)
    if u_riding is not None:
        return [f"{head} {u_riding:9.5f}"]
    if tensor is None or np.isnan(tensor).any():
        return [f"{head} {crystal.u_iso[i]:9.5f}"]
    u11, u22, u33, u12, u13, u23 = tensor
    return [
        f"{head} {u11:9.5f} {u22:9.5f} =",
        f"    {u33:9.5f} {u23:9.5f} {u13:9.5f} {u12:9.5f}",
    ]


def _unique_labels(crystal: Crystal) -> list[str]:
    """The crystal's labels when they are unique SHELX names (≤ 4 characters, starting with a
    letter), else element + number (C1, C2, O1 …)."""
    given = crystal.labels or []
    if (
        len(given) == crystal.n_atoms
        and len(set(x.upper() for x in given)) == len(given)
        and all(0 < len(x) <= 4 and x[0].isalpha() and x.isalnum() for x in given)
        and not any(x.upper()[:4] in INSTRUCTIONS for x in given)
    ):
        return list(given)
    counts: dict[str, int] = {}
    out = []
    for el in crystal.elements:
        counts[el] = counts.get(el, 0) + 1
        out.append(f"{el}{counts[el]}")
    return out
