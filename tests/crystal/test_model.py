"""The Crystal model and CellSymmetry: space-group notations, validation naming the field,
composition and P1 expansion with special positions."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from tests.builders import CELLS
from xtalforge import Crystal, CrystalError
from xtalforge.crystal import resolve_space_group
from xtalforge.crystal.examples import sodium_chloride


@pytest.mark.parametrize("symbol", ["P 21/c", "P2_1/c", "P 1 21/c 1", "P21/c", "-P 2ybc", 14, "14"])
def test_space_group_notations(symbol):
    assert resolve_space_group(symbol).number == 14
    assert resolve_space_group(symbol).hall.strip() == "-P 2ybc"


MONO = (7.0, 8.0, 9.0, 90.0, 100.0, 90.0)


def test_non_standard_setting_is_kept():
    sg = resolve_space_group("P 1 21/n 1")
    assert sg.number == 14 and not sg.is_reference_setting()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"spacegroup": "P 7 7"}, "unknown space-group symbol"),
        ({"cell": (-7.0, 8.0, 9.0, 90.0, 100.0, 90.0)}, "edge a"),
        ({"cell": (7.0, 8.0, 9.0, 90.0, 190.0, 90.0)}, "angle beta"),
        ({"cell": (7.0, 8.0, 9.0, 150.0, 150.0, 150.0)}, "no positive volume"),
        ({"cell": (7.0, 8.0, 9.0, 90.0, 90.0, 90.0), "spacegroup": "F m -3 m"}, "does not fit"),
        ({"frac": [[0.1, float("nan"), 0.2]]}, "not finite"),
        ({"z": ["Xx"]}, "unknown element"),
        ({"occ": [1.5]}, "occupancy"),
        ({"occ": [0.0]}, "occupancy"),
        ({"u_iso": [-0.01]}, "negative"),
    ],
)
def test_invalid_crystals_raise_clear_errors(kwargs, field):
    args = {"cell": MONO, "spacegroup": "P 21/c", "z": [6], "frac": [[0.1, 0.2, 0.3]]}
    args.update(kwargs)
    with pytest.raises(CrystalError, match=field):
        Crystal(**args)


def test_composition_and_p1_expansion_count_special_positions():
    nacl = sodium_chloride()
    assert nacl.composition() == {"Na": 4.0, "Cl": 4.0}
    p1 = nacl.expand_p1()
    assert p1.n_atoms == 8 and p1.spacegroup.number == 1
    # every expanded position is a symmetry image of an ASU atom: Na on fcc (0,0,0) sites
    na = p1.frac[p1.z == 11]
    assert sorted(map(tuple, np.round(na, 6))) == sorted(
        [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
    )


@pytest.mark.parametrize(
    "sg",
    ["P 1", "P -1", "P 1 21/c 1", "C 1 2/c 1", "P 21 21 21", "P 4/m m m", "R -3 m:H", "F m -3 m"],
)
def test_metric_check_on_rotations_up_to_sign_is_the_full_condition(sg):
    """RᵀGR = G tested on the rotations up to sign without the identity decides as the
    condition over every rotation of the point group does, for cells that fit, cells off by
    more than the tolerance, and cells within it."""
    from xtalforge.crystal.cell import METRIC_TOL, _metric_fits_group, metric_tensor
    from xtalforge.crystal.symmetry import resolve_space_group, symmetry_info

    group = resolve_space_group(sg)
    rots = symmetry_info(group).rotations.astype(float)
    base = CELLS[group.crystal_system_str()]
    rng = np.random.default_rng(0)
    for scale in (0.0, 0.3 * METRIC_TOL, 5 * METRIC_TOL, 0.05):
        for _ in range(5):
            cell = tuple(np.array(base) * (1 + scale * rng.uniform(-1, 1, 6)))
            g = metric_tensor(cell)
            diff = np.einsum("sji,jk,skl->sil", rots, g, rots) - g
            want = bool(np.abs(diff).max() <= METRIC_TOL * np.abs(g).max())
            assert _metric_fits_group(cell, group) == want
    assert len(symmetry_info(group).metric_rotations) <= len(rots) - 1


@pytest.mark.parametrize(
    ("sg", "cell"),
    [
        ("P 1 21/c 1", (7.0, 8.0, 9.0, 90.0, 101.0, 90.0)),
        ("C 1 2/c 1", (12.0, 8.0, 9.0, 90.0, 105.0, 90.0)),
        ("P 4/m m m", (7.0, 7.0, 9.0, 90.0, 90.0, 90.0)),
        ("R -3 m:H", (7.0, 7.0, 15.0, 90.0, 90.0, 120.0)),
        ("F m -3 m", (8.0, 8.0, 8.0, 90.0, 90.0, 90.0)),
    ],
)
def test_site_symmetry_order_equals_the_orbit_of_gemmis_operations(sg, cell):
    """|G| / (copies of the atom in the cell) for general and special positions (centres,
    axes, planes of each group), the copies counted from gemmi's own operations."""
    from xtalforge.crystal.model import Crystal

    sites = [
        [0.123, 0.217, 0.331],
        [0.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.0, 0.27, 0.25],
        [0.31, 0.0, 0.0],
        [0.2, 0.2, 0.2],
        [0.25, 0.25, 0.25],
        [0.4, 0.0, 0.5],
        [0.1, 0.5, 0.3],
    ]
    crystal = Crystal(cell, sg, [6] * len(sites), sites)
    unit = gemmi.UnitCell(*cell)
    ops = list(
        gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(crystal.spacegroup.hall)).operations()
    )

    def copies(x: list[float]) -> int:  # distinct images of x in the cell, by gemmi's ops
        seen: list[np.ndarray] = []
        for op in ops:
            y = np.array(op.apply_to_xyz(x)) % 1.0
            d = [
                np.array(
                    unit.orthogonalize(gemmi.Fractional(*((y - q + 0.5) % 1.0 - 0.5))).tolist()
                )
                for q in seen
            ]
            if not any(np.linalg.norm(v) < 0.01 for v in d):
                seen.append(y)
        return len(seen)

    want = [len(ops) // copies(x) for x in sites]
    assert crystal.site_symmetry_order().tolist() == want
    assert any(w > 1 for w in want)
