"""``xtalforge demo``: the whole loop on a fresh machine, no data and no server.

1. generate a small dataset (the ``quick-p21`` preset: P2_1, 6–12 atoms, 1.2 → 1.0 Å);
2. train the quick resolution-extension U-Net for a few minutes;
3. evaluate it on the test split beside the Wilson-fill baseline;
4. run the solve benchmark on a few held-out structures (truth at 1.2 Å, Wilson fill, free
   lunch, the model's extension and the truth at 1.0 Å; charge flipping);
5. write ``report.html`` and print its path.

Every step resumes or restarts cleanly: the dataset is resumable shard by shard, a run folder
only counts once its checkpoint exists, and the JSON/HTML outputs are written atomically, so
Ctrl-C leaves nothing corrupt (rerunning continues).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from xtalforge.data import build_dataset, load_spec
from xtalforge.data.solve_data import dataset_entries
from xtalforge.phasing.charge_flipping import DEFAULT_PRIOR_WEIGHT
from xtalforge.tasks import evaluate, load_checkpoint, load_run_config, train
from xtalforge.workflows.render import print_table, solve_table, structures_progress, table
from xtalforge.workflows.report import build_report
from xtalforge.workflows.solve_benchmark import BenchmarkRow, solve_benchmark

__all__ = ["run_demo"]

#: Rows of the demo's solve benchmark: truth at d_low, Wilson, free lunch, model, model prior,
#: truth at d_high.
SOLVE_ROWS = 6


def _atomic_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def _latest_run(runs: Path) -> Path | None:
    done = sorted(runs.glob("*/version_*/checkpoints/best.ckpt"), key=lambda p: p.stat().st_mtime)
    return done[-1].parent.parent if done else None


def _train(
    out: Path, data: Path, seed: int, train_seconds: int, console: Console, fresh: bool
) -> Path:
    """The run folder of the quick U-Net: a finished one in ``out/runs``, or a new one."""
    run_dir = None if fresh else _latest_run(out / "runs")
    if run_dir is not None:
        console.print(f"reusing the finished run {run_dir}")
        return run_dir
    minutes, secs = divmod(int(train_seconds), 60)
    cfg = load_run_config(
        "quick-unet3d",
        [
            f"data={{path: {data}, batch_size: 16}}",
            f"output_dir={out / 'runs'}",
            f"trainer.max_time=00:00:{minutes:02d}:{secs:02d}",
            f"seed={seed}",
            "name=demo-unet3d",
        ],
    )
    return train(cfg, progress=True)


def _evaluation(ckpt: Path, data: Path, run_dir: Path, console: Console) -> dict[str, Any]:
    metrics = evaluate(ckpt, data, "test", out=run_dir / "eval")
    rows = [
        ("R_target (pooled)", f"{metrics['R_target']:.4f}", f"{metrics['R_wilson']:.4f}"),
        (
            "median per structure",
            f"{metrics['median_R_target']:.4f}",
            f"{metrics['median_R_wilson']:.4f}",
        ),
        ("structures beating the fill", f"{metrics['fraction_beating_wilson']:.0%}", ""),
    ]
    print_table(
        table(
            "test split (R on the 1.2 → 1.0 Å shell, max-scaled |F|)",
            ("", "model", "Wilson fill"),
            rows,
            right=("", "model", "Wilson fill"),
        ),
        console,
    )
    return metrics


def _solve(
    ckpt: Path, data: Path, run_dir: Path, solve_n: int, seed: int, console: Console
) -> list[BenchmarkRow]:
    module = load_checkpoint(ckpt)
    structures = dataset_entries(data, "test", solve_n)
    with structures_progress("charge flipping") as progress:
        total, done = len(structures) * SOLVE_ROWS, [0]

        def step(_label: str, k: int) -> None:
            done[0] += k
            progress(done[0], total)

        rows = solve_benchmark(
            structures,
            [],
            ("cf",),
            (module.task["d_low"], module.task["d_high"]),
            module,
            progress=step,
            seed=seed,
            prior_weights=(DEFAULT_PRIOR_WEIGHT,),
        )
    _atomic_json(run_dir / "solve.json", [r.as_dict() for r in rows])
    print_table(solve_table(rows), console)
    return rows


def run_demo(
    out: Path,
    seed: int = 0,
    console: Console | None = None,
    n: int = 2000,
    train_seconds: int = 240,
    solve_n: int = 8,
    workers: int = 2,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns a summary (also ``out/summary.json``). A finished
    training run in ``out/runs`` is reused unless ``fresh``."""
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - t0 - sum(timings.values())

    console.rule("1/5 dataset")
    data = out / "data"
    with structures_progress(f"generating {n} structures") as progress:
        manifest = build_dataset(
            load_spec("quick-p21", n=n, seed=11 + seed), data, workers=workers, progress=progress
        )
    lap("dataset")
    console.rule("2/5 training")
    run_dir = _train(out, data, seed, train_seconds, console, fresh)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    lap("training")
    console.rule("3/5 evaluation")
    metrics = _evaluation(ckpt, data, run_dir, console)
    lap("evaluation")
    console.rule("4/5 solve benchmark")
    rows = _solve(ckpt, data, run_dir, solve_n, seed, console)
    lap("solve")
    console.rule("5/5 report")
    report = build_report(run_dir, out / "report.html", data=data)
    lap("report")
    summary = {
        "dataset": str(data),
        "structures": manifest.get("rows"),
        "run": str(run_dir),
        "R_target": metrics["R_target"],
        "R_wilson": metrics["R_wilson"],
        "fraction_beating_wilson": metrics["fraction_beating_wilson"],
        "solve": [r.as_dict() for r in rows],
        "report": str(report),
        "seconds": timings,
        "total_seconds": time.perf_counter() - t0,
    }
    _atomic_json(out / "summary.json", summary)
    console.print(
        f"[bold green]report:[/] {report.resolve()}  ({summary['total_seconds'] / 60:.1f} min)"
    )
    return summary
