"""Task resolution end to end: models overfit, metrics against closed forms, runs, checkpoints,
evaluate on datasets and CIF folders, predict, training domains, fine-tuning, resume."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from typer.testing import CliRunner

from tests.builders import GEN, SMALL_PARAMS, SPEC, batch_of, module_for
from xtalforge.cli import app
from xtalforge.data import build_dataset, load_spec
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.errors import XtalforgeError
from xtalforge.generate import Generator
from xtalforge.io import read_hkl, write_hkl, write_ins
from xtalforge.tasks import evaluate, load_checkpoint, load_run_config, predict_hkl, train
from xtalforge.tasks.metrics import r_factor, r_per_shell, relative_mse, shell_edges, ssim3d
from xtalforge.tasks.resolution import (
    Extension,
    ResolutionExtension,
    collate_reflections,
    extension_dataset,
    make_item,
)


@pytest.mark.parametrize(
    "name", ["unet3d", "fft_unet", "xrd_transformer", "xrd_transformer+options"]
)
def test_model_overfits_a_batch_of_four(name, four_items):
    torch.manual_seed(0)
    module = module_for(name)
    batch = batch_of(module, four_items)
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    target = batch["target_mask"] & batch.get("pad_mask", torch.ones_like(batch["known"]))
    truth = batch["target"] if "target" in batch else batch["value"]
    module.train()
    for _ in range(400 if name.startswith("xrd_transformer") else 250):
        opt.zero_grad()
        loss = module._loss(module.raw(batch), batch)
        loss.backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        sc = batch["scale"]
        r = float(r_factor(module(batch) * sc, truth * sc, target))
        r_wilson = float(r_factor(batch["wilson"] * sc, truth * sc, target))
    assert r < 0.05, (name, r)
    assert r_wilson > 0.2  # the fill is far from the truth, so the fit is the model's


@pytest.mark.parametrize(
    "name", ["unet3d", "fft_unet", "xrd_transformer", "xrd_transformer+options"]
)
def test_known_kept_and_absent_zero(name, four_items):
    torch.manual_seed(1)
    module = module_for(name).eval()
    batch = batch_of(module, four_items)
    with torch.no_grad():
        out = module(batch)
    given = batch["input"] if "input" in batch else batch["value"]
    known = batch["known"]
    assert torch.equal(out[known], given[known])
    absent = batch["absent"] if "absent" in batch else ~batch["pad_mask"]
    assert absent.any() and (out[absent] == 0).all()
    assert (out >= 0).all()
    if "pad_mask" in batch:  # padding changes nothing for the real tokens
        single = collate_reflections([four_items[1][0]])
        with torch.no_grad():
            alone = module(single)[0]
        n = int(single["pad_mask"].sum())
        assert torch.allclose(alone[:n], out[0, :n], atol=1e-5)


def test_metrics_against_closed_forms():
    true = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    pred = torch.tensor([[1.5, 2.0, 2.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert float(r_factor(pred, true, mask)) == pytest.approx((0.5 + 0 + 1) / 6)
    g = torch.rand(2, 1, 9, 8, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim3d(g, g), torch.ones(2), atol=1e-5)
    assert (ssim3d(g, torch.rand(2, 1, 9, 8, 7)) < 0.5).all()
    edges = shell_edges(1.0, 1.2, 4)
    assert edges[0] == pytest.approx(1.2) and edges[-1] == pytest.approx(1.0)
    vols = np.diff([1 / e**3 for e in edges])
    assert np.allclose(vols, vols[0])  # equal reciprocal volumes
    d = torch.tensor([[1.19, 1.1, 1.0, 1.05]])
    shells = r_per_shell(pred, true, torch.ones_like(mask), d, [1.2, 1.1, 1.0])
    assert shells[0][2] == pytest.approx(0.5 / 3)  # d 1.19 and 1.1: 1.1 ≤ d < 1.2
    assert shells[1][2] == pytest.approx((1 + 4) / 7)  # d 1.0 and 1.05


def test_relative_mse_weighs_structures_equally(four_items):
    """Σ(p − t)² / Σt² per structure, averaged over structures; a structure with no masked
    reflection is left out. The module's loss switches to it with ``task.loss``."""
    true = torch.tensor([[1.0, 2.0, 0.0], [10.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    pred = torch.tensor([[2.0, 2.0, 9.0], [7.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    expected = ((1.0 / 5.0) + (9.0 / 100.0)) / 2
    assert float(relative_mse(pred, true, mask)) == pytest.approx(expected)
    module = ResolutionExtension(
        {"name": "unet3d", "size": "small", "params": SMALL_PARAMS["unet3d"]},
        {"d_low": 1.2, "d_high": 1.0, "normalization": "wilson", "loss": "relative_mse"},
        {"name": "adam", "lr": 1e-3},
    )
    batch = batch_of(module, four_items)
    with torch.no_grad():
        raw = module.raw(batch)
        loss = float(module._loss(raw, batch))
    t, r = batch["target"].numpy(), raw.numpy()
    m = batch["target_mask"].numpy()
    by_hand = np.mean(
        [((r[i] - t[i])[m[i]] ** 2).sum() / (t[i][m[i]] ** 2).sum() for i in range(len(t))]
    )
    assert loss == pytest.approx(by_hand, rel=1e-5)
    pooled = ((r - t)[m] ** 2).mean()
    assert abs(loss - pooled) > 1e-3  # the option changes the loss


def test_wilson_fill_r_matches_wilson_statistics():
    """With exact E values the fill predicts ⟨|E|⟩; for many equal atoms its R over acentric
    and centric reflections approaches E|x − ⟨x⟩| / ⟨x⟩ under Wilson's distributions."""

    def r_closed(pdf):
        mean = integrate.quad(lambda x: x * pdf(x), 0, np.inf)[0]
        mad = (
            integrate.quad(lambda x: (mean - x) * pdf(x), 0, mean)[0]
            + integrate.quad(lambda x: (x - mean) * pdf(x), mean, np.inf)[0]
        )
        return mad / mean

    r_acentric = r_closed(lambda x: 2 * x * np.exp(-x * x))
    r_centric = r_closed(lambda x: np.sqrt(2 / np.pi) * np.exp(-x * x / 2))
    gen = Generator.from_config(
        {
            **GEN,
            "spacegroups": ["P 1 21 1"],
            "atoms": [60, 60],
            "composition": {"elements": {"C": 1.0}},
            "u_iso": [0.02, 0.02],
        }
    )
    task = Extension(2.0, 0.9, "e")
    from xtalforge.diffraction.wilson import normalize

    num = {True: 0.0, False: 0.0}
    den = {True: 0.0, False: 0.0}
    for s in range(6):
        c = gen.sample(s)
        r = reflections(c, 0.9)
        amp = np.abs(structure_factors(c, r))
        e = normalize(amp, r, crystal=c)
        item = make_item(r.hkl, amp, c.cell, c.spacegroup.xhm(), task, None, e=e, z=c.z)
        target = item["target_mask"].numpy()
        sub = reflections(c, 0.9).subset(r.d >= 0.9 * (1 - 1e-9))
        for centric in (True, False):
            m = target & (sub.centric == centric)
            v, w = item["value"].numpy()[m], item["wilson"].numpy()[m]
            num[centric] += np.abs(v - w).sum()
            den[centric] += v.sum()
    assert num[False] / den[False] == pytest.approx(r_acentric, abs=0.02)
    assert num[True] / den[True] == pytest.approx(r_centric, abs=0.05)
    # the resolution-only floor quoted for this task: 0.420 acentric, 0.605 centric
    assert r_acentric == pytest.approx(0.420, abs=1e-3)
    assert r_centric == pytest.approx(0.605, abs=1e-3)


def test_run_folder_records_everything(run_dir):
    import yaml

    rec = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert rec["seed"] == 7 and rec["config"]["model"]["name"] == "unet3d"
    assert {"xtalforge_version", "git_commit", "torch", "dataset"} <= set(rec)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "csv" / "metrics.csv").read_text().count("val/R_wilson") == 1
    assert any((run_dir / "tb").iterdir())


def test_deterministic_training(run_dir):
    """The same config and seed give bit-identical weights."""
    import yaml

    cfg = load_run_config(yaml.safe_load((run_dir / "run.yaml").read_text())["config"])
    again = train(cfg, progress=False)
    a = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(again / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_to_the_same_weights(run_dir, tmp_path):
    """A run stopped after 2 epochs and resumed to 3 ends bit-identical to 3 epochs in one go."""
    import shutil

    import yaml

    raw = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    raw["trainer"]["max_epochs"] = 3
    raw["output_dir"] = str(tmp_path / "fresh")
    whole = train(load_run_config(raw), progress=False)
    stopped = tmp_path / "stopped"
    shutil.copytree(run_dir, stopped)  # the fixture's run: the same config, 2 epochs
    resumed = train(load_run_config(raw), progress=False, resume=stopped)
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_last_checkpoint_is_the_latest_epoch(tmp_path):
    """last.ckpt follows every epoch even when the monitored metric gets worse (what --resume
    continues from); best.ckpt keeps the best epoch."""
    import lightning as L

    from xtalforge.tasks.runner import checkpoint_callbacks

    class Worsening(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            return ((self.w - batch[0]) ** 2).mean()

        def validation_step(self, batch, _):
            self.log("val/R_target", float(self.current_epoch))  # worse every epoch

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=2
    )
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=checkpoint_callbacks(tmp_path, "val/R_target"),
    )
    trainer.fit(Worsening(), data, data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    best = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 6)
    assert (best["epoch"], best["global_step"]) == (0, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_checkpoint_round_trip_and_evaluate(run_dir, tmp_path):
    import yaml

    data = Path(yaml.safe_load((run_dir / "run.yaml").read_text())["dataset"]["path"])
    module = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    again = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    ds = extension_dataset(data, "test", module.extension)
    batch = {
        k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0] if torch.is_tensor(ds[0][k])
    }
    with torch.no_grad():
        assert torch.equal(module(batch), again(batch))
    result = evaluate(run_dir / "checkpoints" / "last.ckpt", data, out=tmp_path)
    assert result["n_structures"] == len(ds)
    # the JSON's R_wilson is the fill's R recomputed here from the items directly
    num = sum(
        float(((ds[i]["wilson"] - ds[i]["target"]).abs() * ds[i]["target_mask"]).sum())
        for i in range(len(ds))
    )  # max normalisation: scale 1
    den = sum(float((ds[i]["target"] * ds[i]["target_mask"]).sum()) for i in range(len(ds)))
    assert result["R_wilson"] == pytest.approx(num / den, rel=1e-5)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"R_target", "R_all", "R_wilson", "mse", "ssim", "n_structures"} <= set(saved)
    assert len(list(tmp_path.glob("slice-*.png"))) == 3
    assert (tmp_path / "per_structure.csv").read_text().count("\n") == len(ds) + 1
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(run_dir / "checkpoints" / "best.ckpt"),
            "--data",
            str(data),
            "--json",
            str(tmp_path / "m.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Wilson fill" in res.output
    assert json.loads((tmp_path / "m.json").read_text())["n_structures"] == len(ds)


def test_evaluate_a_folder_of_cifs(run_dir, tmp_path):
    """``evaluate --data`` on a folder of structure CIFs: every usable structure is scored, and
    its R over the target shell is the R of ``predict``'s amplitudes (extend_amplitudes) against
    the calculated |F|; rows name file and space group; a broken file is skipped with a
    warning naming it; a group the model never saw is flagged."""
    from xtalforge.crystal import Crystal
    from xtalforge.io.cif_structure import write_cif
    from xtalforge.tasks.resolution import extend_amplitudes

    folder = tmp_path / "cifs"
    folder.mkdir()
    crystals = {
        "a.cif": Generator.from_config(GEN).sample(11),
        "b.cif": Crystal(
            (6.1, 6.6, 7.2, 95.0, 101.0, 97.0),
            "P -1",
            ["C", "N", "O"],
            [[0.1, 0.2, 0.3], [0.3, 0.1, 0.25], [0.2, 0.4, 0.1]],
            u_iso=[0.02] * 3,
        ),
    }
    for name, c in crystals.items():
        write_cif(c, folder / name)
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 5\n")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    with pytest.warns(UserWarning) as seen:
        result = evaluate(ckpt, folder, out=tmp_path / "ev")
    messages = " | ".join(str(w.message) for w in seen)
    assert "1 of 3 CIF entries skipped: broken.cif" in messages
    assert "space group P -1 is outside the model's training set" in messages
    assert result["n_structures"] == 2 and result["split"] == "all"
    with open(tmp_path / "ev" / "per_structure.csv") as fh:
        rows = {r["source"]: r for r in csv.DictReader(fh)}
    assert {k: rows[k]["spacegroup"] for k in rows} == {"a.cif": "P 1 21 1", "b.cif": "P -1"}
    module = load_checkpoint(ckpt)
    for name, c in crystals.items():
        full = reflections(c, 1.0)
        amp = np.abs(structure_factors(c, full))
        known = full.d >= 1.2
        hkl, pred = extend_amplitudes(
            module, full.hkl[known], amp[known], c.cell, c.spacegroup, c.z
        )
        true = dict(zip(map(tuple, full.hkl.tolist()), amp, strict=True))
        t = np.array([true[tuple(h)] for h in hkl.tolist()])
        assert float(rows[name]["R_target"]) == pytest.approx(
            np.abs(pred - t).sum() / t.sum(), rel=1e-4
        )


def test_predict_round_trip_on_hkl_file(run_dir, tmp_path):
    gen = Generator.from_config(GEN)
    c = gen.sample(999)
    measured = reflections(c, 1.2)
    amp = np.abs(structure_factors(c, measured))
    write_hkl(tmp_path / "x.hkl", measured.hkl, amp**2)
    write_ins(tmp_path / "x.ins", c)
    out = tmp_path / "ext.hkl"
    info = predict_hkl(run_dir / "checkpoints" / "last.ckpt", tmp_path / "x.hkl", out)
    data = read_hkl(out)
    shell = reflections(c, 1.0)
    new = shell.hkl[shell.d < 1.2 * (1 - 1e-9)]
    assert info["measured"] == len(measured) and info["predicted"] == len(new)
    assert info["warnings"] == []  # complete to d_low
    got = {
        tuple(h): (v, b) for h, v, b in zip(data.hkl.tolist(), data.values, data.batch, strict=True)
    }
    for h, a in zip(measured.hkl.tolist(), amp, strict=True):  # measured: unchanged
        assert got[tuple(h)][1] == 1
        assert got[tuple(h)][0] == pytest.approx(a**2, abs=0.01 + 1e-4 * a**2)
    assert sorted(tuple(h) for h, (_, b) in got.items() if b == 2) == sorted(
        map(tuple, new.tolist())
    )
    assert all(np.isfinite(v) and v >= 0 for v, _ in got.values())
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(run_dir / "checkpoints" / "last.ckpt"),
            "--hkl",
            str(tmp_path / "x.hkl"),
            "--cell",
            " ".join(map(str, c.cell)),
            "--spacegroup",
            "P 1 21 1",
            "--out",
            str(tmp_path / "ext2.hkl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert read_hkl(tmp_path / "ext2.hkl").values == pytest.approx(data.values)
    # the command predict prints: the extended file phased with its predictions as priors;
    # the solution holds the measured reflections only
    assert f"--prior-below {1.2}" in res.output
    res = CliRunner().invoke(
        app,
        [
            "solve",
            str(out),
            "--ins",
            str(tmp_path / "x.ins"),
            "--prior-below",
            "1.2",
            "--out",
            str(tmp_path / "s.cif"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"reflections\t(\d+)", res.output)[1] == str(len(measured))
    assert (tmp_path / "s.cif").is_file() and (tmp_path / "s.ccp4").is_file()
    # data that stop short of the model's d_low: a warning that says so
    short = measured.d >= 1.5
    write_hkl(tmp_path / "short.hkl", measured.hkl[short], amp[short] ** 2)
    with pytest.warns(UserWarning, match=r"data end at 1\.5\d* Å"):
        info = predict_hkl(
            run_dir / "checkpoints" / "last.ckpt",
            tmp_path / "short.hkl",
            tmp_path / "ext3.hkl",
            structure=tmp_path / "x.ins",
        )
    assert len(info["warnings"]) == 1
    with pytest.raises(XtalforgeError, match=r"nope\.ins: no such file"):  # never a silent fallback
        predict_hkl(
            run_dir / "checkpoints" / "last.ckpt",
            tmp_path / "x.hkl",
            tmp_path / "ext4.hkl",
            structure=tmp_path / "nope.ins",
        )


def test_checkpoint_records_its_training_domain_and_predict_warns_outside_it(run_dir, tmp_path):
    """The checkpoint says what it was trained on (the generator's one group, edges ≤ a_max);
    data in a group it never saw, or with a longer edge, get a warning naming it; a P2_1 cell
    inside the domain gets none (the round-trip test above)."""
    from xtalforge.crystal import Crystal

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    domain = load_checkpoint(ckpt).hparams["training_domain"]
    assert domain["spacegroups"] == ["P 1 21 1"]
    assert 4.0 <= domain["max_edge"] <= GEN["cell"]["a_max"]
    res = CliRunner().invoke(app, ["info", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "P 1 21 1" in res.output and "unet3d" in res.output and "1.2 → 1.0" in res.output

    p1bar = Crystal(
        (6.1, 6.6, 7.2, 95.0, 101.0, 97.0),
        "P -1",
        ["C", "N", "O"],
        [[0.1, 0.2, 0.3], [0.3, 0.1, 0.25], [0.2, 0.4, 0.1]],
        u_iso=[0.02] * 3,
    )
    long = Crystal(
        (6.0, 7.0, 3 * GEN["cell"]["a_max"], 90.0, 100.0, 90.0),
        "P 1 21 1",
        ["C", "O"],
        [[0.1, 0.2, 0.3], [0.3, 0.1, 0.25]],
        u_iso=[0.02] * 2,
    )
    for c, expect in (
        (
            p1bar,
            r"space group P -1 is outside the model's training set "
            r"\(P 1 21 1\)",
        ),
        (long, rf"cell edge of {3 * GEN['cell']['a_max']:.1f} Å is longer"),
    ):
        r = reflections(c, 1.2)
        write_hkl(tmp_path / "o.hkl", r.hkl, np.abs(structure_factors(c, r)) ** 2)
        write_ins(tmp_path / "o.ins", c)
        with pytest.warns(UserWarning, match=expect):
            info = predict_hkl(
                ckpt, tmp_path / "o.hkl", tmp_path / "o-ext.hkl", structure=tmp_path / "o.ins"
            )
        assert len(info["warnings"]) == 1 and info["predicted"] > 0
    # data already past d_low: the measured shell reflections are kept, and a note says so
    c = Generator.from_config(GEN).sample(5)
    r = reflections(c, 1.1)
    write_hkl(tmp_path / "deep.hkl", r.hkl, np.abs(structure_factors(c, r)) ** 2)
    write_ins(tmp_path / "deep.ins", c)
    info = predict_hkl(
        ckpt, tmp_path / "deep.hkl", tmp_path / "deep-ext.hkl", structure=tmp_path / "deep.ins"
    )
    in_shell = int((r.d < 1.2).sum())
    assert any(
        f"{in_shell} measured reflections lie in the model's target shell" in n
        for n in info["notes"]
    )
    full = reflections(c, 1.0)
    assert info["predicted"] == int((full.d < 1.1 * (1 - 1e-9)).sum())


def test_init_from_starts_from_the_checkpoint_and_merges_domains(run_dir, tmp_path):
    """Fine-tuning (``init_from``) starts from the base weights exactly; its domain is the union
    of the base's and the new data's; weights of another architecture are refused by name."""
    import yaml

    from xtalforge.tasks import DataSource
    from xtalforge.tasks.config import ConfigError
    from xtalforge.tasks.runner import build_module

    base_ckpt = run_dir / "checkpoints" / "last.ckpt"
    spec = {**SPEC, "name": "ft-p1bar", "n": 16, "generator": {**GEN, "spacegroups": ["P -1"]}}
    build_dataset(load_spec(spec), tmp_path / "p1bar")
    cfg = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    cfg["data"]["path"] = str(tmp_path / "p1bar")
    cfg["init_from"] = str(base_ckpt)
    module = build_module(load_run_config(cfg), DataSource(root=tmp_path / "p1bar"))
    base = torch.load(base_ckpt, weights_only=False)["state_dict"]
    assert all(torch.equal(module.state_dict()[k], base[k]) for k in base)
    assert module.hparams["training_domain"]["spacegroups"] == ["P -1", "P 1 21 1"]
    cfg["model"]["params"] = {"channels": [8, 16, 32]}
    with pytest.raises(ConfigError, match="weights do not fit model unet3d"):
        build_module(load_run_config(cfg), DataSource(root=tmp_path / "p1bar"))


def test_domain_warnings_compare_groups_not_settings():
    """Another setting of a trained group is inside the domain; a merged domain is the union;
    an unknown domain (an older checkpoint) never warns."""
    from xtalforge.tasks.domain import domain_warnings, merge_domains

    mono = {"spacegroups": ["P 1 21/c 1"], "max_edge": 20.0, "source": "a"}
    assert domain_warnings(mono, ["P 1 21/n 1", "P 21/a"], 20.5, "x") == []
    (note,) = domain_warnings(mono, ["P 1 21/n 1", "C 1 2/c 1"], 20.0, "x")
    assert note.startswith("x: space group C 1 2/c 1 is outside")
    (note,) = domain_warnings(mono, ["P -1", "P 21 21 21"], 10.0, "x")
    assert "space groups P -1, P 21 21 21 are outside" in note
    assert len(domain_warnings(mono, ["P -1"], 30.0, "x")) == 2
    both = merge_domains(mono, {"spacegroups": ["P -1"], "max_edge": 25.0, "source": "b"})
    assert both["spacegroups"] == ["P -1", "P 1 21/c 1"] and both["max_edge"] == 25.0
    assert domain_warnings(both, ["P -1", "P 1 21/n 1"], 24.0, "x") == []
    assert merge_domains(None, mono) is None
    assert domain_warnings(None, ["P -1"], 99.0, "x") == []


def test_transformer_trains_deterministically_on_length_grouped_batches(run_dir, tmp_path):
    """The transformer through `train` with data.length_grouping: same config, same weights."""
    import yaml

    cfg = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    cfg["model"] = {"name": "xrd_transformer", "params": SMALL_PARAMS["xrd_transformer"]}
    cfg["data"]["length_grouping"] = 2
    cfg["trainer"] = {"max_epochs": 2, "limit_train_batches": 2}
    cfg["output_dir"] = str(tmp_path)
    a, b = (train(load_run_config(cfg), progress=False) for _ in range(2))
    wa = torch.load(a / "checkpoints" / "last.ckpt", weights_only=False)
    wb = torch.load(b / "checkpoints" / "last.ckpt", weights_only=False)
    assert a != b and wa["global_step"] == 4
    assert all(torch.equal(wa["state_dict"][k], wb["state_dict"][k]) for k in wa["state_dict"])


def test_length_grouping_needs_a_reflection_model(run_dir, tmp_path):
    """Grouping by length is refused, before any run folder is made, for grid models."""
    import yaml

    cfg = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    cfg["data"]["length_grouping"] = 4
    cfg["output_dir"] = str(tmp_path)
    with pytest.raises(XtalforgeError, match="length_grouping applies"):
        train(load_run_config(cfg), progress=False)
    assert not any(tmp_path.iterdir())
