"""SHELX .ins/.res models: atoms read with SHELXL's conventions (checked against cctbx's own
reader on the real .res files), written .res files read back by us and by cctbx, and the
closed-form cases of free variables, riding U and U_eq."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gemmi
import numpy as np
import pytest

from tests.builders import has_cctbx, real_data, well_separated
from xtalforge.errors import CrystalError, ReflectionFileError
from xtalforge.io import holds_a_model, read_res, read_structure, write_res
from xtalforge.io.shelx_model import parse_res_text

CCTBX_READ = textwrap.dedent("""
    import json, sys
    from cctbx import xray
    out = {}
    for f in sys.argv[1:]:
        xs = xray.structure.from_shelx(file=open(f), strictly_shelxl=False)
        uc = xs.unit_cell()
        out[f] = [[s.label, s.scattering_type, list(s.site), s.occupancy, s.u_iso_or_equiv(uc)]
                  for s in xs.scatterers()]
    json.dump(out, sys.stdout)
""")


def cctbx_atoms(*paths) -> dict:
    # cctbx in a subprocess: it segfaults when gemmi/torch/scipy.fft were imported first
    out = subprocess.run(
        [sys.executable, "-c", CCTBX_READ, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def assert_same_atoms(crystal, atoms) -> None:
    by_label = {lab.upper(): i for i, lab in enumerate(crystal.labels)}
    assert len(atoms) == crystal.n_atoms
    for label, element, site, occ, u in atoms:
        i = by_label[label.upper()]
        assert crystal.elements[i].upper() == element.upper()
        np.testing.assert_allclose(crystal.frac[i], site, atol=1e-5)
        # cctbx keeps 48 × 0.02083 = 0.99984 where we read a full atom (five-decimal 1/m)
        assert crystal.occ[i] == pytest.approx(occ, abs=3e-4), label
        assert crystal.u_iso[i] == pytest.approx(u, abs=1e-4), label


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
def test_real_res_files_read_as_cctbx_reads_them():
    """Free variables, PART, AFIX, riding H (negative U), special positions (10.5, 10.16667
    sof), anisotropic U: every atom of the nine development .res files as cctbx has it."""
    files = sorted(real_data("hkl").glob("*.res"))
    ref = cctbx_atoms(*files)
    for f in files:
        assert_same_atoms(read_res(f), ref[str(f)])


def test_res_with_atoms_is_a_structure(tmp_path):
    c = well_separated("C 1 2 1", (9.0, 7.0, 8.0, 90, 101, 90), 5, 3, special=[[0.0, 0.3, 0.0]])
    c = c.copy(u_iso=np.linspace(0.01, 0.05, c.n_atoms), occ=[1, 0.5, 1, 1, 1, 0.75])
    path = tmp_path / "m.res"
    write_res(path, c, remarks=["R1 = 0.1"])
    assert holds_a_model(path)
    back = read_structure(path)
    assert back.spacegroup.hall == c.spacegroup.hall
    np.testing.assert_array_equal(back.z, c.z)
    np.testing.assert_allclose(back.frac, c.frac, atol=1e-6)
    np.testing.assert_allclose(back.u_iso, c.u_iso, atol=1e-5)
    np.testing.assert_allclose(back.occ, c.occ, atol=1e-5)
    assert back.site_symmetry_order()[0] == 2  # the atom on the twofold axis stays there
    ins = tmp_path / "cell.ins"
    ins.write_text(path.read_text().split("FVAR")[0] + "HKLF 4\nEND\n")
    assert not holds_a_model(ins)  # instructions only: cell and symmetry, not a structure


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
def test_written_res_read_by_cctbx(tmp_path):
    c = well_separated("P 1 21/c 1", (7.0, 8.0, 9.0, 90, 97, 90), 6, 5, special=[[0.5, 0, 0.5]])
    c = c.copy(u_iso=np.linspace(0.015, 0.04, c.n_atoms), labels=None)
    path = tmp_path / "x.res"
    write_res(path, c)
    mine = read_res(path)
    assert_same_atoms(mine, cctbx_atoms(path)[str(path)])
    np.testing.assert_allclose(mine.frac, c.frac, atol=1e-6)


def _with_riding_h():
    """A propanol-like chain in P2₁/c with riding H placed (methyl AFIX 137, CH₂ 23, OH 147)."""
    from xtalforge.crystal import Crystal
    from xtalforge.phasing.hydrogens import place_hydrogens

    cell = (9.0, 10.0, 11.0, 90.0, 100.0, 90.0)
    cart = np.array([[0.0, 0, 0], [1.53, 0, 0], [2.10, 1.42, 0], [3.52, 1.45, 0.1]])
    frac = cart @ np.linalg.inv(gemmi.UnitCell(*cell).orth.mat.tolist()).T + [0.2, 0.3, 0.25]
    heavy = Crystal(cell, "P 1 21/c 1", np.array([6, 6, 6, 8]), frac, np.full(4, 0.02))
    h = place_hydrogens(heavy)
    full = h.attached(heavy)
    parent = np.concatenate([np.full(4, -1), h.parent])
    code = np.concatenate([np.zeros(4, int), h.afix])
    return full, (parent, code), heavy.n_atoms


def test_riding_h_written_inside_afix_read_back(tmp_path):
    """Each H follows its parent inside AFIX m / AFIX 0 with U −1.2 / −1.5 (× the parent's U),
    and reads back at its place with that U."""
    full, riding, n = _with_riding_h()
    path = tmp_path / "h.res"
    text = write_res(path, full, riding=riding)
    assert {"AFIX 137", "AFIX 23", "AFIX 147", "AFIX 0"} <= set(text.splitlines())
    back = read_res(path)
    assert back.n_atoms == full.n_atoms and (back.z == 1).sum() == (full.z == 1).sum()
    order = np.concatenate([[p, *np.flatnonzero(riding[0] == p)] for p in range(n)])
    np.testing.assert_allclose(back.frac, full.frac[order], atol=1e-6)
    np.testing.assert_allclose(back.u_iso, full.u_iso[order], atol=1e-6)  # 1.2 / 1.5 × 0.02


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
def test_riding_h_res_read_by_cctbx(tmp_path):
    full, riding, _ = _with_riding_h()
    path = tmp_path / "h.res"
    write_res(path, full, riding=riding)
    assert_same_atoms(read_res(path), cctbx_atoms(path)[str(path)])


RES = """TITL t
CELL 0.71073 10.0 12.0 14.0 90 90 90
ZERR 4 0 0 0 0 0 0
LATT -1
SYMM 0.5-X, -Y, 0.5+Z
SYMM -X, 0.5+Y, 0.5-Z
SYMM 0.5+X, 0.5-Y, -Z
SFAC C H O
UNIT 4 4 4
FVAR 0.5 0.7
C1 1 0.1 0.2 0.3 11.0 0.02 0.03 =
   0.04 0.001 0.002 0.003
H1 2 0.15 0.25 0.35 11.0 -1.5
PART 1
O1 3 0.4 0.1 0.2 21.0 0.05
PART 2
O2 3 0.41 0.12 0.21 -21.0 0.05
PART 0
Q1 1 0.3 0.3 0.3 11.0 0.05 1.2
HKLF 4
END
C9 1 0.1 0.1 0.1 11.0 0.05
"""


def test_shelxl_conventions_closed_form():
    c = parse_res_text(RES, "t.res")
    assert c.labels == ["C1", "H1", "O1", "O2"]  # Q peaks and atoms after HKLF are not atoms
    # orthogonal cell: U_eq is the mean of U11, U22, U33; the riding H takes 1.5 U_eq of C1
    assert c.u_iso[0] == pytest.approx(0.03)
    assert c.u_iso[1] == pytest.approx(0.045)
    assert c.occ[2] == pytest.approx(0.7) and c.occ[3] == pytest.approx(0.3)  # fv(2), 1 − fv(2)
    assert c.metadata["composition_sfac_unit"] == {"C": 4.0, "H": 4.0, "O": 4.0}


def test_special_position_occupancy_written_to_five_decimals_is_full():
    """NaCl in Fm-3m as SHELXL writes it: 10.02083 (1/48 to five decimals) on sites of 48
    operations is a full atom, so the cell holds exactly Na4 Cl4."""
    res = "\n".join(
        [
            "TITL nacl",
            "CELL 0.71073 5.641 5.641 5.641 90 90 90",
            "LATT 4",
            *[f"SYMM {op}" for op in ("-Y,+X,+Z", "+X,-Y,-Z", "+Z,+X,+Y")],
            "SFAC Cl Na",
            "UNIT 4 4",
            "CL1 1 0.0 0.0 0.0 10.02083 0.018",
            "NA1 2 0.5 0.0 0.0 10.02083 0.021",
            "HKLF 4",
            "END",
        ]
    )
    c = parse_res_text(res, "nacl.res")
    assert c.spacegroup.xhm() == "F m -3 m"
    assert list(c.occ) == [1.0, 1.0]
    assert c.composition() == {"Cl": 4.0, "Na": 4.0}


@pytest.mark.parametrize(
    "change, message",
    [
        (("21.0 0.05", "31.0 0.05"), "free variable 3"),
        (("SFAC C H O", "SFAC C H Xx"), "Xx"),
        (("0.4 0.1 0.2 21.0 0.05", "0.4 0.1 0.2 21.0 2.5"), "unphysical"),
        (("CELL 0.71073 10.0 12.0 14.0 90 90 90", "CELL 0.71073 10.0 12.0"), ":2"),
    ],
)
def test_bad_res_named(change, message):
    with pytest.raises((CrystalError, ReflectionFileError), match=message):
        parse_res_text(RES.replace(*change), "bad.res")


def test_res_without_atoms_refused_as_a_structure(tmp_path):
    path = tmp_path / "cell.ins"
    path.write_text("\n".join(RES.splitlines()[:9]) + "\nHKLF 4\nEND\n")
    with pytest.raises(CrystalError, match="no atoms"):
        read_res(path)
    assert gemmi.SpaceGroup("P b c a")  # the group the header above describes
