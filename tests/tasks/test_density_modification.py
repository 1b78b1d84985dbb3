"""Task density_modification: its maps against gemmi's Fourier maps, the perturbation's
properties, the learned step inside charge flipping (an exact identity and a perfect oracle
model), a short run, and the bad inputs the issue names."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
import torch

import xtalforge.phasing.density_modification as dm_module
from xtalforge.diffraction.structure_factors import calculated_data
from xtalforge.errors import ReflectionError, XtalforgeError
from xtalforge.generate import Generator
from xtalforge.phasing.charge_flipping import charge_flip
from xtalforge.phasing.density_modification import dm_grid, half_positions, modify_maps
from xtalforge.phasing.half_grid import HalfGrid
from xtalforge.phasing.score import score_phases
from xtalforge.phasing.solve import quasi_e
from xtalforge.tasks import evaluate, load_checkpoint, load_run_config, train
from xtalforge.tasks.density_modification import map_pair, perturbed_phases
from xtalforge.tasks.density_modification.maps import crystal_rng
from xtalforge.tasks.metrics import pearson
from xtalforge.workflows.report import build_report

P21C = {
    "name": "dm-test",
    "spacegroups": ["P 1 21/c 1"],
    "atoms": [4, 6],
    "cell": {"strategy": "volume_per_atom", "v_atom": [16.0, 20.0], "a_min": 5.0, "a_max": 9.0},
    "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
    "placement": {"method": "molecule"},
    "u_iso": [0.01, 0.03],
}
TASK = {
    "d_low": 1.5,
    "d_low_max": 1.5,
    "d_high": 1.0,
    "spacing": 0.35,
    "flip_fraction": 0.0,
    "max_flip_cycles": 5,
}


def _crystal(seed: int = 3):
    return Generator.from_config(P21C).sample(seed)


def _gemmi_map(crystal, d_min: float, shape) -> np.ndarray:
    """gemmi's map of the true E values (phases of F) to ``d_min`` on ``shape``."""
    refl, f = calculated_data(crystal, d_min)
    e = quasi_e(np.abs(f), refl) * np.exp(1j * np.angle(f))
    cell = gemmi.UnitCell(*crystal.cell)
    sg = gemmi.SpaceGroup(crystal.spacegroup.xhm())
    asu = gemmi.ComplexAsuData(cell, sg, refl.hkl.astype(np.int32), e.astype(np.complex64))
    grid = asu.transform_f_phi_to_map(exact_size=list(shape))
    return np.array(grid, copy=False)


def test_target_is_gemmis_true_map_and_perfect_phases_give_the_low_resolution_map():
    crystal = _crystal()
    task = {**TASK, "d_low": 1.5}
    pair = map_pair(crystal, task, np.random.default_rng(0))
    shape = pair.target.shape
    ref_high = _gemmi_map(crystal, 1.0, shape)
    cc = np.corrcoef(pair.target.ravel(), ref_high.ravel())[0, 1]
    assert cc > 0.9999
    # both maps on the input's σ scale: the target's r.m.s. over the input's is the ratio of
    # the spheres' Σ|E|² (Parseval), > 1
    assert pair.input.std() == pytest.approx(1.0, rel=1e-4)
    assert pair.target.std() > 1.5
    # grid: spacing at most 0.35 Å, multiples of 4
    assert all(n % 4 == 0 and edge / n <= 0.35 for n, edge in zip(shape, crystal.cell[:3]))


def test_perturbation_keeps_friedel_pairs_and_spans_random_to_right():
    rng = np.random.default_rng(1)
    hkl = np.array([[1, 2, 3], [-1, -2, -3], [2, 0, 0], [-2, 0, 0], [0, 1, -1], [0, -1, 1]])
    phases = np.array([0.3, -0.3, 1.0, -1.0, 2.0, -2.0])
    e = np.ones(6)
    for _ in range(20):
        p = perturbed_phases(phases, e, hkl, rng)
        np.testing.assert_allclose(np.exp(1j * p[0::2]), np.exp(-1j * p[1::2]), atol=1e-12)
    # over many structures the quality covers nearly solved and nearly random maps
    crystal = _crystal()
    ccs = []
    for seed in range(24):
        pair = map_pair(crystal, TASK, np.random.default_rng(seed))
        ccs.append(np.corrcoef(pair.input.ravel(), pair.target.ravel())[0, 1])
    shape = pair.target.shape
    best = np.corrcoef(_gemmi_map(crystal, 1.5, shape).ravel(), pair.target.ravel())[0, 1]
    assert max(ccs) > 0.8 * best and min(ccs) < 0.2 * best


def test_identity_step_returns_the_same_coefficients():
    """A model that returns its input must give back the measured reflections' coefficients
    exactly (FFT round trip on the model grid) and nothing in the extension shell."""

    class Identity:
        spacing, d_low, d_low_max, d_high = 0.35, 1.5, 2.0, 1.0

        def modify(self, maps):
            return maps

    crystal = _crystal()
    refl, f = calculated_data(crystal, 1.5)
    hkl, vals = refl.expand_to_p1(f)
    keep = hkl.any(axis=1)
    hkl, vals = hkl[keep], vals[keep]
    outer, _ = calculated_data(crystal, 1.0)
    ext = outer.expand_to_p1()[0]
    ext = ext[~(np.abs(ext)[:, None] == np.abs(hkl)[None]).all(-1).any(1)][:50]
    shape = dm_grid(refl.cell, np.concatenate([hkl, ext]), 0.35)
    grid = HalfGrid(shape)
    pos = half_positions(grid, hkl)
    read = half_positions(grid, np.concatenate([hkl, ext]))
    values = torch.as_tensor(np.conj(vals))[None]
    out = modify_maps(Identity(), values, pos, shape, read).numpy()[0]
    np.testing.assert_allclose(out[: len(hkl)], np.conj(vals), atol=1e-6 * np.abs(vals).max())
    assert np.abs(out[len(hkl) :]).max() < 1e-6 * np.abs(vals).max()


class _TrueMap:
    """An oracle map model: whatever the input, it returns the true map (σ-scaled like the
    input), so flipping with it must converge onto the truth (up to origin and hand)."""

    spacing, d_low, d_low_max, d_high = 0.35, 1.5, 2.0, 1.0

    def __init__(self, crystal, shape):
        self.true = torch.as_tensor(_gemmi_map(crystal, 1.0, shape), dtype=torch.float64)

    def modify(self, maps):
        t = self.true / self.true.std() * 2.0
        return t.expand_as(maps).to(maps.dtype)


def test_flipping_with_a_perfect_map_model_solves_at_1_5_angstrom():
    crystal = _crystal(5)
    refl, f = calculated_data(crystal, 1.5)
    outer, _ = calculated_data(crystal, 1.0)
    shape = dm_grid(refl.cell, outer.expand_to_p1()[0], 0.35)
    model = _TrueMap(crystal, shape)
    res = charge_flip(refl, quasi_e(np.abs(f), refl), starts=2, seed=0, dm_model=model)
    score = score_phases(refl, np.abs(f), np.angle(f), res.phases)
    assert score.cc > 0.9
    assert res.extrapolated is not None  # the shell to the model's 1.0 Å was filled


def test_bad_inputs_are_named(monkeypatch):
    crystal = _crystal()
    refl, f = calculated_data(crystal, 1.5)
    with pytest.raises(ReflectionError, match="density-modification model"):
        charge_flip(refl, np.abs(f), dm_model=object())
    fine, f_fine = calculated_data(crystal, 1.0)

    class Model:
        spacing, d_low, d_low_max, d_high = 0.35, 1.5, 2.0, 1.0

        def modify(self, maps):
            return maps

    with pytest.warns(UserWarning, match="finer than the density-modification model's d_low"):
        charge_flip(fine, np.abs(f_fine), starts=1, max_iter=20, dm_model=Model())
    with pytest.raises(ReflectionError, match="dm_every"):
        charge_flip(refl, np.abs(f), dm_model=Model(), dm_every=0)
    with pytest.raises(ReflectionError, match="finer than the density-modification model's maps"):
        charge_flip(refl, np.abs(f), dm_model=Model(), d_ext=0.8)
    monkeypatch.setattr(dm_module, "MAX_MAP_POINTS", 1000)
    with pytest.raises(ReflectionError, match=r"structure 1: the cell needs a [\d,]+-point map"):
        charge_flip(refl, np.abs(f), starts=1, max_iter=20, dm_model=Model())


def test_a_short_run_trains_loads_and_evaluates(tmp_path):
    cfg = load_run_config(
        {
            "name": "dm",
            "seed": 0,
            "output_dir": str(tmp_path),
            "data": {
                "generator": P21C,
                "batch_size": 2,
                "train_length": 4,
                "val_length": 2,
                "test_length": 2,
            },
            "task": {"name": "density_modification", "d_low": 1.5, "d_low_max": 1.8},
            "model": {
                "name": "density_unet",
                "params": {"kernel": 3, "channels": [4, 8, 8], "blocks": 1},
            },
            "trainer": {"max_epochs": 1},
        }
    )
    run = train(cfg, progress=False)
    module = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert (module.spacing, module.d_low, module.d_low_max, module.d_high) == (0.35, 1.5, 1.8, 1.0)
    summary = evaluate(run / "checkpoints" / "last.ckpt", None, None)
    assert summary["metric"]["name"] == "map_cc" and summary["n_structures"] == 2
    assert 0 <= summary["shell_phases_within_45"] <= 1
    # the model's step inside flipping runs end to end
    refl, f = calculated_data(_crystal(), 1.6)
    res = charge_flip(refl, quasi_e(np.abs(f), refl), starts=1, max_iter=20, dm_model=module)
    assert res.extrapolated is not None and np.isfinite(res.phases).all()
    page = build_report(run, tmp_path / "report.html", limit=2).read_text()
    assert "Maps before and after the model step" in page and "data:image/png;base64" in page
    x = torch.from_numpy(map_pair(_crystal(), module.task, crystal_rng(_crystal())).input)
    assert float(pearson(module.modify(x[None]), module.modify(x[None]))[0]) == pytest.approx(1)


def test_config_rejects_impossible_settings():
    base = {"name": "dm", "data": {"generator": P21C}, "model": {"name": "density_unet"}}
    with pytest.raises(XtalforgeError, match="coarser than d_high"):
        load_run_config({**base, "task": {"name": "density_modification", "d_low": 0.9}})
    with pytest.raises(XtalforgeError, match="at most d_high/2"):
        load_run_config({**base, "task": {"name": "density_modification", "spacing": 0.6}})
