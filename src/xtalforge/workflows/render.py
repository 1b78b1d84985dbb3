"""How results look on a terminal: rich tables (plain tab-separated values when the output is
piped or logged, so a log keeps every digit), progress bars with rate and ETA, one-line
warnings. The CLI and the demo print through here; the library returns plain data."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = [
    "console",
    "err_console",
    "manifest_table",
    "metrics_table",
    "print_table",
    "progress_bar",
    "show_warning",
    "solve_table",
    "structures_progress",
    "table",
]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    right: Sequence[str] = (),
    header: bool = True,
) -> Table:
    """A rich table of string cells; the ``right`` columns are right-aligned."""
    out = Table(title=title, show_header=header)
    for col in columns:
        out.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        out.add_row(*(str(c) for c in row))
    return out


def print_table(tab: Table, to: Console | None = None) -> None:
    """Print a table: drawn on a terminal; as tab-separated lines (``# title``, the header,
    one line per row) when the output is a pipe or a file."""
    to = to or console
    if to.is_terminal:
        to.print(tab)
        return
    lines = [f"# {tab.title}"] if tab.title else []
    if tab.show_header:
        lines.append("\t".join(str(c.header) for c in tab.columns))
    cells = [[str(v) for v in c._cells] for c in tab.columns]
    lines += ["\t".join(row) for row in zip(*cells, strict=True)]
    to.file.write("\n".join(lines) + "\n")  # as is: rich would expand the tabs


def show_warning(
    message: Any,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Print a user-facing warning as one ``warning: …`` line (no source path or code line)."""
    if issubclass(category, (UserWarning, RuntimeWarning)):
        err_console.print("[yellow]warning:[/] " + escape(str(message)), highlight=False)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def progress_bar(unit: str = "structures") -> Progress:
    """A rich progress bar with the count, a rate in ``unit``/s, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} " + unit + "/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


@contextmanager
def structures_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar (rate, ETA); yields the ``progress(done, total)`` callback."""
    with progress_bar() as bar:
        task = bar.add_task(label, total=None, rate="–")
        t0, first = time.perf_counter(), [-1]

        def progress(done: int, total: int) -> None:
            if first[0] < 0:
                first[0] = done
            dt = time.perf_counter() - t0
            start = first[0]
            rate = (done - start) / dt if dt > 0 and done > start else 0.0
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        yield progress


def manifest_table(m: dict[str, Any]) -> Table:
    """A dataset manifest: counts, splits, shards, reflections, space groups, grid, import."""
    groups = list(m.get("spacegroups", {}).items())
    rows = [
        ("structures", m.get("rows")),
        ("splits", ", ".join(f"{k} {v}" for k, v in m.get("splits", {}).items())),
        ("shards", len(m.get("shards", []))),
        ("reflections", f"{m.get('n_reflections', 0):,}"),
        (
            "space groups",
            ", ".join(f"{k} ({v})" for k, v in groups[:6]) + (" …" if len(groups) > 6 else ""),
        ),
    ]
    if "hkl_grid" in m:
        g = m["hkl_grid"]
        rows.append(("hkl grid", f"lower {tuple(g['lower'])}, shape {tuple(g['shape'])}"))
    if "import_report" in m:
        status = m["import_report"]["status"].items()
        rows.append(("import", ", ".join(f"{k} {v}" for k, v in status)))
    return table(f"dataset {m['name']} ({m['status']})", ("field", "value"), rows)


#: Keys of an evaluation result that are not metrics.
_NOT_METRICS = {
    "checkpoint",
    "data",
    "split",
    "task",
    "model",
    "n_structures",
    "metric",
    "baseline",
    "baseline_name",
    "units",
}


def _task_table(result: dict[str, Any]) -> Table:
    """Any task's evaluation: its metric beside the trivial baseline, then the other numbers."""
    m = result["metric"]
    rows = [
        (f"{m['name']} ({m['better']} is better)", f"{m['value']:.4g}", f"{result['baseline']:.4g}")
    ]
    rows += [
        (k, f"{v:.4g}", "")
        for k, v in result.items()
        if k not in _NOT_METRICS and isinstance(v, float)
    ]
    rows += [
        (f"phase error {sh['d_upper']:.2f}–{sh['d_lower']:.2f} Å", f"{sh['phase_error']:.1f}°", "")
        for sh in result.get("phase_error_shells", [])
    ]
    title = (
        f"{result['task']}: {result['model']} on {result['data']} "
        f"({result['n_structures']} structures)"
    )
    return table(
        title,
        ("metric", "model", result["baseline_name"]),
        rows,
        right=("model", result["baseline_name"]),
    )


def metrics_table(result: dict[str, Any]) -> Table:
    """An evaluation result: resolution extension beside the Wilson fill, or any other task's
    headline metric beside its baseline."""
    if result.get("task", "resolution") != "resolution":
        return _task_table(result)
    r = result
    rows = [
        ("R (target shell)", f"{r['R_target']:.4f}", f"{r['R_wilson']:.4f}"),
        ("median R per structure", f"{r['median_R_target']:.4f}", f"{r['median_R_wilson']:.4f}"),
        ("R_all (known + target)", f"{r['R_all']:.4f}", ""),
        ("MSE (target)", f"{r['mse']:.3g}", ""),
        ("3D SSIM", f"{r['ssim']:.4f}", ""),
        ("structures beating the fill", f"{r['fraction_beating_wilson']:.1%}", ""),
    ]
    rows += [
        (f"R {sh['d_upper']:.3f}–{sh['d_lower']:.3f} Å", f"{sh['R']:.4f}", "")
        for sh in r["R_shells"]
    ]
    title = f"{r['model']} on {r['data']} ({r['split']}, {r['n_structures']} structures)"
    return table(title, ("metric", "model", "Wilson fill"), rows, right=("model", "Wilson fill"))


def solve_table(rows: Sequence[Any]) -> Table:
    """The solve benchmark's rows (:class:`~xtalforge.workflows.solve_benchmark.BenchmarkRow`)."""
    cols: tuple[str, ...] = ("method", "data", "d", "to", "n", "solved", "P1", "CC", "err")
    cols += ("atoms", "s", "atomic", "R1", "s build")
    cells = [
        (
            r.method,
            r.data,
            f"{r.d_min:g}",
            f"{r.scored_to:g}",
            r.n,
            f"{r.solved_fraction:.0%}",
            f"{r.solved_fraction_p1:.0%}",
            f"{r.median_cc:.3f}",
            f"{r.median_phase_error:.1f}",
            f"{r.median_atom_recovery:.2f}",
            f"{r.seconds_per_structure:.3f}",
            "–" if math.isnan(r.atom_solved_fraction) else f"{r.atom_solved_fraction:.0%}",
            "–" if math.isnan(r.median_r1) else f"{r.median_r1:.3f}",
            "–" if math.isnan(r.atom_seconds) else f"{r.atom_seconds:.2f}",
        )
        for r in rows
    ]
    out = table(
        "solve benchmark (medians; d and 'to' in Å, err in °, s per structure; atomic: refined"
        " R1 ≤ 0.15 and ≥ 90 % of atoms matched)",
        cols,
        cells,
        right=cols[2:],
    )
    for col in out.columns:
        col.no_wrap = True
    return out


def space_group_table(candidates: Sequence[Any], n: int = 8) -> Table:
    """The best ``n`` space-group candidates (:class:`~xtalforge.phasing.space_group.Candidate`)
    as XPREP lists them: Laue agreement, absences and their mean I/σ, consistent or not."""
    cols = ("rank", "space group", "Laue CC", "pairs", "absent", "I/σ absent", "consistent")
    rows = [
        (
            str(k + 1),
            c.symbol,
            "–" if c.laue_cc != c.laue_cc else f"{c.laue_cc:.3f}",
            str(c.laue_pairs),
            str(c.n_absent),
            f"{c.absent_i_sigma:.2f}",
            "yes" if c.consistent else "no",
        )
        for k, c in enumerate(candidates[:n])
    ]
    return table("space group from the data", cols, rows, right=cols[2:6])
