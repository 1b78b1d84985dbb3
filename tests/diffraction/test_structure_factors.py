"""Structure factors against gemmi's StructureFactorCalculatorX (same IT92 tables) and cctbx."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import gemmi
import numpy as np
import pytest
import torch

from tests.builders import cell_for, gemmi_sf, has_cctbx, well_separated
from xtalforge import (
    ReflectionError,
    reflections,
    structure_factors,
    structure_factors_batch,
)

# (space group, special positions to occupy exactly)
CASES = [
    ("P 1", []),
    ("P -1", [[0, 0, 0], [0.5, 0.5, 0]]),
    ("P 1 21 1", []),
    ("C 1 2 1", [[0, 0.3, 0]]),
    ("P 1 21/c 1", [[0, 0, 0], [0.5, 0, 0.5]]),
    ("C 1 2/c 1", [[0, 0.2, 0.25], [0.25, 0.25, 0]]),
    ("P 21 21 21", []),
    ("P b c a", [[0, 0, 0]]),
    ("R -3 :H", [[0, 0, 0], [0, 0, 0.3]]),
    ("P 63/m", [[1 / 3, 2 / 3, 0.25], [0.2, 0.3, 0.25]]),
    ("F d -3 m :2", [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.3, 0.125, 0.125]]),
]


def r_factor(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum() / np.abs(b).sum())


@pytest.mark.parametrize("sg, special", CASES, ids=[c[0] for c in CASES])
def test_structure_factors_equal_gemmi(sg, special):
    c = well_separated(sg, cell_for(gemmi.SpaceGroup(sg)), 6, seed=len(sg), special=special)
    if special:
        assert (c.site_symmetry_order()[: len(special)] > 1).all()
    refl = reflections(c, 0.9)
    ref = gemmi_sf(c, refl.hkl)
    assert r_factor(structure_factors(c, refl), ref) < 1e-4
    assert r_factor(structure_factors(c, refl, dtype=np.float32), ref) < 1e-4
    assert r_factor(np.abs(structure_factors(c, refl)), np.abs(ref)) < 1e-4


def test_batch_equals_single_for_mixed_groups():
    crystals = [
        well_separated(sg, cell_for(gemmi.SpaceGroup(sg)), 5, seed=i, special=sp)
        for i, (sg, sp) in enumerate(CASES)
    ]
    refls = [reflections(c, 1.0) for c in crystals]
    single = [structure_factors(c, r) for c, r in zip(crystals, refls)]
    f64 = structure_factors_batch(crystals, refls, dtype=torch.float64)
    f32 = structure_factors_batch(crystals, refls, chunk_terms=5000)
    for s, a, b in zip(single, f64, f32):
        assert r_factor(a, s) < 1e-10
        assert r_factor(b, s) < 1e-5
    again = structure_factors_batch(crystals, d_min=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(again, f32))


def test_friedel_law_and_translation_phase_shift():
    c = well_separated("P 1", cell_for(gemmi.SpaceGroup("P 1")), 8, seed=5)
    refl = reflections(c, 1.0)
    f = structure_factors(c, refl)
    hkl_all, f_all = refl.expand_to_p1(f)
    lookup = {tuple(h): v for h, v in zip(hkl_all, f_all)}
    # Friedel: compute F(-h) directly from the same model via a P1 structure inverted in space
    inverted = c.copy(frac=-c.frac)
    f_inv = structure_factors(inverted, refl)  # F_inverted(h) = F(-h)
    np.testing.assert_allclose(f_inv, np.conj(f), rtol=1e-9, atol=1e-9)
    assert lookup[tuple(-refl.hkl[3])] == pytest.approx(np.conj(f[3]))
    t = np.array([0.13, -0.27, 0.41])
    shifted = structure_factors(c.copy(frac=c.frac + t), refl)
    np.testing.assert_allclose(shifted, f * np.exp(2j * np.pi * refl.hkl @ t), rtol=1e-9, atol=1e-9)


def test_mismatched_reflections_rejected():
    c = well_separated("P 1 21 1", cell_for(gemmi.SpaceGroup("P 1 21 1")), 3, seed=1)
    other = reflections((7, 8, 9, 90, 90, 90), 1.0, spacegroup="P 21 21 21")
    with pytest.raises(ReflectionError):
        structure_factors(c, other)


CCTBX_SCRIPT = textwrap.dedent("""
    import json, sys
    from cctbx import crystal, miller, xray
    from cctbx.array_family import flex
    d = json.load(sys.stdin)
    sym = crystal.symmetry(unit_cell=d["cell"], space_group_symbol="Hall: " + d["hall"])
    scatterers = flex.xray_scatterer()
    for lab, el, xyz, u, occ in d["atoms"]:
        scatterers.append(xray.scatterer(label=lab, scattering_type=el, site=xyz, u=u,
                                         occupancy=occ))
    xs = xray.structure(crystal_symmetry=sym, scatterers=scatterers)
    xs.scattering_type_registry(table="it1992")
    ms = miller.set(sym, flex.miller_index([tuple(h) for h in d["hkl"]]), anomalous_flag=False)
    f = ms.structure_factors_from_scatterers(xs, algorithm="direct").f_calc().data()
    json.dump([[v.real, v.imag] for v in f], sys.stdout)
""")


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
@pytest.mark.parametrize("sg, special", CASES[::2], ids=[c[0] for c in CASES[::2]])
def test_structure_factors_equal_cctbx(sg, special):
    c = well_separated(sg, cell_for(gemmi.SpaceGroup(sg)), 6, seed=11, special=special)
    refl = reflections(c, 1.0)
    payload = {
        "cell": list(c.cell),
        "hall": c.spacegroup.hall,
        "hkl": refl.hkl.tolist(),
        "atoms": [
            [f"A{i}", el, x.tolist(), float(u), float(o)]
            for i, (el, x, u, o) in enumerate(zip(c.elements, c.frac, c.u_iso, c.occ))
        ],
    }
    # cctbx runs in a subprocess: it segfaults when gemmi/torch/scipy.fft were imported first.
    out = subprocess.run(
        [sys.executable, "-c", CCTBX_SCRIPT],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
    )
    ref = np.array([complex(*v) for v in json.loads(out.stdout)])
    assert r_factor(structure_factors(c, refl), ref) < 1e-3


def test_batch_expected_intensity_matches_wilson_expectation():
    from xtalforge.crystal.examples import quartz
    from xtalforge.diffraction.wilson import expected_intensity

    crystals = [
        quartz(),
        well_separated("C 1 2 1", (9.0, 7.0, 8.0, 90, 101, 90), 6, 1, special=[[0.0, 0.3, 0.0]]),
    ]
    refls = [reflections(c, 0.9) for c in crystals]
    _, expected = structure_factors_batch(crystals, refls, with_expected=True)
    for c, r, e in zip(crystals, refls, expected):
        np.testing.assert_allclose(e, expected_intensity(c, r), rtol=1e-5)


@pytest.mark.parametrize("sg, special", CASES, ids=[c[0] for c in CASES])
def test_compiled_and_numpy_float32_batches_equal_gemmi(sg, special):
    """Both CPU float32 kernels of the batch (compiled polynomial sums, padded numpy) against
    gemmi's calculator, with large indices (0.6 Å) where range reduction matters, and their
    ⟨|F|²⟩/ε against the Wilson expectation."""
    from xtalforge.diffraction.wilson import expected_intensity

    c = well_separated(sg, cell_for(gemmi.SpaceGroup(sg)), 6, seed=len(sg), special=special)
    refl = reflections(c, 0.6)
    ref = gemmi_sf(c, refl.hkl)
    for compiled in (True, False):
        (f,), (ex,) = structure_factors_batch([c], [refl], with_expected=True, compiled=compiled)
        assert f.dtype == np.complex64
        assert np.abs(f - ref).max() < 2e-5 * np.abs(ref).max()
        np.testing.assert_allclose(ex, expected_intensity(c, refl), rtol=1e-5)
        if c.symmetry.centrosymmetric_origin:
            assert np.abs(f.imag).max() == 0.0


def test_compiled_exponential_and_polar_against_closed_forms():
    """The compiled exp (Debye–Waller and form-factor Gaussians) and |F|, φ against math.exp,
    math.hypot and math.atan2 in float64, over every octant and the axes."""
    from xtalforge.diffraction._kernels import _exp_into, polar
    from xtalforge.diffraction.batch import amplitudes_and_phases

    arg = -np.linspace(0.0, 80.0, 4001).astype(np.float32)
    got = np.empty_like(arg)
    _exp_into(arg, got, np.empty(len(arg), np.int32))
    want = np.array([math.exp(float(x)) for x in arg])
    assert (np.abs(got - want) / want).max() < 5e-7
    rng = np.random.default_rng(3)
    angles = np.concatenate([np.arange(-8, 9) * np.pi / 8, rng.uniform(-np.pi, np.pi, 3000)])
    mod = np.concatenate([np.ones(17), rng.lognormal(0, 4, 3000)])
    f = (mod * np.exp(1j * angles)).astype(np.complex64)
    f = np.concatenate([f, np.array([0, 1, -1, 1j, -1j, -3 + 0j], np.complex64)])
    amp, phase = amplitudes_and_phases(f)
    assert amp.dtype == phase.dtype == np.float32
    ref_amp = np.array([math.hypot(float(v.real), float(v.imag)) for v in f])
    ref_phase = np.array([math.atan2(float(v.imag), float(v.real)) for v in f])
    assert (np.abs(amp - ref_amp) <= 3e-7 * ref_amp).all()
    assert np.abs(phase - ref_phase).max() < 1e-6
    assert phase[-6:].tolist() == pytest.approx([0, 0, math.pi, math.pi / 2, -math.pi / 2, math.pi])
    out_a, out_p = np.empty(len(f), np.float32), np.empty(len(f), np.float32)
    polar(f, out_a, out_p)
    assert np.array_equal(out_p, phase)
