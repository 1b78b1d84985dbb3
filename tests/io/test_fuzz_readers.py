"""Property-based fuzzing of every reader (hypothesis): mutations of valid files — truncation,
bit flips, deleted or duplicated lines, numbers replaced by NaN/inf/huge/negative values,
non-UTF-8 bytes, empty files — either read, or raise an ``XtalforgeError`` that names the file;
never another exception and never a hang. The unmutated files read back to what was written.

``make test`` runs :data:`EXAMPLES` cases per reader; ``XTALFORGE_FUZZ_EXAMPLES=2000 pytest
tests/io/test_fuzz_readers.py`` runs a longer campaign.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import well_separated
from xtalforge.crystal.examples import random_crystal
from xtalforge.data.spec import load_spec
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.errors import XtalforgeError
from xtalforge.generate.config import load_config
from xtalforge.io import (
    read_reflections,
    read_res,
    read_structure,
    write_calculated_cif,
    write_calculated_mtz,
    write_cif,
    write_hkl,
    write_res,
)
from xtalforge.io.merge import load_measured
from xtalforge.tasks.config import load_run_config

#: Cases per reader in ``make test``.
EXAMPLES = int(os.environ.get("XTALFORGE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms per case: a reader that hangs fails
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases on every run: tests are deterministic
)

GENERATOR = "fragments-p1.yaml"
_NUMBER = re.compile(rb"-?\d+\.?\d*(?:[eE][-+]?\d+)?")
_ODD_NUMBERS = [b"nan", b"NaN", b"inf", b"-inf", b"1e308", b"-1e308", b"-99999", b"0", b"1e-320"]


def _seed_files(folder: Path) -> dict[str, Path]:
    """One valid file of every format the readers take."""
    folder.mkdir(parents=True, exist_ok=True)
    c = well_separated("P 1 21/c 1", (7.0, 8.0, 9.0, 90, 97, 90), 5, 4)
    refl = reflections(c, 1.2)
    f = structure_factors(c, refl)
    files = {
        "cif": folder / "model.cif",
        "res": folder / "model.res",
        "hkl": folder / "data.hkl",
        "mtz": folder / "calc.mtz",
        "refln": folder / "calc_refln.cif",
        "pdb": folder / "model.pdb",
        "xds": folder / "XDS_ASCII.HKL",
        "spec": folder / "spec.yaml",
        "generator": folder / "generator.yaml",
        "run": folder / "run.yaml",
    }
    write_cif(c, files["cif"])
    write_res(files["res"], c)
    i = np.abs(f) ** 2
    write_hkl(files["hkl"], refl.hkl, i, 0.02 * i + 0.1, hklf=4)
    write_calculated_mtz(files["mtz"], refl, f)
    write_calculated_cif(files["refln"], refl, f)
    p = random_crystal("P 1 21 1", 3, seed=1)
    files["pdb"].write_text(
        "CRYST1{:9.3f}{:9.3f}{:9.3f}{:7.2f}{:7.2f}{:7.2f} P 1 21 1\n".format(*p.cell)
        + "".join(
            f"ATOM  {k + 1:5d}  C   ALA A{k + 1:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C\n"
            for k, (x, y, z) in enumerate(p.frac @ p.orthogonalization_matrix.T)
        )
        + "END\n"
    )
    rows = "".join(
        f"{h:6d}{k:6d}{l:6d} {v:.4E} {s:.3E}\n"
        for (h, k, l), v, s in zip(refl.hkl.tolist(), i, 0.02 * i + 0.1)
    )
    files["xds"].write_text(
        "!FORMAT=XDS_ASCII    MERGE=TRUE    FRIEDEL'S_LAW=TRUE\n!SPACE_GROUP_NUMBER=   14\n"
        "!UNIT_CELL_CONSTANTS=     7.000     8.000     9.000    90.000    97.000    90.000\n"
        "!NUMBER_OF_ITEMS_IN_EACH_DATA_RECORD=5\n!ITEM_H=1\n!ITEM_K=2\n!ITEM_L=3\n"
        "!ITEM_IOBS=4\n!ITEM_SIGMA(IOBS)=5\n!END_OF_HEADER\n" + rows + "!END_OF_DATA\n"
    )
    configs = Path(load_spec.__code__.co_filename).parents[1] / "configs"
    files["spec"].write_text((configs / "datasets" / "quick-p21.yaml").read_text())
    files["generator"].write_text((configs / "generators" / GENERATOR).read_text())
    files["run"].write_text((configs / "experiments" / "quick-fft_unet.yaml").read_text())
    return files


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    return _seed_files(tmp_path_factory.mktemp("fuzz-seeds"))


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """One or a few mutations of ``original``."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["truncate", "flip", "drop", "dup", "number", "bytes", "empty"])
        )
        if kind == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind in ("drop", "dup"):
            lines = bytes(data).split(b"\n")
            at = draw(st.integers(0, max(0, len(lines) - 1)))
            if kind == "drop":
                del lines[at]
            else:
                lines.insert(at, lines[at] if lines else b"")
            data = bytearray(b"\n".join(lines))
        elif kind == "number":
            spans = [m.span() for m in _NUMBER.finditer(bytes(data))]
            if spans:
                lo, hi = spans[draw(st.integers(0, len(spans) - 1))]
                data[lo:hi] = draw(st.sampled_from(_ODD_NUMBERS))
        elif kind == "bytes":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8).filter(lambda b: b"\n" not in b))
        elif kind == "empty":
            data = bytearray()
    return bytes(data)


def _check(reader: Callable[[Path], object], path: Path) -> None:
    """The property: reads, or raises XtalforgeError naming the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader(path)
        except XtalforgeError as exc:
            assert path.name in str(exc), f"the error does not name the file: {exc}"


READERS: dict[str, Callable[[Path], object]] = {
    "cif": read_structure,
    "res": read_res,
    "pdb": read_structure,
    "hkl": read_reflections,
    "mtz": read_reflections,
    "refln": read_reflections,
    "xds": read_reflections,
    "spec": load_spec,
    "generator": load_config,
    "run": load_run_config,
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_fuzzed_files_read_or_fail_clearly(kind, seeds, tmp_path):
    original = seeds[kind].read_bytes()
    reader = READERS[kind]

    @FUZZ
    @given(data=mutated(original))
    def run(data: bytes) -> None:
        path = tmp_path / seeds[kind].name
        path.write_bytes(data)
        _check(reader, path)

    run()


def test_merging_fuzzed_hkl_reads_or_fails_clearly(seeds, tmp_path):
    """The whole measured-data path (read, merge to the ASU, absences) of a mutated .hkl with
    its .res."""
    original = seeds["hkl"].read_bytes()

    @FUZZ
    @given(data=mutated(original))
    def run(data: bytes) -> None:
        path = tmp_path / "data.hkl"
        path.write_bytes(data)
        _check(lambda p: load_measured(p, seeds["res"]), path)

    run()


@pytest.mark.parametrize("kind", ["cif", "res", "hkl", "mtz", "refln", "pdb", "xds"])
def test_a_folder_where_a_file_is_expected(kind, tmp_path):
    folder = tmp_path / f"not-a-file.{kind}"
    folder.mkdir()
    with pytest.raises(XtalforgeError, match="not-a-file"):
        READERS[kind](folder)


def test_unmutated_files_round_trip(seeds):
    c = read_structure(seeds["cif"])
    r = read_res(seeds["res"])
    np.testing.assert_array_equal(c.z, r.z)
    np.testing.assert_allclose(c.frac, r.frac, atol=1e-5)
    hkl = read_reflections(seeds["hkl"])
    xds = read_reflections(seeds["xds"])
    np.testing.assert_array_equal(hkl.hkl, xds.hkl)
    np.testing.assert_allclose(hkl.values, xds.values, rtol=1e-3, atol=0.006)  # F8.2 in .hkl
