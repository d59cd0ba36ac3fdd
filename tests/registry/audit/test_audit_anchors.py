"""Keyed chain and anchors: the on-demand and periodic anchor, wrong keys, legacy events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update

from registry.app import create_app
from registry.audit.anchors import anchor_key
from registry.audit.service import audit, compute_hash
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import run_unit_of_work
from registry.migrate import upgrade
from registry.models import AuditChainHead, AuditEvent
from registry.models.audit_event import HashScheme
from registry.settings import Settings
from registry.tasks import AUDIT_ANCHOR, periodic_tasks
from tests.conftest import World
from tests.registry.audit.calls import anchor as _anchor
from tests.registry.audit.calls import verify as _verify
from workers.inprocess import InProcessQueue


@pytest.fixture
def other_key() -> Iterator[None]:
    saved = audit.key
    audit.use_key(b"k" * 32)
    yield
    audit.use_key(saved)


@pytest.mark.smoke
def test_anchor_on_demand_is_write_once_and_idempotent(world: World) -> None:
    world.tenant("acme")  # seq 1..4: the platform's chain and acme's
    first = _anchor(world)  # checkpoint 1 records both heads
    assert (first["created"], first["seq"], first["entries"]) == (True, 1, 2)
    assert first["key"] == anchor_key(1) == "audit/checkpoints/00000000000000000001.json"
    body = json.loads(world.stack.store.get_bytes(anchor_key(1)))
    assert body["seq"] == 1 and body["hash"] == first["hash"] and len(body["mac"]) == 64
    again = _anchor(world)
    assert again["created"] is False and again["key"] == anchor_key(1)
    world.tenant("globex")  # seq 5..6: only globex's chain changed
    assert (_anchor(world)["seq"], _anchor(world)["entries"]) == (2, 0)
    result = _verify(world)
    assert result["ok"] is True, result
    assert (result["anchors"], result["last_anchor_seq"], result["object_lock"]) == (2, 2, False)
    assert (result["checkpoints"], result["chains"]) == (2, 3)


def test_anchoring_a_cut_chain_is_refused(world: World) -> None:
    world.tenant("acme")
    _anchor(world)
    with world.stack.session() as session:
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        session.execute(text("DELETE FROM audit_events WHERE seq = 4"))
        tip = session.execute(select(AuditEvent).where(AuditEvent.seq == 3)).scalar_one()
        session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.chain == tip.chain)
            .values(last_chain_seq=1, last_seq=3, last_hash=tip.hash)
        )
        session.commit()
    resp = world.http.post("/v1/audit/anchors", headers=world.ops.headers)
    assert resp.status_code == 409 and "contradicts the checkpoints" in resp.json()["detail"]


def test_only_ops_may_anchor(world: World) -> None:
    resp = world.http.post("/v1/audit/anchors", headers=world.auditor.headers)
    assert resp.status_code == 403


@pytest.mark.smoke
def test_verify_with_a_wrong_key_fails(world: World, other_key: None) -> None:
    result = _verify(world)
    assert result["ok"] is False and result["first_bad_seq"] == 1
    assert "LORAPLEX_AUDIT_KEY_FILE" in result["reason"]


def test_an_anchor_under_another_key_fails_verification(world: World) -> None:
    world.tenant("acme")
    saved = audit.key
    audit.use_key(b"k" * 32)
    try:  # an anchor forged by someone without the key
        world.http.post("/v1/audit/anchors", headers=world.ops.headers)
    finally:
        audit.use_key(saved)
    result = _verify(world)
    assert result["ok"] is False
    assert "MAC does not match" in result["reason"] and anchor_key(1) in result["reason"]


def _rechain(world: World, scheme_of: dict[int, HashScheme]) -> None:
    """Rewrite the log into the legacy global chain as a deployment from before per-tenant
    chains and the key (or a downgrading attacker) would have written it."""
    with world.stack.session() as session:
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        events = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        prev = "0" * 64
        for event in events:
            event.hash_scheme = scheme_of.get(event.seq, HashScheme.HMAC_SHA256)
            event.chain, event.chain_seq, event.prev_hash = "legacy", None, prev
            keyed = event.hash_scheme == HashScheme.HMAC_SHA256
            event.hash = prev = compute_hash(event, audit.key if keyed else None)
        session.flush()
        session.execute(delete(AuditChainHead))
        last = events[-1].seq
        session.add(
            AuditChainHead(chain="legacy", last_chain_seq=last, last_seq=last, last_hash=prev)
        )
        session.commit()


def test_legacy_unkeyed_events_are_accepted_before_the_first_keyed_one(world: World) -> None:
    world.tenant("acme")
    _rechain(world, {1: HashScheme.SHA256, 2: HashScheme.SHA256})
    result = _verify(world)
    assert result["ok"] is True and result["legacy_events"] == 2, result


def test_an_unkeyed_event_after_a_keyed_one_is_a_downgrade(world: World) -> None:
    world.tenant("acme")
    _rechain(world, {1: HashScheme.SHA256, 3: HashScheme.SHA256, 4: HashScheme.SHA256})
    result = _verify(world)
    assert result["ok"] is False and result["first_bad_seq"] == 3
    assert "downgraded" in result["reason"]


def test_periodic_tasks_include_the_anchor(tmp_path: Path) -> None:
    every = {name: s for _, name, s in periodic_tasks(Settings(home=tmp_path))}
    assert every[AUDIT_ANCHOR] == 600.0
    off = Settings(home=tmp_path, audit_anchor_interval_seconds=0)
    assert AUDIT_ANCHOR not in {name for _, name, _ in periodic_tasks(off)}


def test_the_embedded_queue_anchors_periodically(tmp_path: Path) -> None:
    """The real path: the app's in-process queue runs beat's periodic anchor task."""
    settings = Settings(home=tmp_path / "home", audit_anchor_interval_seconds=1, log_json=True)
    settings.home_dir.mkdir()
    upgrade(settings.resolved_database_url)
    queue = InProcessQueue(settings)
    app = create_app(settings, queue=queue)
    for session in run_unit_of_work(app.state.sessionmaker):
        clients.create(session, actor=Principal.local_operator(), role=Role.OPS)
    with TestClient(app):  # the lifespan starts the queue's periodic threads
        deadline = time.monotonic() + 20
        while not app.state.store.exists(anchor_key(1)) and time.monotonic() < deadline:
            time.sleep(0.1)
    app.state.engine.dispose()
    assert app.state.store.exists(anchor_key(1))
    with app.state.sessionmaker() as session:
        result = audit.verify(session, store=app.state.store)
    assert result.ok and result.anchors == 1 and result.last_anchor_seq == 1
