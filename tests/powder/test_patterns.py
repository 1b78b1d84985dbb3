"""Powder patterns: Bragg's law, profiles, FCJ asymmetry, Kα2, quartz, pymatgen cross-check."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from xtalforge.crystal.examples import quartz, random_crystal, sodium_chloride
from xtalforge.io import write_cif
from xtalforge.powder import (
    Instrument,
    InstrumentSampler,
    PowderError,
    fcj_nodes,
    peak_list,
    pseudo_voigt,
    simulate,
    simulate_batch,
    simulate_mixture,
    tch_parameters,
)

CUKA1 = 1.540596


def test_bragg_law_for_a_cubic_cell():
    nacl = sodium_chloride()
    a = nacl.cell[0]
    peaks = peak_list(nacl, Instrument(wavelengths="CuKa1", two_theta_max=120))
    n2 = (peaks.hkl.astype(float) ** 2).sum(axis=1)
    expected = 2 * np.degrees(np.arcsin(CUKA1 * np.sqrt(n2) / (2 * a)))
    np.testing.assert_allclose(peaks.two_theta, expected, atol=1e-9)
    assert peaks.two_theta.max() <= 121.0


def test_quartz_strongest_lines():
    peaks = peak_list(quartz(), Instrument(wavelengths="CuKa1", two_theta_max=60))
    lines: dict[float, float] = {}
    for tt, inten in zip(np.round(peaks.two_theta, 2), peaks.intensity):
        lines[tt] = lines.get(tt, 0.0) + inten
    top = sorted(lines, key=lines.get, reverse=True)[:2]
    assert top[0] == pytest.approx(26.64, abs=0.01)  # (101)
    assert top[1] == pytest.approx(20.86, abs=0.01)  # (100)


@pytest.mark.parametrize("fwhm, eta", [(0.05, 0.0), (0.1, 0.5), (0.2, 1.0)])
def test_pseudo_voigt_integrates_to_one(fwhm, eta):
    x = np.linspace(-400 * fwhm, 400 * fwhm, 400001)
    area = np.trapezoid(pseudo_voigt(x, fwhm, eta), x)
    # the Lorentzian tail beyond ±400 FWHM holds 1/(400π) of its area
    assert area == pytest.approx(1 - eta / (400 * math.pi), rel=1e-4)


def test_tch_fwhm_is_the_measured_width_and_matches_the_formula():
    tt = np.array([20.0, 60.0, 110.0])
    g, lo, fwhm, eta = tch_parameters(tt, U=3.0, V=-0.5, W=4.0, X=5.0, Y=3.0, Z=0.5)
    th = np.radians(tt / 2)
    g_ref = (
        np.sqrt(
            8 * math.log(2) * (3 * np.tan(th) ** 2 - 0.5 * np.tan(th) + 4 + 0.5 / np.cos(th) ** 2)
        )
        / 100
    )
    l_ref = (5 / np.cos(th) + 3 * np.tan(th)) / 100
    np.testing.assert_allclose(g, g_ref)
    np.testing.assert_allclose(lo, l_ref)
    for f, e in zip(fwhm, eta):
        x = np.linspace(-3 * f, 3 * f, 200001)
        y = pseudo_voigt(x, f, e)
        above = x[y >= y.max() / 2]
        assert above[-1] - above[0] == pytest.approx(f, rel=1e-3)
    # the TCH width lies between the pure widths' maximum and their sum
    assert (fwhm >= np.maximum(g, lo)).all() and (fwhm <= g + lo).all()


def test_fcj_asymmetry_moves_centroid_down_at_low_angle_and_vanishes():
    tt = np.array([10.0, 30.0, 150.0])
    off, w = fcj_nodes(tt, shl=0.05, hl=0.05)
    centroid = (off * w).sum(axis=1)
    assert centroid[0] < centroid[1] < 0 and centroid[2] > 0
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    small_off, _ = fcj_nodes(tt, shl=1e-5, hl=1e-5)
    assert np.abs(small_off).max() < 1e-3
    assert np.abs(fcj_nodes(tt, 0.0, 0.0)[0]).max() == 0.0


def test_profiled_peak_area_and_centroid():
    nacl = sodium_chloride()
    ins = Instrument(
        wavelengths="CuKa1",
        two_theta_min=25,
        two_theta_max=35,
        n_points=20001,
        shl=0.03,
        hl=0.03,
        W=5,
        X=3,
        Y=1,
    )
    peaks = peak_list(nacl, ins)
    for exact in (True, False):
        x, y = simulate(peaks, ins, exact=exact)
        line = peaks.two_theta < 36
        area = np.trapezoid(y, x)
        # window ±30 FWHM: the Lorentzian part loses ≈ η/(30π) of its area
        assert area == pytest.approx(peaks.intensity[line].sum(), rel=0.01)
        peak = x[np.argmax(y)]
        assert peak < peaks.two_theta[line][np.argmax(peaks.intensity[line])]


def test_fast_profile_equals_exact_evaluation():
    c = random_crystal("P 1 21/c 1", 12, seed=3)
    ins = Instrument(shl=0.02, hl=0.03)
    peaks = peak_list(c, ins)
    _, fast = simulate(peaks, ins)
    _, exact = simulate(peaks, ins, exact=True)
    assert np.abs(fast - exact).sum() / np.abs(exact).sum() < 0.005


def test_kalpha2_position_and_half_intensity():
    nacl = sodium_chloride()
    peaks = peak_list(nacl, Instrument(wavelengths="CuKa12"))
    k1 = np.isclose(peaks.wavelength, 1.540596)
    k2 = ~k1
    assert k1.sum() == k2.sum()
    np.testing.assert_allclose(peaks.d[k1], peaks.d[k2])
    expected = 2 * np.degrees(np.arcsin(1.544493 / (2 * peaks.d[k2])))
    np.testing.assert_allclose(peaks.two_theta[k2], expected)
    ratio = peaks.intensity[k2] / peaks.intensity[k1]
    lp_ratio = peaks.lp[k2] / peaks.lp[k1]
    np.testing.assert_allclose(ratio / lp_ratio, 0.5)


def test_background_noise_and_batch():
    crystals = [random_crystal("P 1 21/c 1", 10, seed=s) for s in range(3)]
    ins = InstrumentSampler().sample(7)
    assert InstrumentSampler().sample(7) == ins
    pats = simulate_batch(crystals, ins, noise=True, seed=5)
    assert pats.shape == (3, 4351) and (pats >= 0).all()
    assert np.array_equal(pats, simulate_batch(crystals, ins, noise=True, seed=5))
    single = simulate(crystals[1], ins, noise=True, seed=6)[1]
    np.testing.assert_array_equal(pats[1], single)
    # counts = scale · (peaks normalised to a maximum of 1) + Σ c_i T_i(x), x ∈ [−1, 1]
    assert ins.normalize and len(ins.background) > 1
    x, quiet = simulate(crystals[0], ins)
    bare = simulate(crystals[0], ins.model_copy(update={"background": [], "scale": 1.0}))[1]
    assert bare.max() == pytest.approx(1.0, rel=1e-12)
    t = (2 * x - (x[0] + x[-1])) / (x[-1] - x[0])
    chebyshev = sum(
        c * np.cos(i * np.arccos(np.clip(t, -1, 1))) for i, c in enumerate(ins.background)
    )
    np.testing.assert_allclose(quiet, ins.scale * bare + chebyshev, rtol=1e-12, atol=1e-9)
    assert np.ptp(chebyshev) > 0  # a sloping background, not a constant


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"W": -10.0, "U": 0.0, "V": 0.0}, "negative Gaussian variance"),
        ({"two_theta_max": 185.0}, "180"),
        ({"two_theta_min": 50.0, "two_theta_max": 40.0}, "increase"),
        ({"wavelengths": "FeKa"}, "unknown wavelength"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(PowderError, match=message):
        Instrument.checked(**kwargs)


@pytest.mark.skipif(
    importlib.util.find_spec("pymatgen") is None, reason="pymatgen (dev extra) not installed"
)
def test_stick_intensities_match_pymatgen():
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    c = quartz()
    p1 = c.expand_p1()
    st = Structure(Lattice.from_parameters(*c.cell), [str(e) for e in p1.elements], p1.frac)
    calc = XRDCalculator(wavelength="CuKa1")
    pat = calc.get_pattern(st, scaled=False, two_theta_range=(10, 80))
    # same structure, no Debye–Waller on either side, pymatgen's LP convention (no 1/2)
    c0 = c.copy(u_iso=np.zeros(c.n_atoms))
    peaks = peak_list(
        c0, Instrument(wavelengths="CuKa1", two_theta_max=80, monochromator_2theta=0.0)
    )
    tt, inten = peaks.two_theta, peaks.intensity * 2  # undo the 1/2 of our LP convention
    strong = np.argsort(pat.y)[::-1][:8]
    for i in strong:
        line = np.abs(tt - pat.x[i]) < 0.01  # pymatgen merges coincident reflections
        assert line.any()
        assert inten[line].sum() == pytest.approx(pat.y[i], rel=0.01), pat.x[i]


def test_mixture_weight_fractions():
    from xtalforge.powder.pattern import cell_mass

    a, b = sodium_chloride(), quartz()
    ins = Instrument(wavelengths="CuKa1", shl=0, hl=0)
    _x, pure_a = simulate(a, ins)
    _, pure_b = simulate(b, ins)
    _, mix = simulate_mixture([a, b], [0.25, 0.75], ins)
    expected = 0.25 / (cell_mass(a) * a.volume) * pure_a + 0.75 / (cell_mass(b) * b.volume) * pure_b
    np.testing.assert_allclose(mix, expected, rtol=1e-9)
    # NaCl: 4 formula units of 58.44 u in the cell
    assert cell_mass(a) == pytest.approx(4 * 58.44, rel=1e-3)


def test_cli_powder(tmp_path):
    from typer.testing import CliRunner

    from xtalforge.cli import app

    cif = tmp_path / "q.cif"
    write_cif(quartz(), cif)
    yml = tmp_path / "ins.yaml"
    yml.write_text("wavelengths: CuKa1\nshl: 0.02\nhl: 0.02\n")
    out, png = tmp_path / "q.xy", tmp_path / "q.png"
    result = CliRunner().invoke(
        app, ["powder", str(cif), "--out", str(out), "--plot", str(png), "--instrument", str(yml)]
    )
    assert result.exit_code == 0, result.stdout
    data = np.loadtxt(out)
    assert data.shape == (4351, 2)
    assert data[np.argmax(data[:, 1]), 0] == pytest.approx(26.64, abs=0.05)
    assert png.stat().st_size > 1000
    yml.write_text("W: -50\nU: 0\nV: 0\n")
    bad = CliRunner().invoke(app, ["powder", str(cif), "--out", str(out), "--instrument", str(yml)])
    assert bad.exit_code == 2 and "negative Gaussian variance" in bad.stdout


def test_training_sample_is_fixed_length_and_reproducible():
    from xtalforge.powder import training_sample

    c = random_crystal("P 1 21/c 1", 8, seed=4)
    a = training_sample(c, InstrumentSampler(n_points=1000), seed=9)
    b = training_sample(c, InstrumentSampler(n_points=1000), seed=9)
    assert a["pattern"].shape == (1000,) and a["pattern"].dtype == np.float32
    assert np.array_equal(a["pattern"], b["pattern"]) and a["instrument"] == b["instrument"]
    rebuilt = Instrument(**a["instrument"])
    assert np.array_equal(
        simulate(c, rebuilt, noise=True, seed=9)[1].astype(np.float32), a["pattern"]
    )
