"""CIFs written by the field's common writers read back to the structure they were given:
cctbx (``as_cif_simple``: DDL1 atom sites with DDLm symmetry and cell names), pymatgen
(``CifWriter``), gemmi (``make_mmcif_document`` of a small structure) and this package."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gemmi
import numpy as np
import pytest

from tests.builders import has_cctbx, real_data, well_separated
from xtalforge.io import read_structure

CELL = (7.0, 8.0, 9.0, 90.0, 97.0, 90.0)


def _truth():
    c = well_separated("P 1 21/c 1", CELL, 4, 9)
    return c.copy(z=[6, 8, 7, 16], u_iso=[0.02, 0.03, 0.025, 0.04], occ=np.ones(4), labels=None)


def _same(got, want) -> None:
    assert got.spacegroup.hall == want.spacegroup.hall
    np.testing.assert_allclose(got.cell, want.cell, atol=1e-3)
    np.testing.assert_array_equal(got.z, want.z)
    np.testing.assert_allclose(got.frac % 1.0, want.frac % 1.0, atol=1e-4)
    np.testing.assert_allclose(got.u_iso, want.u_iso, atol=1e-4)


CCTBX_WRITE = textwrap.dedent("""
    import json, sys
    from cctbx import crystal, xray
    from cctbx.array_family import flex
    d = json.load(sys.stdin)
    sym = crystal.symmetry(unit_cell=d["cell"], space_group_symbol="P 1 21/c 1")
    sc = flex.xray_scatterer()
    for i, (el, xyz, u) in enumerate(d["atoms"]):
        sc.append(xray.scatterer(f"{el}{i + 1}", site=xyz, u=u, scattering_type=el))
    xray.structure(crystal_symmetry=sym, scatterers=sc).as_cif_simple(out=open(d["out"], "w"))
""")


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
def test_cctbx_cif(tmp_path):
    import json

    c = _truth()
    atoms = [[el, x.tolist(), float(u)] for el, x, u in zip(c.elements, c.frac, c.u_iso)]
    payload = {"cell": list(CELL), "atoms": atoms, "out": str(tmp_path / "cctbx.cif")}
    # cctbx in a subprocess: it segfaults when gemmi/torch/scipy.fft were imported first
    subprocess.run(
        [sys.executable, "-c", CCTBX_WRITE], input=json.dumps(payload), text=True, check=True
    )
    _same(read_structure(tmp_path / "cctbx.cif"), c)


def test_pymatgen_cif(tmp_path):
    pytest.importorskip("pymatgen", reason="pymatgen (dev extra) not installed")
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    c = _truth()
    pos, idx = c.cell_positions()
    structure = Structure(Lattice.from_parameters(*CELL), [c.elements[i] for i in idx], pos)
    CifWriter(structure, symprec=1e-3).write_file(tmp_path / "pmg.cif")
    got = read_structure(tmp_path / "pmg.cif")
    # pymatgen keeps no U and may pick another ASU representative: compare the cell contents
    assert got.spacegroup.hall == c.spacegroup.hall
    assert got.composition() == pytest.approx(c.composition())


def test_gemmi_small_structure_cif(tmp_path):
    c = _truth()
    small = gemmi.SmallStructure()
    small.cell = gemmi.UnitCell(*CELL)
    small.spacegroup_hm = "P 1 21/c 1"
    for i, (el, x, u) in enumerate(zip(c.elements, c.frac, c.u_iso)):
        site = gemmi.SmallStructure.Site()
        site.label, site.element, site.fract, site.u_iso = (
            f"{el}{i + 1}",
            gemmi.Element(el),
            gemmi.Fractional(*x),
            u,
        )
        site.occ = 1.0
        small.add_site(site)
    small.setup_cell_images()
    doc = small.make_cif_block()  # gemmi ≥ 0.6: a block with DDL1 names
    path = tmp_path / "gemmi.cif"
    d = gemmi.cif.Document()
    d.add_copied_block(doc)
    d.write_file(str(path))
    _same(read_structure(path), c)


def test_ase_cif_both_ways(tmp_path):
    """ASE writes the cell contents in P 1; we read the same atoms. ASE reads our CIF to the
    same cell contents (it expands the symmetry itself)."""
    pytest.importorskip("ase", reason="ase (dev extra) not installed")
    import ase
    import ase.io

    c = _truth()
    pos, idx = c.cell_positions()
    atoms = ase.Atoms([c.elements[i] for i in idx], scaled_positions=pos, cell=list(CELL), pbc=True)
    ase.io.write(tmp_path / "ase.cif", atoms, format="cif")
    got = read_structure(tmp_path / "ase.cif")
    assert got.spacegroup.hall.strip() == "P 1"
    np.testing.assert_allclose(got.cell, CELL, atol=1e-6)
    assert got.composition() == pytest.approx(c.composition())
    ours, ours_idx = got.cell_positions()
    _same_sites(ours, [got.elements[i] for i in ours_idx], pos, [c.elements[i] for i in idx])
    from xtalforge.io import write_cif

    write_cif(c, tmp_path / "ours.cif")
    back = ase.io.read(tmp_path / "ours.cif")
    np.testing.assert_allclose(back.cell.cellpar(), CELL, atol=1e-4)
    _same_sites(
        back.get_scaled_positions(), back.get_chemical_symbols(), pos, [c.elements[i] for i in idx]
    )


def _same_sites(frac_a, el_a, frac_b, el_b) -> None:
    """The two atom lists are the same set of (element, site mod 1) to 1e-4."""
    assert sorted(el_a) == sorted(el_b)
    a, b = np.asarray(frac_a) % 1.0, np.asarray(frac_b) % 1.0
    for x, e in zip(a, el_a):
        d = (b - x + 0.5) % 1.0 - 0.5
        near = np.abs(d).max(axis=1) < 1e-4
        assert any(near[j] and el_b[j] == e for j in range(len(b))), (e, x)


def test_olex2_cif_reads_as_gemmi_reads_it():
    """A CIF written by Olex2 1.2 (SHELXL refinement, riding H, .res embedded): our atoms are
    gemmi's (element, site, occupancy, U_iso)."""
    path = real_data("hkl") / "COD_2242624.cif"
    assert "Olex2" in path.read_text()
    ours = read_structure(path)
    small = gemmi.read_small_structure(str(path))
    np.testing.assert_allclose(ours.cell, small.cell.parameters, atol=1e-6)
    assert ours.spacegroup.hall == gemmi.find_spacegroup_by_name(small.spacegroup_hm).hall
    assert [s.element.name for s in small.sites] == list(ours.elements)
    np.testing.assert_allclose(ours.frac, [s.fract.tolist() for s in small.sites], atol=1e-6)
    np.testing.assert_allclose(ours.occ, [s.occ for s in small.sites], atol=1e-6)
    np.testing.assert_allclose(ours.u_iso, [s.u_iso for s in small.sites], atol=1e-5)
