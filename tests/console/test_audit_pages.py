"""GET /console/audit (filters, paging) and /console/audit/verify (ok, then a tampered event)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text, update

from registry.models import AuditEvent
from tests.conftest import Stack, World
from tests.console.conftest import ConsoleClient
from tests.console.eval_seed import by_id, rows
from tests.registry.audit.calls import restart_seq

pytestmark = pytest.mark.smoke

T0 = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _seq_from_one(stack: Stack) -> None:
    restart_seq(stack)  # a PostgreSQL sequence does not roll back with the test's data


@pytest.fixture
def seeded(world: World) -> World:
    """2 platform clients, then acme and globex (tenant.create + client.create each) = 6 events,
    placed a day apart from T0 so time filters have something to cut."""
    world.tenant("acme")
    world.tenant("globex")
    return world


def _spread(world: World) -> None:
    """Move occurred_at (past the append-only guard; the chain no longer verifies after)."""
    with world.stack.session() as session:
        if world.stack.kind == "postgres":
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for seq in range(1, 7):
            session.execute(
                update(AuditEvent)
                .where(AuditEvent.seq == seq)
                .values(occurred_at=T0 + dt.timedelta(days=seq))
            )
        session.commit()


def seqs(html: str) -> list[int]:
    _, _, table = by_id(html, "audit-events")
    return [int(s) for s in rows(table, "data-seq")]


def test_events_with_filters(seeded: World) -> None:
    c = ConsoleClient(seeded, seeded.auditor)
    resp = c.get("/console/audit")
    assert resp.status_code == 200, resp.text
    assert by_id(resp.text, "audit-filters") and by_id(resp.text, "verify")
    assert seqs(resp.text)[:6] == [1, 2, 3, 4, 5, 6]
    got = rows(by_id(resp.text, "audit-events")[2], "data-seq")
    assert "tenant.create" in got["3"] and "acme" in got["3"] and "tenant acme" in got["3"]
    assert "platform" in got["1"]
    acme = seqs(c.get("/console/audit", params={"tenant": "acme"}).text)
    assert acme == [3, 4]
    creates = c.get("/console/audit", params={"action": "tenant.create"}).text
    assert seqs(creates) == [3, 5]
    both = c.get("/console/audit", params={"action": "client.create", "tenant": "globex"}).text
    assert seqs(both) == [6]
    future = c.get("/console/audit", params={"since": "2100-01-01"}).text
    assert seqs(future) == [] and "No event matches" in future
    past = c.get("/console/audit", params={"until": "2000-01-01T10:00"}).text
    assert seqs(past) == []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert seqs(c.get("/console/audit", params={"since": today, "until": today}).text)[:6] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]


def test_time_range_cuts_where_it_should(seeded: World) -> None:
    _spread(seeded)
    c = ConsoleClient(seeded, seeded.ops)
    day = (T0 + dt.timedelta(days=3)).date().isoformat()
    assert seqs(c.get("/console/audit", params={"since": day, "until": day}).text) == [3]
    since = (T0 + dt.timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M")
    until = (T0 + dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    assert seqs(c.get("/console/audit", params={"since": since, "until": until}).text) == [3, 4]


def test_paging_by_after_seq(seeded: World) -> None:
    c = ConsoleClient(seeded, seeded.auditor)
    resp = c.get("/console/audit", params={"after_seq": 4})
    assert seqs(resp.text)[:2] == [5, 6] and 'id="first-page"' in resp.text
    assert 'id="next-page"' not in resp.text


def test_bad_input_pages(seeded: World) -> None:
    c = ConsoleClient(seeded, seeded.auditor)
    assert c.get("/console/audit", params={"tenant": "nope"}).status_code == 404
    for params in (
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"since": "2026-03-05", "until": "2026-03-01"},
        {"after_seq": "-1"},
    ):
        resp = c.get("/console/audit", params=params)
        assert resp.status_code == 422, params
        assert 'id="error-message"' in resp.text


def test_tenants_are_refused(seeded: World) -> None:
    acme = seeded.tenant("initech")
    c = ConsoleClient(seeded, acme)
    assert c.get("/console/audit").status_code == 403
    assert c.get("/console/audit/verify").status_code == 403


def test_verify_ok_then_a_tampered_event_is_shown(seeded: World) -> None:
    c = ConsoleClient(seeded, seeded.ops)
    resp = c.get("/console/audit/verify")
    assert resp.status_code == 200, resp.text
    attrs, words, _ = by_id(resp.text, "verify-result")
    assert "ok" in attrs["class"].split() and "6 events checked" in words
    with seeded.stack.session() as session:
        if seeded.stack.kind == "postgres":  # as a superuser who switches the guard off
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        session.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 4"))
        session.commit()
    resp = ConsoleClient(seeded, seeded.auditor).get("/console/audit/verify")
    assert resp.status_code == 200
    attrs, words, markup = by_id(resp.text, "verify-result")
    assert "bad" in attrs["class"].split() and attrs["data-bad-seq"] == "4"
    assert "seq 4" in words and "does not match its hash" in words
    assert "chain_seq 2" in words  # acme's second event
    link = by_id(markup, "bad-event")[0]["href"]
    assert link == "/console/audit?after_seq=3"
    assert seqs(c.get(link).text)[0] == 4
    # one tenant's chain: globex's is intact, acme's is not
    resp = c.get("/console/audit/verify", params={"tenant": "globex"})
    attrs, words, _ = by_id(resp.text, "verify-result")
    assert "ok" in attrs["class"].split() and "2 events checked in 1 chains" in words
    assert seqs(resp.text) == [5, 6]
    resp = c.get("/console/audit/verify", params={"tenant": "acme"})
    assert by_id(resp.text, "verify-result")[0]["data-bad-seq"] == "4"
    assert c.get("/console/audit/verify", params={"tenant": "nope"}).status_code == 404
