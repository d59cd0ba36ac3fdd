"""The review's attacks on the audit chain by someone with database write access (PostgreSQL,
append-only trigger switched off as a superuser would): both must fail verification."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, text, update

from registry.audit.service import _canonical
from registry.models import AuditChainHead, AuditEvent
from tests.conftest import World
from tests.registry.audit.calls import anchor as _anchor
from tests.registry.audit.calls import verify as _verify


def test_cutting_the_tail_and_moving_the_head_back_is_detected(world: World) -> None:
    world.tenant("acme")  # 2 platform clients, the tenant, its client: seq 1..4
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
    result = _verify(world)
    assert result["ok"] is False, result
    assert result["first_bad_seq"] == 4 and result["first_bad_chain_seq"] == 2
    assert result["first_bad_chain"] == tip.chain
    assert "checkpoint 1" in result["reason"] and "cut" in result["reason"]


def test_rewriting_an_event_and_rehashing_the_rest_with_sha256_is_detected(world: World) -> None:
    world.tenant("acme")
    _anchor(world)
    with world.stack.session() as session:
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        events = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        events[1].actor = "someone-else"
        prev = events[0].hash
        for event in events[1:]:  # recompute every later link with plain SHA-256
            event.prev_hash = prev
            event.hash = prev = hashlib.sha256(_canonical(event)).hexdigest()
        session.flush()
        session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.chain == events[-1].chain)
            .values(last_seq=events[-1].seq, last_hash=prev)
        )
        session.commit()
    result = _verify(world)
    assert result["ok"] is False, result
    assert result["first_bad_seq"] == 2
    assert "does not match" in result["reason"]
