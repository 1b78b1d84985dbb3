"""Refinement against closed forms (a perturbed model refined back onto exact data) and
against cctbx's R1, and solved structures built to atoms with elements, compared with the
published models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from tests.builders import has_cctbx, real_data, well_separated
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.io import merged_intensities, read_res, read_structure
from xtalforge.io.shelx_ins import read_ins
from xtalforge.phasing.atoms import multiplicities, type_by_rank
from xtalforge.phasing.complete import _add_missing, complete, match_to_truth
from xtalforge.phasing.peaks import min_image_distances
from xtalforge.phasing.refine import agreement, refine
from xtalforge.phasing.solve import calculated_sigmas, calculated_solve_data, solve_batch


def test_refinement_returns_to_the_true_model():
    """Positions perturbed by ~0.08 Å and U by 0.01 Å² refine back onto exact data; the atom
    on the twofold axis stays on it; C2's floating origin along b is the only freedom left."""
    c = well_separated("C 1 2 1", (9.0, 7.0, 8.0, 90, 101, 90), 6, 1, special=[[0.0, 0.3, 0.0]])
    c = c.copy(u_iso=np.full(c.n_atoms, 0.02))
    refl = reflections(c, 0.8)
    i_obs, sigma = calculated_sigmas(np.abs(structure_factors(c, refl)) ** 2)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, c.frac.shape)
    noise[0] = [0, 0.01, 0]
    start = c.copy(frac=c.frac + noise, u_iso=c.u_iso + 0.01)
    assert agreement(start, refl, i_obs, sigma).r1_gt > 0.05
    out = refine(start, refl, i_obs, sigma, cycles=30, weights=(0.0, 0.0))
    assert out.agreement.r1_gt < 1e-6 and out.agreement.r1_all < 1e-6
    shift = out.crystal.frac - c.frac
    shift[:, 1] -= shift[0, 1]  # the origin along the polar axis b floats
    np.testing.assert_allclose(shift @ c.orthogonalization_matrix.T, 0, atol=1e-4)
    np.testing.assert_allclose(out.crystal.u_iso, c.u_iso, atol=1e-6)
    assert out.crystal.site_symmetry_order()[0] == 2
    assert out.agreement.scale == pytest.approx(i_obs.sum() / (i_obs / out.agreement.scale).sum())


def test_refined_scattering_tells_elements_apart():
    """An O and an N typed as C refine to more scattering than the carbons, a C typed as O to
    less; ranking q·Z puts every element back."""
    c = well_separated("P 1 21/c 1", (7.0, 8.0, 9.0, 90, 97, 90), 6, 7)
    c = c.copy(z=[8, 6, 6, 7, 6, 6], u_iso=np.full(6, 0.02))
    refl = reflections(c, 0.8)
    i_obs, sigma = calculated_sigmas(np.abs(structure_factors(c, refl)) ** 2)
    wrong = c.copy(z=[6, 6, 6, 6, 6, 8])
    out = refine(wrong, refl, i_obs, sigma, cycles=20, weights=(0.0, 0.0), scatter=True)
    electrons = out.scatter * wrong.z
    electrons *= 6 / np.median(
        electrons[[1, 2, 4]]
    )  # q is relative: the scale takes a common factor
    assert electrons[0] > electrons[3] > 6.5 > electrons[[1, 2, 4]].max()
    assert electrons[5] < 7.0
    counts = {8: 4.0, 7: 4.0, 6: 16.0}  # the cell content of P2₁/c with 4 operations
    np.testing.assert_array_equal(type_by_rank(electrons, counts, np.full(6, 4)), c.z)


R1_CCTBX = textwrap.dedent("""
    import json, sys
    from cctbx import xray
    from cctbx.array_family import flex
    from iotbx import reflection_file_reader
    res, hkl, k, iso = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "iso"
    xs = xray.structure.from_shelx(file=open(res), strictly_shelxl=False)
    if iso:
        xs.convert_to_isotropic()
    xs.scattering_type_registry(table="it1992")
    ma = reflection_file_reader.any_reflection_file("hklf4=" + hkl).as_miller_arrays(
        crystal_symmetry=xs.crystal_symmetry())[0]
    ma = ma.merge_equivalents().array().map_to_asu()
    ma = ma.select(~ma.sys_absent_flags().data())
    fc = abs(ma.structure_factors_from_scatterers(xs, algorithm="direct").f_calc()).data()
    gt = ma.data() > 2 * ma.sigmas()
    fo = flex.sqrt(ma.data().select(gt))
    fc = fc.select(gt) * k ** 0.5
    print(json.dumps({"r1": flex.sum(flex.abs(fo - fc)) / flex.sum(fo), "n": int(gt.count(True))}))
""")


@pytest.mark.cctbx
@pytest.mark.skipif(not has_cctbx(), reason="optional extra 'cctbx' (cctbx-base) not installed")
@pytest.mark.parametrize("name", ["cctbx_03srv209", "shx_2240189"])
@pytest.mark.parametrize("kind", ["iso", "aniso"])
def test_r1_of_a_published_model_equals_cctbx(name, kind):
    """R1 of the published model (U_eq, or its anisotropic U_ij; riding H, disorder, special
    positions) against the measured data equals cctbx's on the same scale."""
    folder = real_data("hkl")
    res = folder / f"{name}.res"
    model = read_res(res)
    tensors = np.array([t or [np.nan] * 6 for t in model.metadata["u_aniso"]], float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refl, i_obs, sigma, _ = merged_intensities(
            folder / f"{name}.hkl", model.cell, model.spacegroup, read_ins(res).hklf
        )
    ours = agreement(model, refl, i_obs, sigma, u_aniso=tensors if kind == "aniso" else None)
    cmd = [sys.executable, "-c", R1_CCTBX, str(res), str(res.with_suffix(".hkl"))]
    out = subprocess.run([*cmd, str(ours.scale), kind], capture_output=True, text=True, check=True)
    ref = json.loads(out.stdout)
    assert ours.n_gt == ref["n"]
    assert ours.r1_gt == pytest.approx(ref["r1"], abs=1e-5)
    if kind == "aniso":  # the published R1 (SHELXL, with its extinction and weights) is lower
        assert ours.r1_gt < 0.05


def test_calculated_data_of_a_published_structure_solve_to_its_atoms():
    """COD 1000006 (C22H25ClN2O8 … P2₁/c) at 1.0 Å: phased, built, refined: every published
    non-H atom within 0.3 Å, ≥ 90 % with the right element, R1 ≤ 0.15, verdict solved."""
    crystal = read_structure(real_data("cod") / "COD_1000006.cif")
    data = calculated_solve_data(crystal, 1.0, "COD_1000006")
    sol = solve_batch([data], "cf", seed=0)[0]
    i_obs, sigma = data.refinement_data()
    built = complete(data.refl, data.amplitudes, sol.phases, i_obs, sigma, data.composition)
    close, right = match_to_truth(
        built.crystal, crystal, data.refl, data.amplitudes, data.true_phases
    )
    assert close == 1.0 and right >= 0.9
    assert built.refinement.agreement.r1_gt <= 0.15 and built.solved


def test_difference_map_finds_deleted_atoms():
    """COD 1000006 (published non-H model, calculated 1.0 Å data with its H atoms): with a
    fifth of its C, N and O atoms taken out, the completion step puts atoms back on every
    empty site (≤ 0.15 Å) and nowhere else."""
    full = read_structure(real_data("cod") / "COD_1000006.cif")
    refl = reflections(full, 1.0)
    f_obs = np.abs(structure_factors(full, refl))

    def subset(crystal, keep):
        fields = ("z", "frac", "u_iso", "occ")
        return crystal.copy(**{k: getattr(crystal, k)[keep] for k in fields}, labels=None)

    model = subset(full, full.z > 1)
    total = float(multiplicities(model).sum())
    light = np.flatnonzero(np.isin(model.z, [6, 7, 8]))
    drop = np.random.default_rng(0).choice(light, model.n_atoms // 5, replace=False)
    part = subset(model, np.setdiff1d(np.arange(model.n_atoms), drop))
    out = _add_missing(part, refl, f_obs, total, {6: 1.0})
    assert out.n_atoms == model.n_atoms
    dist = min_image_distances(model.frac[drop], out.frac[part.n_atoms :], model.cell, refl)
    assert dist.min(axis=1).max() < 0.15


def _built_from_noisy_data(name: str):
    """COD ``name`` at 1.0 Å, calculated intensities with counting noise (seed 0, as the
    benchmark), phased, built and refined: (built structure, fraction of the published non-H
    atoms within 0.3 Å, fraction also of the right element).

    Phased with the torch definition of the flipping cycle (``compiled=False``), on which these
    cases were found: flipping is chaotic, so the compiled cycle's float rounding (sums in
    float64) gives other maps of the same quality, and the model-building step a test names
    (a re-typing, a prune) may not be needed on them. These tests are of model building; the
    benchmark measures the default route over many structures and seeds."""
    crystal = read_structure(real_data("cod") / f"{name}.cif")
    data = calculated_solve_data(crystal, 1.0, name)
    i_calc, sigma = calculated_sigmas(data.amplitudes**2)
    i_obs = i_calc + np.random.default_rng(0).normal(0.0, sigma)
    data.amplitudes = np.sqrt(np.clip(i_obs, 0.0, None))
    sol = solve_batch([data], "cf", seed=0, compiled=False)[0]
    built = complete(data.refl, data.amplitudes, sol.phases, i_obs, sigma, data.composition)
    close, right = match_to_truth(
        built.crystal, crystal, data.refl, data.amplitudes, data.true_phases
    )
    return built, close, right


@pytest.mark.parametrize("name", ["COD_2231779", "COD_4300690"])
def test_high_u_atoms_kept_only_where_they_are_real(name):
    """Calculated 1.0 Å data with noise, phased, built and refined: every published non-H atom found
    with its element both where peaks of U 0.2–0.3 Å² are ripples beside Cu and I
    (COD 2231779: they must go) and where they are the real atoms of a disordered group
    (COD 4300690, U_eq up to 0.26 Å²: they must stay)."""
    built, close, right = _built_from_noisy_data(name)
    assert close == 1.0 and right == 1.0
    assert built.refinement.agreement.r1_gt <= 0.05 and built.solved


def test_finished_model_is_typed_again():
    """COD 2007947 (C/N-rich P2₁/c, calculated 1.0 Å data with noise): the model of the last
    isotropic round has two nitrile N as C and two ring C as N (88 % matched, the costs of
    an isotropic model with U still moving); typed again by the likelihood of the finished
    anisotropic model, every published non-H atom has its element."""
    built, close, right = _built_from_noisy_data("COD_2007947")
    assert close == 1.0 and right == 1.0
    assert any("re-typed" in note for note in built.notes)
    assert built.refinement.agreement.r1_gt <= 0.06 and built.solved


def test_phosphate_oxygens_are_typed_by_their_bond_to_p():
    """COD 2224635 (melaminium phosphate hydrate, P-1, calculated 1.0 Å data with noise): the
    phosphate is disordered (77:23), so its major O sites scatter like N and the likelihood
    types them N, pushing three real N to O to keep the count. An atom 1.5 Å from P is an O
    (P–N ≥ 1.58 Å): with that, every published non-H atom has its element."""
    built, close, right = _built_from_noisy_data("COD_2224635")
    assert close == 1.0 and right == 1.0
    assert built.refinement.agreement.r1_gt <= 0.12 and built.solved


def test_verdict_asks_lower_r1_of_data_to_1_25_angstrom():
    """A right model with riding H refines below R1 0.13 on data to 1.0 and 1.2 Å (the COD
    benchmarks), where partial models sit at 0.15–0.20: the solved bar is 0.15 there and 0.20
    for coarser data, with the limit itself (1.25 Å) inside the finer range."""
    from xtalforge.phasing.complete import r1_solved_limit

    assert r1_solved_limit(0.8) == r1_solved_limit(1.2) == r1_solved_limit(1.25) == 0.15
    assert r1_solved_limit(1.3) == r1_solved_limit(2.0) == 0.20


def test_wrong_phases_are_not_solved():
    """Random phases build a model that refinement cannot rescue: the verdict says so."""
    crystal = read_structure(real_data("cod") / "COD_1000006.cif")
    data = calculated_solve_data(crystal, 1.0, "COD_1000006")
    phases = np.random.default_rng(1).uniform(-np.pi, np.pi, len(data.refl))
    i_obs, sigma = data.refinement_data()
    built = complete(data.refl, data.amplitudes, phases, i_obs, sigma, data.composition)
    assert not built.solved and built.refinement.agreement.r1_gt > 0.3


def test_anisotropic_refinement_returns_to_the_true_tensors():
    """Exact F² of an anisotropic model (its structure factors equal cctbx's, see above);
    refinement from isotropic atoms recovers every U_ij, and the atom on the twofold axis keeps
    U12 = U23 = 0 (its site symmetry)."""
    from xtalforge.phasing.refine import _calc, _Geometry, isotropic_tensors

    c = well_separated("C 1 2 1", (9.0, 7.0, 8.0, 90, 101, 90), 5, 2, special=[[0.0, 0.3, 0.0]])
    c = c.copy(u_iso=np.full(c.n_atoms, 0.02))
    rng = np.random.default_rng(3)
    tensors = isotropic_tensors(c) + rng.normal(0, 0.004, (c.n_atoms, 6))
    tensors[0, [3, 5]] = 0.0  # U12 = U23 = 0 on a twofold axis along b
    refl = reflections(c, 0.7)
    fc2, _ = _calc(c, refl, _Geometry(c), False, None, tensors)
    i_obs, sigma = calculated_sigmas(fc2)
    out = refine(c, refl, i_obs, sigma, cycles=30, weights=(0.0, 0.0), anisotropic=True)
    assert out.agreement.r1_gt < 1e-5
    np.testing.assert_allclose(out.u_aniso, tensors, atol=2e-5)
    assert out.u_aniso[0, 3] == 0.0 and out.u_aniso[0, 5] == 0.0


def test_sulfonyl_and_oxo_sites_by_their_distance_to_s():
    """An atom 1.45 Å from S is an S=O oxygen for both rules (not C or N, not F); one 1.53 Å
    from S (an S–F or S–N distance) only for the C/N rule, whose limit is 1.56 Å."""
    from xtalforge.crystal.model import Crystal
    from xtalforge.phasing.complete import OXO_BOND, SULFONYL_BOND, _oxo_sites

    cell = (10.0, 11.0, 12.0, 90.0, 90.0, 90.0)
    frac = np.array([[0.5, 0.5, 0.5], [0.645, 0.5, 0.5], [0.5, 0.5 + 1.53 / 11, 0.5]])
    crystal = Crystal(cell, "P 1", [16, 8, 9], frac)
    assert _oxo_sites(crystal, SULFONYL_BOND).tolist() == [False, True, False]
    assert _oxo_sites(crystal, OXO_BOND).tolist() == [False, True, True]
