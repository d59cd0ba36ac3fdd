from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import World
from tests.registry.audit.calls import verify as _verify


def _tamper(world: World, sql: str) -> None:
    with world.stack.session() as session:
        if world.stack.kind == "postgres":  # as a superuser who switches the guard off
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        session.execute(text(sql))
        session.commit()


@pytest.mark.smoke
def test_every_mutation_is_chained_and_verifies(world: World) -> None:
    acme = world.tenant("acme")
    world.http.post(
        "/v1/tenants/acme/datasets",
        headers=acme.headers,
        data={"name": "d"},
        files={"file": ("d.jsonl", b'{"prompt": "a", "completion": "b"}\n')},
    )
    events = world.http.get("/v1/audit/events", headers=world.auditor.headers).json()["items"]
    actions = [e["action"] for e in events]
    # two platform clients, then the tenant, its client, its dataset
    assert actions == [
        "client.create",
        "client.create",
        "tenant.create",
        "client.create",
        "dataset.create",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    # one chain per tenant (and the platform's), each gapless and linked on its own
    acme_chain = f"tenant:{acme.tenant_id}"
    assert [e["chain"] for e in events] == ["platform"] * 2 + [acme_chain] * 3
    assert [e["chain_seq"] for e in events] == [1, 2, 1, 2, 3]
    for chain in (events[:2], events[2:]):
        assert chain[0]["prev_hash"] == "0" * 64
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(chain, chain[1:], strict=False))
    dataset_event = events[-1]
    assert dataset_event["actor"] == acme.client_id and dataset_event["actor_role"] == "tenant"
    assert dataset_event["tenant_id"] == acme.tenant_id
    assert dataset_event["details"]["rows"] == 1
    assert _verify(world) == {
        "ok": True,
        "events_checked": 5,
        "first_bad_seq": None,
        "reason": None,
        "legacy_events": 0,
        "anchors": 0,
        "last_anchor_seq": None,
        "object_lock": False,
        "first_bad_chain": None,
        "first_bad_chain_seq": None,
        "chains": 2,
        "checkpoints": 0,
        "last_checkpoint_seq": None,
        "legacy_anchors": 0,
        "tenant": None,
    }


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("sql", "bad_seq", "reason"),
    [
        ("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 3", 3, "content"),
        ("UPDATE audit_events SET details = '{\"rows\": 999}' WHERE seq = 4", 4, "content"),
        # chains: platform = seq 1, 2; acme = 3, 4; globex = 5, 6. A deleted event's own seq
        # is gone: a gap points at the event found in its place, a cut tail at the head's tip.
        ("DELETE FROM audit_events WHERE seq = 3", 4, "gap"),
        ("DELETE FROM audit_events WHERE seq = 2", 2, "end"),
        ("DELETE FROM audit_events WHERE seq = 6", 6, "end"),
    ],
)
def test_editing_or_deleting_a_row_fails_verification(
    world: World, sql: str, bad_seq: int, reason: str
) -> None:
    world.tenant("acme")
    world.tenant("globex")  # 2 platform clients + 2 x (tenant, client) = 6 events
    assert _verify(world)["ok"]
    _tamper(world, sql)
    result = _verify(world)
    assert result["ok"] is False and result["first_bad_seq"] == bad_seq
    assert reason in result["reason"]


def test_postgres_refuses_updates_to_the_audit_table(world: World) -> None:
    world.tenant("acme")
    with world.stack.session() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE audit_events SET actor = 'x' WHERE seq = 1"))
        session.flush()


def test_filters_and_pagination(world: World) -> None:
    world.tenant("acme")
    world.tenant("globex")
    h = world.auditor.headers
    acme_events = world.http.get("/v1/audit/events?tenant=acme", headers=h).json()["items"]
    assert {e["target_id"] for e in acme_events} >= {"acme"}
    assert all(e["tenant_id"] == acme_events[0]["tenant_id"] for e in acme_events)
    creates = world.http.get("/v1/audit/events?action=tenant.create", headers=h).json()
    assert [e["target_id"] for e in creates["items"]] == ["acme", "globex"]
    page1 = world.http.get("/v1/audit/events?limit=4", headers=h).json()
    assert len(page1["items"]) == 4 and page1["next_after_seq"] == 4
    page2 = world.http.get(
        f"/v1/audit/events?limit=4&after_seq={page1['next_after_seq']}", headers=h
    ).json()
    assert [e["seq"] for e in page2["items"]] == [5, 6] and page2["next_after_seq"] is None
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    resp = world.http.get("/v1/audit/events", params={"since": future}, headers=h)
    assert resp.json()["items"] == []
    resp = world.http.get("/v1/audit/events?tenant=nobody", headers=h)
    assert resp.status_code == 404
