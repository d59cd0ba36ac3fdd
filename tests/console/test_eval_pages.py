"""GET /console/t/{t}/adapters/{n}/evals: leaderboards per pinned suite and regressed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import World
from tests.console.conftest import ConsoleClient
from tests.console.eval_seed import by_id, pin, rows, score, upload_suite
from tests.registry.adapters.conftest import AdapterWorld

pytestmark = pytest.mark.smoke

PAGE = "/console/t/acme/adapters/support/evals"


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    """v1 (production), v2 (never scored), v3; suite golden (4 rows) pinned; held-out of v3."""
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    for _ in range(3):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1, "first").status_code == 200
    acme = aw.acme
    golden = upload_suite(world, "acme", acme.headers, "golden", 4)
    upload_suite(world, "acme", acme.headers, "tools", 2)
    pin(world, "acme", acme.headers, "support", "golden", "tools")
    score(world, "acme", "support", 1, golden, [True, True, True, False])
    score(world, "acme", "support", 3, golden, [True, False, False, True])
    score(world, "acme", "support", 1, golden, [False, False, True, False], subject="base_model")
    score(
        world, "acme", "support", 3, None, suite="heldout-0123456789ab", metrics={"eval_loss": 1.25}
    )
    score(
        world,
        "acme",
        "support",
        3,
        None,
        suite="heldout-0123456789ab",
        metrics={"eval_loss": 2.5},
        subject="base_model",
    )
    return aw


def test_leaderboard_per_suite_with_production_and_base_model(aw: AdapterWorld) -> None:
    resp = ConsoleClient(aw.world, aw.acme).get(PAGE)
    assert resp.status_code == 200, resp.text
    _, _, golden = by_id(resp.text, "leaderboard-golden")
    got = rows(golden, "data-version")
    assert set(got) == {"1", "2", "3"}  # newest first, every ready version listed
    assert "0.75" in got["1"] and "production" in got["1"]
    assert "0.5" in got["3"] and "production" not in got["3"]
    assert "not scored" in got["2"]
    assert "0.25" in rows(golden, "data-subject")["base_model"]
    assert golden.index('data-version="3"') < golden.index('data-version="1"')
    _, text, _ = by_id(resp.text, "leaderboard-tools")
    assert "not scored" in text  # pinned but nothing scored on it yet
    _, held, _ = by_id(resp.text, "leaderboard-heldout")
    assert "1.25" in held and "2.5" in held


def test_regressions_default_to_production_against_the_newest(aw: AdapterWorld) -> None:
    resp = ConsoleClient(aw.world, aw.acme).get(PAGE)
    _, text, markup = by_id(resp.text, "regressions")
    assert "from v1 to v3" in text
    got = rows(markup, "data-row")
    assert set(got) == {"1", "2"}  # passed on v1, fail on v3; row 3 improved, row 0 held
    assert "question number 1" in got["1"] and "contains" in got["1"] and "answer 1" in got["1"]
    assert "v1 says answer 1" in got["1"] and "v3 says nothing 1" in got["1"]
    assert "pass" in got["1"] and "fail" in got["1"]
    assert "2 of 4 rows" in text
    assert "v1 and v3 not scored" in text or "not scored row by row" in text  # the tools suite
    _, metrics, _ = by_id(resp.text, "compare-metrics")
    assert "pass_rate" in metrics and "-0.25" in metrics


def test_regressions_between_chosen_versions(aw: AdapterWorld) -> None:
    c = ConsoleClient(aw.world, aw.acme)
    resp = c.get(PAGE, params={"a": 3, "b": 1})
    assert resp.status_code == 200
    _, text, markup = by_id(resp.text, "regressions")
    assert "from v3 to v1" in text and set(rows(markup, "data-row")) == {"3"}
    resp = c.get(PAGE, params={"a": 1, "b": 2})  # v2 was never scored
    _, text, markup = by_id(resp.text, "regressions")
    assert rows(markup, "data-row") == {} and "v2 not scored" in text


@pytest.mark.parametrize(
    ("params", "status"),
    [({"a": 9}, 404), ({"b": 7, "a": 1}, 404), ({"a": 1, "b": 1}, 422), ({"a": "x"}, 422)],
)
def test_versions_must_be_this_adapters(
    aw: AdapterWorld, params: dict[str, object], status: int
) -> None:
    resp = ConsoleClient(aw.world, aw.acme).get(PAGE, params=params)
    assert resp.status_code == status and 'id="error-message"' in resp.text


def test_who_may_look(aw: AdapterWorld) -> None:
    assert ConsoleClient(aw.world, aw.world.auditor).get(PAGE).status_code == 200
    assert ConsoleClient(aw.world, aw.world.ops).get(PAGE).status_code == 200
    globex = aw.world.tenant("globex")
    assert ConsoleClient(aw.world, globex).get(PAGE).status_code == 404
    resp = ConsoleClient(aw.world, aw.acme).get("/console/t/acme/adapters/nope/evals")
    assert resp.status_code == 404


def test_an_adapter_without_suites_or_scores(world: World, tmp_path: Path) -> None:
    aw = AdapterWorld(world, tmp_path / "base")
    resp = ConsoleClient(world, aw.acme).get(PAGE)
    assert resp.status_code == 200
    assert by_id(resp.text, "no-suites") and "Nothing to compare" in resp.text
