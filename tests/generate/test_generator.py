"""Structure generator: brute-force geometric checks, reproducibility, sampler statistics."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest
from scipy import stats

from xtalforge.generate import ConfigError, Generator, load_config
from xtalforge.generate.cells import sample_cell
from xtalforge.generate.config import CellConfig
from xtalforge.io import read_cif, write_cif

# ≥ 20 groups over all seven crystal systems (reference settings)
GROUPS = [
    "P 1",
    "P -1",
    "P 1 21 1",
    "C 1 2 1",
    "P 1 21/c 1",
    "C 1 2/c 1",
    "P 21 21 21",
    "P b c a",
    "C m c m",
    "F d d d :2",
    "P 41",
    "I 41/a :2",
    "P 4/m m m",
    "P 31",
    "R -3 :H",
    "P -3 m 1",
    "P 61",
    "P 63/m",
    "P 6/m m m",
    "P 21 3",
    "F m -3 m",
    "I a -3 d",
]


def brute_force_min_distance(crystal) -> float:
    """Independent check: all atoms of the P1 cell in a 3×3×3 supercell, all pair distances."""
    p1 = crystal.expand_p1()
    orth = p1.orthogonalization_matrix
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    cloud = (p1.frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ orth.T
    centre = p1.frac @ orth.T
    d = np.linalg.norm(centre[:, None, :] - cloud[None, :, :], axis=-1)
    d[d < 1e-6] = np.inf  # an atom and itself
    return float(d.min())


@pytest.mark.parametrize("sg", GROUPS)
def test_generated_structures_pass_brute_force_checks(sg):
    cfg = {
        "spacegroups": [sg],
        "atoms": [3, 8],
        "cell": {"a_min": 3.0, "a_max": 40.0},
        "composition": {"elements": {"C": 2, "O": 1}, "special_elements": {"Cl": 1}},
        "placement": {"method": "uniform", "min_distance": 1.3, "special_probability": 0.5},
    }
    gen = Generator.from_config(cfg)
    group = gemmi.SpaceGroup(sg)
    for seed in range(3):
        c = gen.sample(seed)
        meta = c.metadata
        assert c.spacegroup.hall == group.hall
        assert c.unit_cell.is_compatible_with_spacegroup(group, 1e-6)
        assert brute_force_min_distance(c) >= 1.3 - 1e-6
        assert c.n_atoms == meta["requested_atoms"] - meta["skipped_atoms"]
        assert set(c.elements) <= {"C", "O", "Cl"}
        # atoms on special positions (gemmi's own search) are exactly the Cl atoms placed there
        ss = gemmi.SmallStructure()
        ss.cell = c.unit_cell
        ss.symops = [op.triplet() for op in group.operations()]
        ss.determine_and_set_spacegroup("S")
        ss.setup_cell_images()
        special = [ss.cell.is_special_position(gemmi.Fractional(*x), 0.05) > 0 for x in c.frac]
        assert sum(special) == meta["special_positions"]
        assert all(el == "Cl" for el, s in zip(c.elements, special) if s)
        assert ((c.u_iso >= 0.01 - 0.005) & (c.u_iso <= 0.1 + 0.005)).all()


def test_same_config_and_seed_give_identical_structures():
    gen = Generator.from_config("phai-p21c")
    a, b = gen.sample(42), Generator.from_config("phai-p21c").sample(42)
    assert write_cif(a) == write_cif(b)
    assert write_cif(a) != write_cif(gen.sample(43))
    assert a.metadata["seed"] == 42 and a.metadata["generator"] == "phai-p21c"


@pytest.mark.parametrize(
    "cfg",
    [
        "thesis-monoclinic",
        {
            "spacegroups": {"P 1 21 1": 1},
            "atoms": [20, 40],
            "cell": {"v_atom": [5, 7]},  # crowded
            "placement": {"method": "uniform", "min_distance": 1.5},
        },
        {
            "spacegroups": {"F d -3 m": 1, "P 4/m m m": 1, "R -3 c:H": 1, "P -1": 1},
            "atoms": [3, 12],
            "cell": {"v_atom": [10, 18]},
            "composition": {"elements": {"C": 1, "O": 1}, "h_fraction": [0.2, 0.4]},
            "placement": {"method": "uniform", "min_distance": 1.0, "special_probability": 0.5},
        },
    ],
)
def test_compiled_uniform_placement_equals_atom_by_atom(cfg):
    """The compiled loop places exactly the atoms that the numpy definition places trying
    them one by one, skipped atoms and hydrogens included."""
    batched, single = Generator.from_config(cfg), Generator.from_config(cfg)
    single.compiled = False
    skipped = 0
    for seed in range(40):
        a, b = batched.sample(seed), single.sample(seed)
        assert a.cell == b.cell and a.metadata == b.metadata
        np.testing.assert_array_equal(a.z, b.z)
        np.testing.assert_array_equal(a.frac, b.frac)
        np.testing.assert_array_equal(a.u_iso, b.u_iso)
        skipped += a.metadata["skipped_atoms"] + a.metadata["skipped_hydrogens"]
    if isinstance(cfg, dict) and cfg["atoms"] == [20, 40]:
        assert skipped > 0  # the crowded cells do exercise skipping


@pytest.mark.parametrize(
    "cfg",
    [
        "phai-p21c",
        "fragments-p1",
        {
            "spacegroups": {"P 1 21/c 1": 1, "P 4/m m m": 1, "R -3 c:H": 1},
            "atoms": [4, 14],
            "cell": {"v_atom": [12, 20]},
            "composition": {"elements": {"C": 2, "N": 1, "S": 1}, "h_fraction": [0.2, 0.4]},
            "placement": {"method": "molecule", "special_probability": 0.3},
        },
    ],
)
def test_compiled_molecule_placement_equals_atom_by_atom(cfg):
    """Bonded placement in the compiled loop takes the same random numbers and the same
    decisions as the numpy definition atom by atom: the same atoms, elements and skips; the
    coordinates agree to rounding (the candidate positions are summed in another order)."""
    compiled, single = Generator.from_config(cfg), Generator.from_config(cfg)
    single.compiled = False
    for seed in range(30):
        a, b = compiled.sample(seed), single.sample(seed)
        assert a.cell == b.cell and a.metadata == b.metadata
        np.testing.assert_array_equal(a.z, b.z)
        np.testing.assert_allclose(a.frac, b.frac, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(a.u_iso, b.u_iso)


def test_lognormal_volume_recovered_and_beta_bounded():
    cfg = CellConfig(
        strategy="volume_first",
        volume={"mu": 6.0, "sigma": 0.3},
        a_min=3.0,
        a_max=30.0,
        beta_max=120.0,
    )
    rng = np.random.default_rng(0)
    sg = gemmi.SpaceGroup("P 1 21/c 1")
    cells = [sample_cell(cfg, sg, 1, rng) for _ in range(2000)]
    volumes = np.array([gemmi.UnitCell(*c).volume for c in cells])
    assert stats.kstest(np.log(volumes), "norm", args=(6.0, 0.3)).pvalue > 0.01
    beta = np.array([c[4] for c in cells])
    assert (beta >= 90.0).all() and (beta <= 120.0 + 1e-9).all() and beta.std() > 5
    edges = np.array([c[:3] for c in cells])
    ratios = edges.max(axis=1) / edges.min(axis=1)
    assert np.median(ratios) < 1.8 * 1.2  # bounded-ratio procedure (r = 1.8)


def test_uniform_edges_and_shapes_are_not_a_template():
    cfg = CellConfig(strategy="uniform_edges", a_min=5.0, a_max=12.0)
    rng = np.random.default_rng(1)
    cells = np.array([sample_cell(cfg, gemmi.SpaceGroup("P 21 21 21"), 1, rng) for _ in range(500)])
    assert cells[:, :3].min() >= 5.0 and cells[:, :3].max() <= 12.0
    assert stats.kstest((cells[:, 0] - 5.0) / 7.0, "uniform").pvalue > 0.01
    shape = cells[:, 1] / cells[:, 0]
    assert shape.std() > 0.15  # random shapes, not the thesis's fixed a:b:c


def pair_distances(crystal, limit: float = 3.0) -> np.ndarray:
    p1 = crystal.expand_p1()
    orth = p1.orthogonalization_matrix
    d = p1.frac[:, None, :] - p1.frac[None, :, :]
    d -= np.rint(d)
    dist = np.linalg.norm(d @ orth.T, axis=-1)
    iu = np.triu_indices(len(p1.frac), 1)
    return dist[iu][dist[iu] < limit]


def test_molecules_show_bond_peak_and_trough_uniform_does_not():
    base = {"spacegroups": ["P 1 21/c 1"], "atoms": [8, 12], "composition": {"elements": {"C": 1}}}
    mol = Generator.from_config({**base, "placement": {"method": "molecule"}})
    uni = Generator.from_config({**base, "placement": {"method": "uniform", "min_distance": 1.2}})
    dm = np.concatenate([pair_distances(mol.sample(s)) for s in range(30)])
    du = np.concatenate([pair_distances(uni.sample(s)) for s in range(30)])
    r_sum = 2 * gemmi.Element("C").covalent_r
    bond = (dm > 0.9 * r_sum) & (dm < 1.1 * r_sum)
    trough = (dm > 1.1 * r_sum + 1e-6) & (dm < 1.4 * r_sum - 1e-6)
    assert bond.mean() > 0.15 and trough.sum() == 0
    ub = ((du > 0.9 * r_sum) & (du < 1.1 * r_sum)).mean()
    ut = ((du > 1.1 * r_sum) & (du < 1.4 * r_sum)).mean()
    assert ut > ub  # no bond peak, no trough for uniform placement


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"cell": {"a_min": 12.0, "a_max": 5.0}}, "a_min"),
        ({"composition": {"elements": {"Xq": 1.0}}}, "unknown element"),
        ({"spacegroups": ["P 7"]}, "unknown space-group"),
        ({"cell": {"v_atom": [0.2, 0.3]}}, "impossible density"),
        ({"atoms": [5, 2]}, "atoms"),
        ({"atoms": None}, "exactly one"),
        ({"cell": {"strategy": "volume_first"}}, "volume"),
        ({"u_iso": [0.1, 0.01]}, "u_iso"),
        ({"typo_field": 1}, "typo_field"),
    ],
)
def test_invalid_configs_rejected_with_the_field(cfg, message):
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_presets_load_and_unknown_preset_is_clear():
    for name in ("thesis-monoclinic", "powder", "phai-p21c"):
        c = Generator.from_config(name).sample(0)
        assert c.n_atoms > 0
    with pytest.raises(ConfigError, match="no generator preset"):
        load_config("no-such-preset")


def test_phai_cells_within_edges():
    gen = Generator.from_config("phai-p21c")
    cells = np.array([gen.sample(s).cell for s in range(100)])
    assert cells[:, :3].max() <= 10.0 + 1e-9
    assert math.isclose(cells[:, 3].max(), 90.0) and cells[:, 4].max() <= 125.0 + 1e-9


def test_cli_sample_writes_cifs_that_read_back(tmp_path):
    from typer.testing import CliRunner

    from xtalforge.cli import app

    result = CliRunner().invoke(
        app, ["sample", "phai-p21c", "--n", "3", "--out", str(tmp_path), "--seed", "7"]
    )
    assert result.exit_code == 0, result.stdout
    files = sorted(tmp_path.glob("*.cif"))
    assert len(files) == 3
    again = read_cif(files[0])
    direct = Generator.from_config("phai-p21c").sample(7)
    np.testing.assert_allclose(again.frac, direct.frac % 1.0, atol=1e-6)
    doc = gemmi.cif.read(str(files[0]))  # gemmi reads it as a small-molecule CIF
    assert len(gemmi.make_small_structure_from_block(doc.sole_block()).sites) == direct.n_atoms
    bad = CliRunner().invoke(app, ["sample", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "no generator preset" in bad.stdout


@pytest.mark.parametrize(
    "preset", ["thesis-monoclinic", "phai-p21c", "fragments-p1", "dm-organic", "powder"]
)
def test_generated_fields_pass_the_crystal_constructor_unchanged(preset):
    """The generator builds its Crystals without validating them again (valid by
    construction): the full constructor accepts every one and gives the same fields, dtypes
    and shapes."""
    from xtalforge.crystal.model import Crystal

    gen = Generator.from_config(preset)
    for seed in range(60):
        c = gen.sample(seed)
        checked = Crystal(c.cell, c.spacegroup, c.z, c.frac, c.u_iso, metadata=c.metadata)
        assert c.cell == checked.cell and all(type(x) is float for x in c.cell)
        assert c.spacegroup.hall == checked.spacegroup.hall
        for name in ("z", "frac", "u_iso", "occ"):
            got, want = getattr(c, name), getattr(checked, name)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
        assert c.labels is None


def test_monoclinic_cells_equal_the_lengths_and_angles_of_their_lattice_vectors():
    """The monoclinic cell's closed form gives the edges and angles of its lattice vectors
    a = (a1, 0, 0), b = (0, a2, 0), c = (a3 s3, 0, a3) as numpy computes them, to the last
    bits: numpy's norm and dot go through BLAS, whose kernels (FMA or not) differ by CPU in the
    last bit; the closed form is plain Python arithmetic and the same on every machine."""
    from xtalforge.generate.cells import _angles_from_vectors

    cfg = CellConfig(strategy="volume_first", volume=[500.0, 3000.0], a_min=4.0, a_max=20.0)
    sg = gemmi.SpaceGroup("P 1 21/c 1")
    for seed in range(300):
        cell = sample_cell(cfg, sg, 40, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)  # the same draws again, to rebuild the vectors
        from xtalforge.generate.cells import _edges, sample_volume

        a1, a2, a3 = _edges(cfg, sample_volume(cfg, 40, rng), rng)
        s_min = math.tan(math.radians(90.0 - cfg.beta_max))
        lo = max(s_min, -math.sqrt(max((cfg.a_max / a3) ** 2 - 1, 0.0)))
        s3 = rng.uniform(lo, 0.0)
        vecs = np.array([[a1, 0, 0], [0, a2, 0], [a3 * s3, 0, a3]])
        np.testing.assert_allclose(cell, _angles_from_vectors(vecs), rtol=1e-15, atol=0)


@pytest.mark.parametrize("preset", ["thesis-monoclinic", "phai-p21c", "dm-organic"])
def test_sample_many_gives_the_structures_of_sample(preset):
    """Seeds hashed together and one reused PCG64 give, structure for structure, what a fresh
    ``default_rng`` per seed gives: seeds of one and two words (0, 2³² − 1, 2³², 2⁶³ − 1) and
    random 63-bit ones; a pickled generator (as worker processes get it) too."""
    import pickle

    gen = Generator.from_config(preset)
    rng = np.random.default_rng(5)
    seeds = [0, 1, 2**32 - 1, 2**32, 2**40 + 5, 2**63 - 1, *rng.integers(0, 2**63, 20).tolist()]
    for a, b in zip(
        [gen.sample(s) for s in seeds],
        pickle.loads(pickle.dumps(gen)).sample_many(seeds),
        strict=True,
    ):
        assert a.cell == b.cell and a.metadata == b.metadata
        for name in ("z", "frac", "u_iso", "occ"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with pytest.raises(ValueError, match="non-negative"):
        gen.sample_many([-1])


def test_pcg64_state_equals_numpy_seeding():
    """The PCG64 state set from SeedSequence words is the one numpy's own seeding sets."""
    from xtalforge.generate.seeding import pcg64_state

    for entropy in ([0, 0x5EED], [2**40 + 3, 0x5EED], [7, 11, 13]):
        ss = np.random.SeedSequence(entropy)
        want = np.random.PCG64(ss).state
        assert pcg64_state(ss.generate_state(8).tolist()) == want
