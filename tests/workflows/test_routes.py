"""`solve --model` / `solve --ai`: which shipped models a data set gets, that the route is
said, and that models that do not fit the data are refused naming the model and the limit."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.builders import real_data
from xtalforge.cli import app
from xtalforge.errors import XtalforgeError
from xtalforge.workflows.routes import AI_ATOMIC_D, ai_route, route_for_models
from xtalforge.workflows.solve import solve_file


def test_ai_routes_by_resolution():
    assert ai_route(1.0).name == "classical"
    assert f"≤ {AI_ATOMIC_D}" in ai_route(1.0).reason
    at_15 = ai_route(1.5)
    assert at_15.dm is not None and at_15.amplitude is not None
    assert set(at_15.models) == {"dm-1.5", "amp-1.5"}
    at_20 = ai_route(2.0)
    assert at_20.dm is not None and at_20.amplitude is None  # the amplitude model reads 1.5 Å
    far = ai_route(3.5)
    assert far.name == "classical" and "no shipped model covers" in far.reason


def test_models_that_do_not_fit_the_data_are_refused():
    with pytest.raises(XtalforgeError, match=r"amp-1\.5: an amplitude model extending data to"):
        route_for_models(["amp-1.5"], 2.0)
    with pytest.raises(XtalforgeError, match=r"dm-1\.5: a density-modification model for data"):
        route_for_models(["dm-1.5"], 1.0)
    with pytest.raises(XtalforgeError, match="neither a checkpoint file nor a shipped model"):
        route_for_models(["dm-7"], 1.5)


def test_solve_ai_runs_and_says_its_route(tmp_path):
    cif = real_data("cod") / "COD_2000642.cif"
    out = solve_file(cif, tmp_path / "s.res", d_min=1.6, ai=True, starts=2)
    assert out.route is not None and out.route.models == ["dm-1.5"]
    assert out.summary()[0][0] == "route" and "dm-1.5" in out.summary()[0][1]
    assert (tmp_path / "s.res").is_file() or out.structure is None
    args = ["solve", str(cif), "--d-min", "1.6", "--ai", "--method", "smtbx"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "t.res")])
    assert res.exit_code != 0 and "--model/--ai run charge flipping" in res.output
