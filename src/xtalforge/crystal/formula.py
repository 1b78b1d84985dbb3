"""Chemical formulas (``C12H22O11``, ``C8 H10 N2 O4``, ``[Fe(H2O)6](ClO4)3``) and the unit-cell
content they give for a cell: Z formula units chosen so that each non-H atom has about
:data:`VOLUME_PER_ATOM` Å³, the rule of thumb for organic and metal-organic crystals."""

from __future__ import annotations

import re

from xtalforge.crystal.elements import atomic_number, symbol
from xtalforge.errors import CrystalError

__all__ = [
    "DENSE_VOLUME_PER_ATOM",
    "VOLUME_PER_ATOM",
    "cell_content_from_formula",
    "parse_formula",
    "plausible_volume_per_atom",
]

#: Å³ per non-H atom in a typical molecular crystal (within a factor of 2 either way).
VOLUME_PER_ATOM = 18.0
#: Å³ per atom of the densest crystals (diamond 5.7, high-pressure nitrides such as FeN₄ 5.3):
#: the lower end of what a cell content may give when no molecular one fits.
DENSE_VOLUME_PER_ATOM = 4.5

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)|(\()|(\))(\d*\.?\d*)|([\[\]·.\s,*+-])|(\d+)")


def parse_formula(text: str) -> dict[str, float]:
    """{element: count} of a formula; parentheses and brackets with multipliers are expanded,
    ``·`` separates parts (a leading number multiplies its part: ``C6H6·2H2O``)."""
    total: dict[str, float] = {}
    for part in re.split(r"[·•]", text.replace("[", "(").replace("]", ")")):
        part = part.strip()
        factor = 1.0
        lead = re.match(r"^(\d+\.?\d*)\s*(?=[A-Z(])", part)
        if lead:
            factor, part = float(lead.group(1)), part[lead.end() :]
        for el, n in _parse_group(part, text).items():
            total[el] = total.get(el, 0.0) + n * factor
    if not total:
        raise CrystalError(f"formula {text!r}: no elements")
    return total


def _parse_group(text: str, whole: str) -> dict[str, float]:
    stack: list[dict[str, float]] = [{}]
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CrystalError(f"formula {whole!r}: cannot read {text[pos:]!r}")
        pos = m.end()
        el, count, opening, closing, mult = (
            m.group(1),
            m.group(2),
            m.group(3),
            m.group(4),
            m.group(5),
        )
        if el:
            try:
                name = symbol(atomic_number(el))
            except CrystalError:
                raise CrystalError(f"formula {whole!r}: unknown element {el!r}") from None
            stack[-1][name] = stack[-1].get(name, 0.0) + (float(count) if count else 1.0)
        elif opening:
            stack.append({})
        elif closing:
            if len(stack) == 1:
                raise CrystalError(f"formula {whole!r}: unbalanced ')'")
            inner = stack.pop()
            k = float(mult) if mult else 1.0
            for e, n in inner.items():
                stack[-1][e] = stack[-1].get(e, 0.0) + n * k
        elif m.group(7):
            raise CrystalError(f"formula {whole!r}: a number {m.group(7)!r} without an element")
    if len(stack) != 1:
        raise CrystalError(f"formula {whole!r}: unbalanced '('")
    return stack[0]


def cell_content_from_formula(
    formula: dict[str, float], volume: float, n_ops: int, n_centring: int = 1
) -> tuple[dict[str, float], int]:
    """(unit-cell content, Z) for a formula in a cell of ``volume`` Å³ with ``n_ops`` symmetry
    operations: Z the multiple of the formula that puts the non-H atoms nearest to
    :data:`VOLUME_PER_ATOM` Å³ each (Z a multiple of ``n_ops`` when that fits within a factor
    of 1.5: a molecular formula in a general position; a formula that is already the cell's
    content keeps Z = 1), and of the ``n_centring`` lattice points a multiple for every
    element (each atom of a centred cell comes in ``n_centring`` copies: NaCl in Fm-3m is
    Z = 4, not the 5 that 18 Å³ per atom alone would give). When no Z gives a molecular
    9–36 Å³ per non-H atom, a dense inorganic cell is accepted down to
    :data:`DENSE_VOLUME_PER_ATOM` (Z = 1: FeN₄, 5.3 Å³ per atom). Raises :class:`CrystalError`
    when no Z gives a plausible volume per atom."""
    heavy = sum(n for el, n in formula.items() if el not in ("H", "D"))
    if heavy <= 0:
        raise CrystalError("the formula has no atoms heavier than hydrogen")
    ideal = volume / (VOLUME_PER_ATOM * heavy)
    candidates = [z for z in range(1, max(2, int(4 * ideal) + 2)) if _fits(volume, heavy * z)]
    whole = [z for z in candidates if _whole_lattice_points(formula, z, n_centring)]
    candidates = whole or candidates
    if not candidates and plausible_volume_per_atom(volume / heavy):
        return dict(formula), 1
    if not candidates:
        raise CrystalError(
            f"the formula ({heavy:g} non-H atoms) does not fit the cell of {volume:.1f} Å³: "
            f"{volume / heavy:.1f} Å³ per non-H atom for Z = 1, expected "
            f"{VOLUME_PER_ATOM / 2:g}–{VOLUME_PER_ATOM * 2:g} Å³ per atom for some Z "
            f"(down to {DENSE_VOLUME_PER_ATOM:g} for a dense inorganic cell)"
        )
    multiples = [z for z in candidates if z % n_ops == 0 and _fits(volume, heavy * z, 1.5)]
    pool = multiples or candidates
    z = min(pool, key=lambda v: abs(v - ideal))
    return {el: n * z for el, n in formula.items()}, z


def plausible_volume_per_atom(per_atom: float) -> bool:
    """Whether ``per_atom`` Å³ per non-H atom is a crystal's: molecular (9–36 Å³) or dense
    inorganic (down to :data:`DENSE_VOLUME_PER_ATOM`)."""
    return DENSE_VOLUME_PER_ATOM <= per_atom <= VOLUME_PER_ATOM * 2


def _whole_lattice_points(formula: dict[str, float], z: int, n_centring: int) -> bool:
    """Every element's count in the cell a multiple of the lattice points (counts of a
    fractional, disordered formula are not held to it)."""
    counts = [n * z for n in formula.values()]
    if any(abs(c - round(c)) > 1e-6 for c in counts):
        return True
    return all(round(c) % n_centring == 0 for c in counts)


def _fits(volume: float, atoms: float, factor: float = 2.0) -> bool:
    per = volume / atoms
    return VOLUME_PER_ATOM / factor <= per <= VOLUME_PER_ATOM * factor
