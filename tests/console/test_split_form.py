"""The adapter page's traffic split box and its form (POST /console/t/{t}/adapters/{n}/split):
the split with its versions, shares, rollback policy and last automatic decision; set and clear
with a reason, through the same service as the API (history, audit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.auth.principal import Principal
from registry.splits.rollback import check_splits
from tests.conftest import World
from tests.console.conftest import ConsoleClient
from tests.registry.splits.conftest import SplitWorld

PAGE = "/console/t/acme/adapters/support"
FORM = PAGE + "/split"


@pytest.fixture
def sw(world: World, tmp_path: Path) -> SplitWorld:
    return SplitWorld(world, tmp_path / "tiny-base")


def _box(html: str) -> str:
    start = html.index('id="split"')
    return html[start : html.index("</section>", start)]


def test_set_and_clear_from_the_console(sw: SplitWorld) -> None:
    c = ConsoleClient(sw.world, sw.acme)
    box = _box(c.get(PAGE).text)
    assert "No split: production takes all traffic." in box and 'id="split-form"' in box
    assert 'name="min_requests" size="5" value="50"' in box  # the default policy, prefilled
    resp = c.post(
        FORM,
        {
            "weights": "production=80, candidate=20",
            "reason": "  canary for v2  ",
            "min_requests": "100",
            "max_error_rate_increase": "0.02",
            "max_latency_ratio": "",
        },
    )
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == f"{PAGE}?done=split-set#split"
    split = sw.get()
    assert [(a["version"], a["weight"]) for a in split["arms"]] == [(1, 80), (2, 20)]
    assert split["rollback"] == {
        "min_requests": 100,
        "max_error_rate_increase": 0.02,
        "max_latency_ratio": None,
    }
    assert sw.get("/history")[-1]["reason"] == "canary for v2"
    page = c.get(PAGE + "?done=split-set").text
    assert "Traffic split set" in page
    box = _box(page)
    assert '<tr data-version="2"><td><span class="tag">candidate</span></td>' in box
    assert "80%" in box and "20%" in box
    assert "after 100 requests each: error rate +0.02, p95 latency x-" in box
    assert 'value="production=80,candidate=20"' in box and 'id="split-clear"' in box
    assert "not checked yet" in box

    resp = c.post(FORM, {"clear": "1", "reason": "seen enough"})
    assert resp.status_code == 303
    assert sw.get()["active"] is False and sw.get("/history")[-1]["reason"] == "seen enough"


@pytest.mark.parametrize(
    ("form", "needle"),
    [
        ({"weights": "production=90,candidate=20", "reason": "why not"}, "must sum to 100"),
        ({"weights": "production:90", "reason": "why not"}, "write each share as KEY=PERCENT"),
        ({"weights": "production=90,v9=10", "reason": "why not"}, "has no version 9"),
        ({"weights": "production=90,candidate=10", "reason": ""}, "give a reason"),
        ({"weights": "production=90,candidate=10", "reason": "why not",
          "max_latency_ratio": "fast"}, "latency: give a number"),
    ],
)  # fmt: skip
def test_refusals_are_pages_saying_why(sw: SplitWorld, form: dict[str, str], needle: str) -> None:
    c = ConsoleClient(sw.world, sw.acme)
    resp = c.post(FORM, form)
    assert resp.status_code == 422, resp.text
    assert 'id="error-message"' in resp.text and needle in resp.text
    assert sw.get("/history") == []


def test_the_box_shows_the_last_automatic_decision(sw: SplitWorld) -> None:
    policy = {"min_requests": 10, "max_error_rate_increase": 0.05, "max_latency_ratio": None}
    assert sw.put({"production": 90, "candidate": 10}, rollback=policy).status_code == 200
    sw.usage(1, ok=50, failed=0)
    sw.usage(2, ok=5, failed=5)
    check_splits(sw.opener(), actor=Principal.local_operator("worker:test"))
    box = _box(ConsoleClient(sw.world, sw.acme).get(PAGE).text)
    assert "No split: production takes all traffic." in box
    assert 'id="split-last-rollback"' in box and "v2 error rate 50.0% (5/10)" in box


def test_readers_see_the_box_without_the_form(sw: SplitWorld) -> None:
    assert sw.put({"production": 90, "candidate": 10}).status_code == 200
    box = _box(ConsoleClient(sw.world, sw.world.auditor).get(PAGE).text)
    assert "90%" in box and 'id="split-form"' not in box and 'id="split-clear"' not in box
    resp = ConsoleClient(sw.world, sw.world.auditor).post(FORM, {"clear": "1", "reason": "no"})
    assert resp.status_code == 403
    globex = sw.world.tenant("globex")
    resp = ConsoleClient(sw.world, globex).post(FORM, {"clear": "1", "reason": "no"})
    assert resp.status_code == 404
    assert sw.get()["active"] is True
