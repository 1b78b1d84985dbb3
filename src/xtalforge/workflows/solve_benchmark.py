"""The solve benchmark (the thesis's Table 3.5 design with open solvers).

For each resolution d and solver: the truth's amplitudes cut at d. With an extension
``d_low → d_high``: the truth at d_low, the target shell filled with Wilson-expected amplitudes
⟨|F|⟩ (K and B fitted on the known reflections), free-lunch extrapolation to d_high (charge
flipping only), the model's amplitudes (given a checkpoint), and the truth at d_high. Rows of the
extension block are all scored on the measured reflections (d ≥ d_low) with the true amplitudes,
so they answer the same question: are the phases of the data one has right?

Rows that phase the very data they are scored on (the truth at each d) are also scored at the
atom level: each solution is built into atoms, refined, and matched to the truth's atoms
(:func:`atom_level`).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from xtalforge.data.solve_data import dataset_entries
from xtalforge.diffraction.reflections import below, reflections
from xtalforge.errors import XtalforgeError
from xtalforge.io.cif_structure import cif_entries, entry_name, read_cif
from xtalforge.phasing.charge_flipping import DEFAULT_DM_EVERY, DEFAULT_PRIOR_WEIGHT
from xtalforge.phasing.complete import complete, match_to_truth
from xtalforge.phasing.density_modification import MapModel
from xtalforge.phasing.solve import (
    Solution,
    SolveData,
    calculated_solve_data,
    cell_content,
    score_solution,
    solve_batch,
)
from xtalforge.tasks.checkpoints import load_checkpoint

__all__ = [
    "BenchmarkPlan",
    "BenchmarkRow",
    "atom_level",
    "benchmark_structures",
    "plan_benchmark",
    "solve_benchmark",
    "wilson_filled",
    "write_rows",
]


@dataclass(frozen=True)
class BenchmarkRow:
    """One (method, data, resolution) cell of the benchmark; medians over structures."""

    method: str
    data: str
    d_min: float
    n: int
    solved_fraction: float
    solved_fraction_p1: float
    median_cc: float
    median_cc_p1: float
    median_phase_error: float
    median_atom_recovery: float
    seconds_per_structure: float
    scored_to: float  # Å: the solution is scored on the reflections with d ≥ this
    #: atom level (rows that phase the data themselves, with the truth's atoms known): the
    #: fraction whose refined model has R1 ≤ ATOM_R1 and ATOM_MATCHED of the non-H atoms
    #: within 0.3 Å with the right element; the median R1; seconds per structure to build
    #: and refine. NaN where not measured.
    atom_solved_fraction: float = float("nan")
    median_r1: float = float("nan")
    atom_seconds: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(values: list[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return float(statistics.median(vals)) if vals else float("nan")


def wilson_filled(data: SolveData, d_low: float, d_high: float) -> SolveData:
    """Known reflections (d ≥ d_low) as measured; the shell d_high ≤ d < d_low filled with
    ⟨|F|⟩ from a Wilson fit on the known ones (√π/2 or √(2/π) × √(εKΣf²e^{−2Bs²}))."""
    from xtalforge.diffraction.wilson import wilson_fill

    known = data.cut(d_low)
    full = reflections(data.refl.cell, d_high, spacegroup=data.refl.spacegroup)
    shell = full.subset(below(full.d, d_low))
    hkl = np.concatenate([known.refl.hkl, shell.hkl]).astype(np.int64)
    amp = np.concatenate([known.amplitudes, np.zeros(len(shell))])
    is_known = np.r_[np.ones(len(known.refl), bool), np.zeros(len(shell), bool)]
    refl = _refl_for(data, hkl)
    fill = wilson_fill(amp, is_known, refl, data.z)
    return data.with_amplitudes(refl, np.where(is_known, amp, fill))


def _refl_for(data: SolveData, hkl: np.ndarray):
    from xtalforge.diffraction.reflections import reflections_from_hkl

    return reflections_from_hkl(hkl, data.refl.cell, data.refl.spacegroup)


#: Relative tolerance when matching an extension's limits to a model's (Å / Å).
RANGE_TOL = 1e-6
#: Data may end this factor above the finest resolution asked for (the finest reflection a
#: cell has lies a little above any limit).
FINEST_SLACK = 1.03


def model_range(module: Any) -> tuple[float, float]:
    """(d_low, d_high) in Å of an amplitude-extension model (resolution or Patterson SR)."""
    return module.task["d_low"], module.task["d_high"]


def model_label(module: Any) -> str:
    """The benchmark's label of a model's rows (its module's ``BENCHMARK_LABEL``): ``model``,
    ``patterson`` (amplitude extension), ``phai`` or ``density`` (phases from the model)."""
    return str(getattr(module, "BENCHMARK_LABEL", "model"))


def modifies_maps(module: Any) -> bool:
    """The model is a learned density-modification step for charge flipping (``dm_model``)."""
    return isinstance(module, MapModel)


#: How far (relative) a benchmark resolution may lie outside a map model's d_low … d_low_max.
DM_SLACK = 0.02


def dm_resolutions(module: Any, resolutions: list[float]) -> list[float]:
    """The resolutions (Å) whose data a map model was trained for (d_low … d_low_max)."""
    lo, hi = module.d_low * (1 - DM_SLACK), module.d_low_max * (1 + DM_SLACK)
    return [d for d in resolutions if lo <= d <= hi]


def _dm_rows(
    structures: list[SolveData],
    dm: Any,
    resolutions: list[float],
    extend: tuple[float, float] | None,
    extender: Any,
    label: str,
    prior_weights: tuple[float, ...],
    every: int = DEFAULT_DM_EVERY,
) -> list[_Row]:
    """Per resolution d the map model fits: truth at d, free lunch and the model's step to its
    d_high, with an amplitude model extending from d also the model's shell as a prior with
    the step (``dm + <label> prior w``), and the truth at d_high; all scored at d."""
    rows = []
    d_high = dm.d_high
    for d in dm_resolutions(dm, resolutions):
        low = [s.cut(d) for s in structures]
        high = [s.cut(d_high) for s in structures]
        rows += [
            _Row("truth", d, "cf", low, low, d),
            _Row("free_lunch", d_high, "cf", low, low, d, {"d_ext": d_high}),
            _Row("dm", d_high, "cf", low, low, d, {"dm_model": dm, "dm_every": every}),
        ]
        if extender is not None and extend is not None and math.isclose(extend[0], d):
            ext = [model_extended(s, extender, extend[1]) for s in structures]
            rows += [
                _Row(
                    f"dm + {label} prior {w:g}",
                    extend[1],
                    "cf",
                    ext,
                    low,
                    d,
                    {"prior_below": d, "prior_weight": w, "dm_model": dm, "dm_every": every},
                )
                for w in prior_weights
            ]
        rows.append(_Row("truth", d_high, "cf", high, low, d))
    return rows


def phases_directly(module: Any) -> bool:
    """The model phases amplitudes itself (its ``phase`` hook) rather than extending them."""
    return callable(getattr(module, "phase", None))


def check_extension(extend: tuple[float, float], module: Any) -> None:
    """Raise unless ``extend`` = (d_low, d_high) in Å can be served by the model: the same d_low
    (its input) and a d_high no finer than the model's (its predictions are then cut there,
    e.g. a 1.5 → 0.8 Å model used for 1.5 → 1.0 Å)."""
    m_low, m_high = model_range(module)
    if not (
        math.isclose(extend[0], m_low, rel_tol=RANGE_TOL)
        and extend[1] >= m_high * (1 - RANGE_TOL)
        and extend[1] < extend[0]
    ):
        raise XtalforgeError(
            f"--extend {extend[0]:g}:{extend[1]:g} cannot use the model's task "
            f"{m_low:g}:{m_high:g}: the extension must start at its d_low "
            f"({m_low:g} Å) and end at or above its d_high ({m_high:g} Å)"
        )


def model_extended(data: SolveData, module: Any, d_high: float | None = None) -> SolveData:
    """Known reflections as measured, the target shell from the model (same scale): a
    resolution-extension model or a Patterson super-resolution model (its ``extend_amplitudes``
    goes through the predicted map). ``d_high`` (Å, default the model's): keep only the
    predictions with d ≥ d_high (see :func:`check_extension`)."""
    d_low, _ = model_range(module)
    if d_high is not None:
        check_extension((d_low, d_high), module)
    known = data.cut(d_low)
    new_hkl, new_f = module.extend_amplitudes(
        known.refl.hkl, known.amplitudes, data.refl.cell, data.refl.spacegroup, data.z
    )
    hkl = np.concatenate([known.refl.hkl, new_hkl]).astype(np.int64)
    out = data.with_amplitudes(
        _refl_for(data, hkl), np.concatenate([known.amplitudes, np.maximum(new_f, 0)])
    )
    return out if d_high is None else out.cut(d_high)


def _row(
    method: str,
    label: str,
    d: float,
    scores: list[dict],
    seconds: float,
    scored_to: float,
    atoms: tuple[float, float, float] = (float("nan"),) * 3,
) -> BenchmarkRow:
    n = len(scores)
    return BenchmarkRow(
        method,
        label,
        d,
        n,
        sum(s["solved"] for s in scores) / n,
        sum(s["solved_p1"] for s in scores) / n,
        _median([s["cc"] for s in scores]),
        _median([s["cc_p1"] for s in scores]),
        _median([s["phase_error"] for s in scores]),
        _median([s["atom_recovery"] for s in scores]),
        seconds / n,
        scored_to,
        *atoms,
    )


#: Atom-level solved: refined R1 (Fo > 4σ) at most this …
ATOM_R1 = 0.15
#: … and at least this fraction of the truth's non-H atoms matched (0.3 Å, element).
ATOM_MATCHED = 0.9


def atom_level(data: list[SolveData], sols: list[Solution]) -> tuple[float, float, float]:
    """(fraction solved at the atom level, median R1, seconds per structure) of solutions of
    ``data`` built into refined structures (:func:`~xtalforge.phasing.complete.complete`) and
    matched to the truth's atoms; NaNs when the truth's atoms are unknown."""
    if not data or any(d.truth is None or d.true_phases is None for d in data):
        return (float("nan"),) * 3
    t0 = time.perf_counter()
    solved, r1s = [], []
    for d, sol in zip(data, sols, strict=True):
        if sol.phases is None or np.isnan(sol.phases).any():
            solved.append(False)
            continue
        i_obs, sigma = d.refinement_data()
        built = complete(d.refl, d.amplitudes, sol.phases, i_obs, sigma, cell_content(d))
        assert d.truth is not None and d.true_phases is not None
        _, right = match_to_truth(built.crystal, d.truth, d.refl, d.amplitudes, d.true_phases)
        r1 = built.refinement.agreement.r1_gt
        r1s.append(r1)
        solved.append(r1 <= ATOM_R1 and right >= ATOM_MATCHED)
    seconds = (time.perf_counter() - t0) / len(data)
    return float(np.mean(solved)), _median(r1s), seconds


def phase_model_row(structures: list[SolveData], module: Any, seed: int = 0) -> BenchmarkRow:
    """A phasing model's row (``phai``: signs of centrosymmetric structures; ``density``:
    Patterson → density of P1 fragments): phases of the truth's amplitudes at the model's
    d_high, scored like any solver's."""
    label = model_label(module)
    d = module.task["d_high"]
    scores, seconds = [], 0.0
    for k, s in enumerate(structures):
        cut = s.cut(d)
        sol = module.phase(cut, seed + k)
        seconds += sol.seconds
        scores.append(score_solution(cut, sol))
    return _row(label, "truth", d, scores, seconds, d)


def _score_on(truth: SolveData, solved_data: SolveData, sol: Solution) -> dict[str, Any]:
    """Score a solution of ``solved_data`` on the reflections of ``truth`` (a subset)."""
    index = {tuple(h): i for i, h in enumerate(solved_data.refl.hkl.tolist())}
    try:
        rows = np.array([index[tuple(h)] for h in truth.refl.hkl.tolist()], np.int64)
    except KeyError as exc:
        raise XtalforgeError(
            f"{truth.source}: reflection {exc} missing from the solution"
        ) from None
    sub = Solution(
        sol.method,
        None if sol.phases is None else sol.phases[rows],
        sol.p1_phases[rows],
        sol.seconds,
        sol.figure_of_merit,
        sol.info,
    )
    return score_solution(truth, sub)


def _batches(
    inputs: list[SolveData], batch: int, starts: int, max_points: float = 3e7
) -> list[list[int]]:
    """Structures sorted by cell volume (similar cells share a batch's grid), at most ``batch``
    per batch and about ``max_points`` grid points (× starts) per batch."""
    size = [float(np.prod([2.0 * e / s.refl.d_min for e in s.refl.cell[:3]])) for s in inputs]
    out: list[list[int]] = []
    for i in np.argsort(size, kind="stable"):
        i = int(i)
        if out and len(out[-1]) < batch and size[i] * starts * (len(out[-1]) + 1) <= max_points:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@dataclass(frozen=True)
class _Row:
    """One planned row: its label and resolution (Å), the solver, the data it solves, the
    truths it is scored on (reflections with d ≥ ``scored_to`` Å) and the solver's options."""

    label: str
    d: float
    method: str
    inputs: list[SolveData]
    truths: list[SolveData]
    scored_to: float
    options: dict[str, Any] = field(default_factory=dict)


def _extension_rows(
    structures: list[SolveData],
    extend: tuple[float, float],
    methods: tuple[str, ...],
    extender: Any,
    label: str,
    prior_weights: tuple[float, ...],
) -> list[_Row]:
    """The rows of an extension d_low → d_high: truth at d_low, Wilson fill, free lunch (cf),
    the model's shell as data and as priors (cf), truth at d_high; all scored at d_low."""
    d_low, d_high = extend
    if not d_low > d_high:
        raise XtalforgeError(f"--extend needs d_low > d_high, got {d_low}:{d_high}")
    low = [s.cut(d_low) for s in structures]
    high = [s.cut(d_high) for s in structures]
    wil = [wilson_filled(s, d_low, d_high) for s in structures]
    ext = None if extender is None else [model_extended(s, extender, d_high) for s in structures]
    rows = []
    for m in methods:
        rows += [
            _Row("truth", d_low, m, low, low, d_low),
            _Row("wilson", d_high, m, wil, low, d_low),
        ]
        if m == "cf":
            rows.append(_Row("free_lunch", d_high, m, low, low, d_low, {"d_ext": d_high}))
        if ext is not None:
            rows.append(_Row(label, d_high, m, ext, low, d_low))
            if m == "cf":
                rows += [
                    _Row(
                        f"{label} prior {w:g}",
                        d_high,
                        m,
                        ext,
                        low,
                        d_low,
                        {"prior_below": d_low, "prior_weight": w},
                    )
                    for w in prior_weights
                ]
        rows.append(_Row("truth", d_high, m, high, low, d_low))
    return rows


def _check_structures(structures: list[SolveData], finest: float) -> None:
    if not structures:
        raise XtalforgeError("the solve benchmark needs at least one structure")
    if any(s.true_phases is None for s in structures):
        raise XtalforgeError("the solve benchmark needs the true phases (calculated data)")
    for s in structures:
        if s.refl.d_min > finest * FINEST_SLACK:  # the finest reflection lies a little above
            raise XtalforgeError(
                f"{s.source}: data end at {s.refl.d_min:.3f} Å, the benchmark asks for {finest} Å"
            )


def solve_benchmark(
    structures: list[SolveData],
    resolutions: list[float],
    methods: tuple[str, ...] = ("cf", "smtbx"),
    extend: tuple[float, float] | None = None,
    module: Any = None,
    starts: int = 4,
    smtbx_starts: int = 1,
    batch: int = 32,
    seed: int = 0,
    device: str = "cpu",
    prior_weights: tuple[float, ...] = (),
    progress: Callable[[str, int], None] | None = None,
    atoms: bool = True,
    dm_module: Any = None,
    dm_every: int = DEFAULT_DM_EVERY,
) -> list[BenchmarkRow]:
    """Run every row; ``progress(label, n_done)`` after each batch. ``structures`` need the
    truth (phases) and reflections to the finest resolution asked for. ``prior_weights``: with
    a model extension, one more cf row per weight, ``<model> prior w``: the model's shell as a
    restrained free-lunch extension instead of data (``prior_below`` in
    :func:`~xtalforge.phasing.solve.solve_batch`). ``atoms``: also score the truth rows that
    phase the data they are scored on at the atom level (:func:`atom_level`). ``dm_module``: a
    learned density-modification model (:class:`~xtalforge.phasing.density_modification.MapModel`),
    its rows at the resolutions it fits (:func:`_dm_rows`), a step every ``dm_every`` cycles."""
    direct = module is not None and phases_directly(module)
    extender = module if module is not None and not direct else None  # amplitudes for a shell
    if extend is not None and extender is not None:
        check_extension(extend, extender)
    asked = (
        resolutions
        + ([extend[1]] if extend else [])
        + ([module.task["d_high"]] if direct else [])
        + (
            [dm_module.d_high]
            if dm_module is not None and dm_resolutions(dm_module, resolutions)
            else []
        )
    )
    if not asked:
        raise XtalforgeError(
            "the solve benchmark needs a resolution, an extension or a phasing model"
        )
    _check_structures(structures, min(asked))
    plan = [
        _Row("truth", d, m, cut, cut, d)
        for d in resolutions
        for cut in [[s.cut(d) for s in structures]]
        for m in methods
    ]
    if extend is not None:
        label = model_label(module) if module is not None else "model"
        plan += _extension_rows(structures, extend, methods, extender, label, prior_weights)
    if dm_module is not None:
        label = model_label(extender) if extender is not None else "model"
        plan += _dm_rows(
            structures, dm_module, resolutions, extend, extender, label, prior_weights, dm_every
        )
    rows = [phase_model_row(structures, module, seed)] if direct else []
    solved: dict[tuple, list[Solution]] = {}  # a data set is solved once
    seen: set[tuple] = set()
    for r in plan:
        if (r.label, r.d, r.method, r.scored_to) in seen:
            continue
        seen.add((r.label, r.d, r.method, r.scored_to))
        # the truth at d is the same data whatever it is scored on; other rows depend on it
        key = (r.label, r.d, r.method, None if r.label == "truth" else r.scored_to)
        if key not in solved:
            n_starts = starts if r.method == "cf" else smtbx_starts
            solved[key] = _solve_all(r, n_starts, batch, seed, device, progress)
        sols = solved[key]
        scores = [_score_on(t, x, s) for t, x, s in zip(r.truths, r.inputs, sols, strict=True)]
        level = (float("nan"),) * 3
        if atoms and r.label == "truth" and r.d == r.scored_to:
            level = atom_level(r.inputs, sols)
        seconds = sum(s.seconds for s in sols)
        rows.append(_row(r.method, r.label, r.d, scores, seconds, r.scored_to, level))
    return rows


def _solve_all(
    r: _Row,
    starts: int,
    batch: int,
    seed: int,
    device: str,
    progress: Callable[[str, int], None] | None,
) -> list[Solution]:
    """Solutions of every input of a row, in batches of similar cells."""
    sols: dict[int, Solution] = {}
    for part in _batches(r.inputs, batch, starts):
        found = solve_batch(
            [r.inputs[i] for i in part],
            r.method,
            starts=starts,
            seed=seed,
            device=device,
            **r.options,
        )
        sols.update(zip(part, found, strict=True))
        if progress is not None:
            progress(f"{r.method} {r.label} {r.d:g} Å", len(part))
    return [sols[i] for i in range(len(r.inputs))]


@dataclass(frozen=True)
class BenchmarkPlan:
    """What a benchmark run asks for: resolutions (Å) of the truth rows, solvers, the
    extension (d_low, d_high) in Å or None, the model (a loaded checkpoint) or None, and the
    prior weights of the model-prior rows."""

    resolutions: list[float]
    methods: tuple[str, ...]
    extend: tuple[float, float] | None
    module: Any
    prior_weights: tuple[float, ...]
    dm_module: Any = None  # a learned density-modification model (its rows)

    @property
    def finest(self) -> float:
        """The finest resolution (Å) the structures must reach."""
        dm = [self.dm_module.d_high] if self.dm_module is not None else []
        return min(self.resolutions + ([self.extend[1]] if self.extend else []) + dm)

    def run(
        self,
        structures: list[SolveData],
        starts: int = 4,
        smtbx_starts: int = 1,
        seed: int = 0,
        progress: Callable[[str, int], None] | None = None,
    ) -> list[BenchmarkRow]:
        """The plan's rows on ``structures`` (see :func:`solve_benchmark`)."""
        return solve_benchmark(
            structures,
            self.resolutions,
            self.methods,
            self.extend,
            self.module,
            starts=starts,
            smtbx_starts=smtbx_starts,
            seed=seed,
            prior_weights=self.prior_weights,
            progress=progress,
            dm_module=self.dm_module,
        )

    def solves(self, n_structures: int) -> int:
        """Data sets solved for ``n_structures`` structures (the progress total)."""
        per = len(self.resolutions) * len(self.methods)
        if self.extend:
            per += 4 * len(self.methods) + len(self.prior_weights)
        if self.dm_module is not None:
            per += len(dm_resolutions(self.dm_module, self.resolutions)) * (
                3 + (len(self.prior_weights) if self.module is not None else 0)
            )
        return per * n_structures


def plan_benchmark(
    resolutions: list[float],
    methods: tuple[str, ...],
    model: str | Path | list[str] | list[Path] | list[str | Path] | None = None,
    extend: tuple[float, float] | None = None,
    prior_weights: tuple[float, ...] | None = None,
) -> BenchmarkPlan:
    """The rows for the arguments of ``benchmark solve``: a phasing model adds its d_high to
    the resolutions; an amplitude-extension model sets the extension (default its own task)
    and a prior row at :data:`DEFAULT_PRIOR_WEIGHT` unless ``prior_weights`` says otherwise; a
    density-modification model adds its rows (:func:`_dm_rows`). ``model`` may be a list: at
    most one density-modification model and one other (paths or shipped names)."""
    models = [] if model is None else list(model) if isinstance(model, list | tuple) else [model]
    loaded = [load_checkpoint(m) for m in models]
    dms = [m for m in loaded if modifies_maps(m)]
    others = [m for m in loaded if not modifies_maps(m)]
    if len(dms) > 1 or len(others) > 1:
        raise XtalforgeError(
            "--model takes at most one density-modification model and one other model"
        )
    if dms and not dm_resolutions(dms[0], list(resolutions)):
        raise XtalforgeError(
            f"the density-modification model works on data to {dms[0].d_low:g}–"
            f"{dms[0].d_low_max:g} Å: give such a resolution in --resolutions"
        )
    plan = _plan_one(resolutions, methods, others[0] if others else None, extend, prior_weights)
    return replace(plan, dm_module=dms[0] if dms else None)


def _plan_one(
    resolutions: list[float],
    methods: tuple[str, ...],
    module: Any,
    extend: tuple[float, float] | None,
    prior_weights: tuple[float, ...] | None,
) -> BenchmarkPlan:
    """The plan with at most one model that is not a map model."""
    if prior_weights and module is None:
        raise XtalforgeError("--prior-weights needs --model (the priors are its predictions)")
    weights = (
        prior_weights
        if prior_weights is not None
        else ((DEFAULT_PRIOR_WEIGHT,) if module is not None else ())
    )
    res = list(resolutions)
    if module is not None:
        if phases_directly(module):
            res = sorted(set(res) | {module.task["d_high"]})
        else:
            extend = extend or model_range(module)
            check_extension(extend, module)
    return BenchmarkPlan(res, tuple(methods), extend, module, tuple(weights))


def write_rows(path: Path, rows: list[BenchmarkRow]) -> None:
    """The rows as a JSON list, written whole or not at all (a killed run leaves no partial
    file)."""
    import json

    from xtalforge.data.shards import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps([r.as_dict() for r in rows], indent=2).encode())


def benchmark_structures(data: Path, split: str | None, n: int, d_min: float) -> list[SolveData]:
    """At most ``n`` structures with their truth: a dataset folder's ``split`` (None: all), or
    the structure CIFs of a folder (calculated F to ``d_min`` Å; files that cannot be read are
    skipped with a warning naming them)."""
    if (data / "manifest.json").is_file():
        return dataset_entries(data, split, n)
    structures: list[SolveData] = []
    for path, block in cif_entries(data):
        if len(structures) >= n:
            break
        try:
            crystal = read_cif(path, block=block)
            structures.append(calculated_solve_data(crystal, d_min, entry_name(path, block)))
        except XtalforgeError as exc:
            warnings.warn(f"skipped {entry_name(path, block)}: {exc}", stacklevel=2)
    return structures
