"""Tasks patterson_sr, patterson_density and phase: the way back to amplitudes, circular networks,
hand- and origin-invariant losses, runs, evaluation, the solve benchmark's model rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from xtalforge.cli import app
from xtalforge.crystal.model import Crystal
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.diffraction.maps import check_grid, density_map, patterson_map
from xtalforge.errors import XtalforgeError
from xtalforge.generate import Generator
from xtalforge.models.density_unet import DensityUNet
from xtalforge.models.patterson_unet import PattersonUNet, periodic_upsample
from xtalforge.tasks import evaluate, load_checkpoint, load_run_config, predict_hkl, train
from xtalforge.tasks.patterson_density import (
    PattersonDensity,
    centre_fragment,
    map_pair,
    other_hand,
)
from xtalforge.tasks.patterson_density.maps import map_phases
from xtalforge.tasks.patterson_sr import PattersonSR, amplitudes_from_patterson
from xtalforge.tasks.phase import PhaseSign, sign_item
from xtalforge.tasks.phase.signs import invariant_accuracy, invariant_bce

P21 = {
    "name": "t",
    "spacegroups": ["P 1 21 1"],
    "atoms": [4, 6],
    "cell": {"strategy": "volume_per_atom", "v_atom": [14.0, 22.0], "a_min": 4.0, "a_max": 7.0},
    "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
    "placement": {"method": "uniform", "min_distance": 1.2},
    "u_iso": [0.01, 0.04],
}


FRAG = {
    "name": "f",
    "spacegroups": ["P 1"],
    "atoms": [4, 6],
    "cell": {"strategy": "uniform_edges", "a_min": 6.0, "a_max": 7.0, "beta_max": 110.0},
    "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
    "placement": {"method": "molecule"},
    "u_iso": [0.01, 0.04],
}


P21C = {
    "name": "c",
    "spacegroups": ["P 1 21/c 1"],
    "atoms": [2, 4],
    "cell": {"strategy": "volume_per_atom", "v_atom": [14.0, 22.0], "a_min": 4.0, "a_max": 7.0},
    "composition": {"elements": {"C": 0.8, "N": 0.1, "O": 0.1}},
    "placement": {"method": "uniform", "min_distance": 1.2},
    "u_iso": [0.01, 0.04],
}


OPTIM = {"name": "adam", "lr": 3e-3, "scheduler": "none"}


def test_amplitudes_from_the_true_patterson_are_exact():
    """|F|² are the Fourier coefficients of the Patterson function: the way back recovers every
    amplitude of the shell from the [0, 1]-scaled map, scaled on the known ones alone."""
    c = Generator.from_config(P21).sample(5)
    refl = reflections(c, 1.0)
    amp = np.abs(structure_factors(c, refl))
    pmap = patterson_map(refl, amp, shape=(24, 24, 24), scale01=True)
    known = refl.d >= 1.5
    rec = amplitudes_from_patterson(pmap, refl, known, amp[known])
    assert np.allclose(rec, amp, rtol=1e-6, atol=1e-6 * amp.max())
    with pytest.raises(XtalforgeError, match="cannot hold"):
        check_grid(refl, (8, 8, 8))


def test_periodic_upsample_wraps_around_the_cell():
    x = torch.arange(4.0).reshape(1, 1, 4, 1, 1).expand(1, 1, 4, 2, 2).contiguous()
    up = periodic_upsample(x, (8, 2, 2))[0, 0, :, 0, 0]
    # points at j/8: even ones are the samples, odd ones the mean of their neighbours, the last
    # one between the last sample (3) and the first (0)
    assert up.tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5]


@pytest.mark.parametrize(
    "net",
    [
        PattersonUNet((16, 16, 16), (4, 8, 8)),
        DensityUNet((4, 8, 8), kernel=5, blocks=1, in_channels=1),
    ],
)
def test_circular_networks_commute_with_cell_shifts(net):
    """Periodic padding: moving the map by whole pooling steps moves the output alike."""
    torch.manual_seed(0)
    net.eval()
    n = 8 if isinstance(net, PattersonUNet) else 16
    x = torch.rand(1, 1, n, n, n)
    shift = (2, 0, 1) if isinstance(net, PattersonUNet) else (4, 0, 8)
    scale = 2 if isinstance(net, PattersonUNet) else 1
    with torch.no_grad():
        a = torch.roll(net(x), tuple(s * scale for s in shift), dims=(2, 3, 4))
        b = net(torch.roll(x, shift, dims=(2, 3, 4)))
    assert torch.allclose(a, b, atol=1e-5)


def test_centred_fragment_keeps_its_bonds_and_the_other_hand_is_the_conjugate():
    c = Generator.from_config(FRAG).sample(3)
    cc = centre_fragment(c)
    assert np.allclose(cc.frac.mean(axis=0), 0.5)
    # same crystal: every atom moved by a lattice vector plus one common shift
    diff = (cc.frac - c.frac) - (cc.frac - c.frac)[0]
    assert np.allclose(diff, np.rint(diff), atol=1e-9)
    refl = reflections(cc, 1.5)
    f = structure_factors(cc, refl)
    rho = density_map(refl, f, shape=(16, 16, 16))
    inv = density_map(refl, np.conj(f), shape=(16, 16, 16))  # F* ↔ ρ(−x)
    assert np.allclose(other_hand(torch.from_numpy(rho)).numpy(), inv, atol=1e-9)
    assert np.allclose(map_phases(rho, refl.hkl), np.angle(f), atol=1e-6)
    p, d, _, _ = map_pair(c, 1.5, (16, 16, 16))
    assert p.min() == -1 and p.max() == 1 and d.min() == -1 and d.max() == 1


def test_origin_invariant_loss_and_accuracy_against_a_shifted_structure():
    """Moving a P2_1/c structure by (½, 0, ½) — a permissible origin shift — changes the signs
    of its structure factors, but neither the loss nor the accuracy of the same prediction."""
    c = Generator.from_config(P21C).sample(11)
    moved = Crystal(c.cell, c.spacegroup, c.z, c.frac + np.array([0.5, 0.0, 0.5]), c.u_iso, c.occ)
    grid = HKLGrid.from_bounds(7.0, 1.5, ["P 1 21/c 1"])
    a, b = sign_item(c, grid, 1.5), sign_item(moved, grid, 1.5)
    assert not torch.equal(a["sign"], b["sign"])  # the signs did change
    f = structure_factors(c, reflections(c, 1.5))
    assert np.abs(f.imag).max() < 1e-6 * np.abs(f).max()  # centrosymmetric: real F
    logits = 3 * a["sign"][None]  # a confident, right answer for c
    ba = {k: (v[None] if torch.is_tensor(v) else v) for k, v in a.items()}
    bb = {k: (v[None] if torch.is_tensor(v) else v) for k, v in b.items()}
    assert torch.allclose(invariant_bce(logits, ba), invariant_bce(logits, bb))
    assert float(invariant_accuracy(torch.sign(logits), bb)[0]) == 1.0
    assert float(invariant_accuracy(-torch.sign(logits), bb)[0]) < 0.9


def _patterson_batch(n: int = 4) -> dict:
    from xtalforge.tasks.patterson_sr.maps import item_from_crystal

    gen = Generator.from_config(P21)
    task = {"d_low": 1.5, "d_high": 1.0, "low_shape": (8, 8, 8), "high_shape": (16, 16, 16)}
    items = [item_from_crystal(gen.sample(i), i, task) for i in range(n)]
    return {
        k: torch.stack([it[k] for it in items]) if k != "id" else torch.arange(n) for k in items[0]
    }


def _fit(module, batch, steps: int, loss_fn) -> tuple[float, float]:
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    module.train()
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(module, batch)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    return first, float(loss.detach())


def test_patterson_sr_overfits_a_batch():
    torch.manual_seed(0)
    batch = _patterson_batch()
    module = PattersonSR(
        {"name": "patterson_unet", "params": {"channels": (8, 16, 16)}},
        {
            "name": "patterson_sr",
            "d_low": 1.5,
            "d_high": 1.0,
            "low_shape": (8, 8, 8),
            "high_shape": (16, 16, 16),
        },
        OPTIM,
    )
    base = float(torch.mean((module.baseline(batch["input"]) - batch["target"]) ** 2))
    _fit(module, batch, 150, lambda m, b: torch.mean((m(b["input"]) - b["target"]) ** 2))
    module.eval()
    with torch.no_grad():
        mse = float(torch.mean((module(batch["input"]) - batch["target"]) ** 2))
    assert mse < 0.2 * base, (mse, base)


def test_density_model_overfits_a_batch():
    from xtalforge.tasks.patterson_density.maps import item_from_crystal
    from xtalforge.tasks.patterson_density.module import hand_loss

    torch.manual_seed(0)
    gen = Generator.from_config(FRAG)
    task = {
        "name": "patterson_density",
        "d_high": 1.5,
        "high_shape": (16, 16, 16),
        "pearson_weight": 0.1,
    }
    items = [item_from_crystal(gen.sample(i), i, task) for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("input", "target")}
    module = PattersonDensity(
        {"name": "density_unet", "params": {"channels": (8, 8, 8), "kernel": 5, "blocks": 1}},
        task,
        OPTIM,
    )
    first, last = _fit(
        module, batch, 150, lambda m, b: hand_loss(m(b["input"]), b["target"], 0.1)[0].mean()
    )
    module.eval()
    with torch.no_grad():
        cc = float(module._cc(module(batch["input"]), batch["target"]).min())
    assert last < 0.3 * first and cc > 0.9, (first, last, cc)


def test_phase_model_overfits_a_batch_with_recycling():
    torch.manual_seed(0)
    gen = Generator.from_config(P21C)
    grid = HKLGrid.from_bounds(7.0, 1.5, ["P 1 21/c 1"])
    items = [sign_item(gen.sample(i), grid, 1.5, i) for i in range(4)]
    batch = {
        k: torch.stack([it[k] for it in items]) if k != "id" else torch.arange(4) for k in items[0]
    }
    module = PhaseSign(
        {"name": "phai", "params": {"channels": 16, "res_blocks": 1, "dim": 32, "mixer_blocks": 1}},
        {"name": "phase", "d_high": 1.5, "recycles": 2},
        OPTIM,
        grid={"lower": list(grid.lower), "shape": list(grid.shape)},
    )
    _fit(module, batch, 200, lambda m, b: invariant_bce(m.cycles(b, 2), b).mean())
    module.eval()
    with torch.no_grad():
        acc = invariant_accuracy(torch.sign(module.cycles(batch, 2)), batch)
    assert float(acc.min()) > 0.97, acc


def _cfg(base, task: dict, model: dict, gen: dict, seed: int = 1):
    return load_run_config(
        {
            "name": task["name"],
            "seed": seed,
            "output_dir": str(base),
            "data": {
                "generator": gen,
                "batch_size": 4,
                "train_length": 8,
                "val_length": 4,
                "test_length": 3,
            },
            "task": task,
            "model": model,
            "trainer": {"max_epochs": 1},
        }
    )


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("phase")
    cfg = _cfg(
        base,
        {
            "name": "phase",
            "d_high": 1.5,
            "recycles": 2,
            "inference_cycles": 3,
            "inference_starts": 2,
        },
        {"name": "phai", "params": {"channels": 8, "res_blocks": 1, "dim": 16, "mixer_blocks": 1}},
        P21C,
    )
    return cfg, train(cfg, progress=False)


def test_phase_run_is_deterministic_and_round_trips(phase_run, tmp_path):
    cfg, run_dir = phase_run
    again = train(cfg, progress=False)
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(again / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    module = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert isinstance(module, PhaseSign)
    result = evaluate(run_dir / "checkpoints" / "last.ckpt", None, out=tmp_path)
    assert result["task"] == "phase" and result["n_structures"] == 3
    assert result["metric"]["name"] == "solved_fraction"
    assert 0 <= result["baseline"] <= 1 and result["baseline_name"] == "random signs"
    assert json.loads((tmp_path / "metrics.json").read_text())["task"] == "phase"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(run_dir / "checkpoints" / "best.ckpt"),
            "--json",
            str(tmp_path / "m.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "m.json").read_text())
    assert {"task", "metric", "baseline"} <= set(saved)


def test_map_task_runs_save_load_and_evaluate(tmp_path):
    cfg = _cfg(
        tmp_path,
        {"name": "patterson_density", "d_high": 1.5, "high_shape": [16, 16, 16]},
        {"name": "density_unet", "params": {"channels": [4, 4, 4], "kernel": 3}},
        FRAG,
    )
    run = train(cfg, progress=False)
    module = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert isinstance(module, PattersonDensity)
    r = evaluate(run / "checkpoints" / "last.ckpt", None)
    assert r["metric"]["name"] == "map_cc" and len(r["phase_error_shells"]) == 4
    with pytest.raises(XtalforgeError, match="a patterson_density checkpoint; predict extends"):
        predict_hkl(run / "checkpoints" / "last.ckpt", tmp_path / "any.hkl", tmp_path / "o.hkl")
    cfg = _cfg(
        tmp_path,
        {
            "name": "patterson_sr",
            "d_low": 1.5,
            "d_high": 1.0,
            "low_shape": [8, 8, 8],
            "high_shape": [16, 16, 16],
        },
        {"name": "patterson_unet", "params": {"channels": [4, 4, 4]}},
        P21,
    )
    run = train(cfg, progress=False)
    r = evaluate(run / "checkpoints" / "last.ckpt", None)
    assert r["task"] == "patterson_sr" and r["metric"]["name"] == "map_mse"
    assert r["R_wilson"] > 0.2 and r["R_target"] > 0
    # a folder of CIFs: the one that fits is scored, the corrupt and the too-large are skipped
    from xtalforge.io.cif_structure import write_cif

    cifs = tmp_path / "cifs"
    cifs.mkdir()
    write_cif(Generator.from_config(P21).sample(9), cifs / "fits.cif")
    big = Generator.from_config(
        {**P21, "cell": {**P21["cell"], "a_min": 12.0, "a_max": 14.0}, "atoms": [20, 30]}
    ).sample(1)
    write_cif(big, cifs / "big.cif")
    (cifs / "broken.cif").write_text("data_x\n_cell_length_a 5\n")
    r = evaluate(run / "checkpoints" / "last.ckpt", cifs)
    assert r["n_structures"] == 1


def test_solve_benchmark_extra_rows(phase_run):
    from xtalforge.phasing.solve import SolveData
    from xtalforge.workflows.solve_benchmark import solve_benchmark

    gen = Generator.from_config(P21C)
    structures = []
    for i in range(2):
        c = gen.sample(50 + i)
        refl = reflections(c, 1.0)
        f = structure_factors(c, refl)
        structures.append(
            SolveData(refl, np.abs(f), f"s{i}", np.angle(f), c.frac, {"C": float(len(c.z))}, c.z)
        )
    phase = load_checkpoint(phase_run[1] / "checkpoints" / "last.ckpt")
    rows = solve_benchmark(structures, [1.5], ("cf",), module=phase)
    assert [(r.method, r.data, r.d_min) for r in rows] == [
        ("phai", "truth", 1.5),
        ("cf", "truth", 1.5),
    ]
    sr = PattersonSR(
        {"name": "patterson_unet", "params": {"channels": (4, 4, 4)}},
        {
            "name": "patterson_sr",
            "d_low": 1.5,
            "d_high": 1.0,
            "low_shape": (12, 12, 12),
            "high_shape": (16, 16, 16),
        },
        OPTIM,
    ).eval()
    rows = solve_benchmark(
        structures, [], ("cf",), extend=(1.5, 1.0), module=sr, prior_weights=(0.8,)
    )
    assert {"patterson", "patterson prior 0.8"} <= {r.data for r in rows}
    prior = next(r for r in rows if r.data == "patterson prior 0.8")
    assert prior.n == 2 and prior.d_min == 1.0 and prior.scored_to == 1.5
    # a shallower extension cuts the model's predictions (d from gemmi); a deeper one, or one
    # from another d_low, is refused
    import gemmi

    from xtalforge.workflows.solve_benchmark import model_extended

    full, part = model_extended(structures[0], sr), model_extended(structures[0], sr, 1.2)
    cell = gemmi.UnitCell(*structures[0].refl.cell)
    d_full = np.array([cell.calculate_d(list(map(int, h))) for h in full.refl.hkl])
    d_part = np.array([cell.calculate_d(list(map(int, h))) for h in part.refl.hkl])
    assert d_full.min() < 1.1 and d_part.min() >= 1.2 - 1e-9
    assert len(part.refl) == (d_full >= 1.2 - 1e-9).sum()
    lookup = {tuple(h): a for h, a in zip(full.refl.hkl.tolist(), full.amplitudes, strict=True)}
    assert all(
        lookup[tuple(h)] == a for h, a in zip(part.refl.hkl.tolist(), part.amplitudes, strict=True)
    )
    for bad in [(1.5, 0.9), (1.4, 1.0)]:
        with pytest.raises(XtalforgeError, match="cannot use the model's task"):
            solve_benchmark(structures, [], ("cf",), extend=bad, module=sr)
    frag = Generator.from_config(FRAG).sample(4)
    refl = reflections(frag, 1.5)
    f = structure_factors(frag, refl)
    p1 = [SolveData(refl, np.abs(f), "frag", np.angle(f), frag.frac, {}, frag.z)]
    dens = PattersonDensity(
        {"name": "density_unet", "params": {"channels": (4, 4, 4), "kernel": 3}},
        {"name": "patterson_density", "d_high": 1.5, "high_shape": (16, 16, 16)},
        OPTIM,
    ).eval()
    rows = solve_benchmark(p1, [], ("cf",), module=dens)
    assert [(r.method, r.data, r.n) for r in rows] == [("density", "truth", 1)]


def test_task_config_errors():
    with pytest.raises(XtalforgeError, match="trains phai"):
        load_run_config(
            {"data": {"generator": P21C}, "task": {"name": "phase"}, "model": {"name": "unet3d"}}
        )
    with pytest.raises(XtalforgeError, match=r"data\.generator"):
        load_run_config(
            {"data": {"path": "x"}, "task": {"name": "phase"}, "model": {"name": "phai"}}
        )
    with pytest.raises(XtalforgeError, match="P1 boxes"):
        map_pair(Generator.from_config(P21).sample(0), 1.5, (16, 16, 16))
