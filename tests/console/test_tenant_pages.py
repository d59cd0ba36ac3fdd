"""Home (tenants), a tenant's page and an adapter's page: content, search, isolation, forms,
and the adapter page's cost with 100 versions."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from registry.adapters.repository import AdapterRepository
from registry.adapters.versions import NewVersion, versions
from registry.db import run_unit_of_work
from tests.conftest import World
from tests.console.conftest import ConsoleClient
from tests.registry.adapters.conftest import AdapterWorld

pytestmark = pytest.mark.smoke


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    return AdapterWorld(world, tmp_path / "tiny-base")


def rows(html: str, attr: str) -> list[str]:
    return re.findall(rf'<tr {attr}="([^"]+)"', html)


def test_home_lists_tenants_for_ops_with_search(world: World) -> None:
    world.tenant("acme")
    world.tenant("globex")
    c = ConsoleClient(world, world.ops)
    resp = c.get("/console")
    assert resp.status_code == 200, resp.text
    assert 'id="tenants"' in resp.text and 'id="search"' in resp.text
    assert rows(resp.text, "data-tenant") == ["acme", "globex"]
    assert rows(c.get("/console", params={"q": "GLOB"}).text, "data-tenant") == ["globex"]
    # a LIKE wildcard is taken literally
    assert rows(c.get("/console", params={"q": "%"}).text, "data-tenant") == []
    auditor = ConsoleClient(world, world.auditor)
    assert rows(auditor.get("/console").text, "data-tenant") == ["acme", "globex"]


def test_long_lists_are_cut_with_a_note(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.console import tenant_queries

    world.tenant("acme")
    world.tenant("globex")
    monkeypatch.setattr(tenant_queries, "LIMIT", 1)
    html = ConsoleClient(world, world.ops).get("/console").text
    assert rows(html, "data-tenant") == ["acme"] and 'id="cut"' in html


def test_home_sends_a_tenant_to_its_own_page(world: World) -> None:
    acme = world.tenant("acme")
    c = ConsoleClient(world, acme)
    resp = c.get("/console", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/console/t/acme"
    resp = c.get("/console/jobs", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/console/t/acme/jobs"


def test_tenant_page_lists_adapters_and_counts_on_home(aw: AdapterWorld, world: World) -> None:
    assert aw.upload().status_code == 201
    assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1, "first").status_code == 200
    c = ConsoleClient(world, aw.acme)
    resp = c.get("/console/t/acme")
    assert resp.status_code == 200, resp.text
    assert rows(resp.text, "data-adapter") == ["support"]
    row = resp.text.split('data-adapter="support"')[1].split("</tr>")[0]
    assert "/adapters/support/v/1" in row and "/adapters/support/v/2" in row
    assert rows(c.get("/console/t/acme", params={"q": "nope"}).text, "data-adapter") == []
    assert rows(c.get("/console/t/acme", params={"q": "SUPP"}).text, "data-adapter") == ["support"]
    home = ConsoleClient(world, world.ops).get("/console").text
    acme_row = home.split('data-tenant="acme"')[1].split("</tr>")[0]
    assert re.search(r'class="num">1<', acme_row)


def test_a_tenant_gets_404_for_another_tenants_pages(aw: AdapterWorld, world: World) -> None:
    globex = world.tenant("globex")
    c = ConsoleClient(world, globex)
    for path in (
        "/console/t/acme",
        "/console/t/acme/adapters/support",
        "/console/t/acme/jobs",
        "/console/t/acme/jobs/00000000-0000-0000-0000-000000000000",
    ):
        resp = c.get(path)
        assert resp.status_code == 404, path
        assert 'id="error-message"' in resp.text
    assert c.get("/console/t/globex/adapters/support").status_code == 404
    assert c.get("/console/t/globex").status_code == 200


def test_adapter_page_shows_versions_aliases_and_retraining(aw: AdapterWorld, world: World) -> None:
    for _ in range(3):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 2, "go").status_code == 200
    assert aw.set_alias("staging", 3, "try").status_code == 200
    evals = "/v1/tenants/acme/adapters/support/versions/{}/evals"
    for number, suite, loss, details in (
        (3, "heldout-0123456789ab", 1.25, {}),
        (2, "heldout-0123456789ab", 9.5, {"scored_for": "v3"}),  # v3's split, not v2's
        (1, "heldout-0123456789ab", 2.5, {}),
    ):
        scored = world.http.post(
            evals.format(number),
            json={"suite": suite, "metrics": {"eval_loss": loss}, "details": details},
            headers=aw.acme.headers,
        )
        assert scored.status_code == 201, scored.text
    ops = ConsoleClient(world, world.ops)
    resp = ops.get("/console/t/acme/adapters/support")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert rows(html, "data-version") == ["3", "2", "1"]
    assert 'href="/console/t/acme/adapters/support/v/3"' in html
    losses = re.findall(r'<td class="num">([^<]*)</td>\s*(?:<td>|</tr>)', html)
    assert losses[:3] == ["1.25", "-", "2.5"], losses
    aliases = html.split('id="aliases"')[1].split("</section>")[0]
    assert 'data-alias="production"' in aliases and 'data-alias="staging"' in aliases
    for box in ("schedule", "drift-policy"):
        assert re.search(rf'id="{box}">.*?none', html, re.S), box
    assert "No split: production takes all traffic." in html.split('id="split"')[1]
    assert "/adapters/support/evals" in html and "/adapters/support/drift" in html
    # ops may promote: v3 gets a Promote form, v1 (before production) the Roll back form
    assert 'id="promote-3"' in html and 'id="rollback"' in html and 'id="promote-2"' not in html
    action = "/console/t/acme/adapters/support/aliases/production"
    assert html.count(f'action="{action}"') == 2
    assert re.search(r'id="rollback".*?name="version" value="1"', html, re.S)

    api = world.http.put(
        "/v1/tenants/acme/adapters/support/schedule",
        json={"cron": "0 3 1 1,4,7,10 *", "timezone": "Europe/Paris"},
        headers=world.ops.headers,
    )
    assert api.status_code == 200, api.text
    api = world.http.put(
        "/v1/tenants/acme/adapters/support/drift-policy",
        json={"metric": "prompt_length_psi", "threshold": 0.25},
        headers=world.ops.headers,
    )
    assert api.status_code == 200, api.text
    html = ops.get("/console/t/acme/adapters/support").text
    schedule = html.split('id="schedule"')[1].split("</section>")[0]
    assert "0 3 1 1,4,7,10 *" in schedule and "Europe/Paris" in schedule
    assert "not run yet" in schedule and "UTC" in schedule.split("next due")[1]
    drift = html.split('id="drift-policy"')[1].split("</section>")[0]
    assert "prompt_length_psi" in drift and "0.25" in drift and "not checked yet" in drift


def test_auditor_sees_no_forms(aw: AdapterWorld, world: World) -> None:
    assert aw.upload().status_code == 201
    assert aw.upload().status_code == 201
    assert aw.set_alias("production", 2).status_code == 200
    html = ConsoleClient(world, world.auditor).get("/console/t/acme/adapters/support").text
    assert rows(html, "data-version") == ["2", "1"]
    assert 'class="action"' not in html and "Promote" not in html and "Roll back" not in html
    tenant_html = ConsoleClient(world, aw.acme).get("/console/t/acme/adapters/support").text
    assert 'id="rollback"' in tenant_html


@contextmanager
def counting(world: World) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = world.stack.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def add_versions(world: World, tenant_id: str, n: int) -> None:
    """`n` ready versions through the version service (as uploads make them, minus files)."""
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        repo = AdapterRepository(session, uuid.UUID(tenant_id))
        adapter = repo.get_by_name("support")
        assert adapter is not None
        for i in range(n):
            v = versions.allocate(
                session,
                adapter=adapter,
                new=NewVersion(
                    status="ready",
                    trigger="upload",
                    created_by="seed",
                    training_config=adapter.training_config,
                ),
            )
            v.manifest_digest = f"{i:064x}"
        session.flush()


def test_adapter_page_with_100_versions_is_fast_and_bounded(aw: AdapterWorld, world: World) -> None:
    assert aw.acme.tenant_id is not None
    add_versions(world, aw.acme.tenant_id, 3)
    assert aw.set_alias("production", 2).status_code == 200
    c = ConsoleClient(world, world.ops)
    path = "/console/t/acme/adapters/support"
    assert c.get(path).status_code == 200
    with counting(world) as few:
        assert c.get(path).status_code == 200
    add_versions(world, aw.acme.tenant_id, 100)
    assert c.get(path).status_code == 200  # warm-up
    with counting(world) as many:
        html = c.get(path).text
    assert len(rows(html, "data-version")) == 103
    assert len(many) == len(few), (len(few), len(many))
    assert len(many) <= 15, many
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert c.get(path).status_code == 200
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.3, times
