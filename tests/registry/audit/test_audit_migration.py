"""Migration 0007 on a log written before the key: old events become `sha256` (legacy) and still
verify; new ones are keyed. On PostgreSQL the append-only trigger stays on throughout."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.audit.anchors import PREFIX, anchor_key, encode_anchor
from registry.audit.service import audit, compute_hash
from registry.auth.keys import load_audit_key
from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, run_unit_of_work, utcnow
from registry.migrate import upgrade
from registry.models import AuditEvent
from registry.models.audit_event import HashScheme
from registry.settings import Settings
from registry.storage import open_store
from tests.conftest import create_database, require_env


def _write_legacy_events(url: str, n: int) -> None:
    """Events as the code before 0007 wrote them: plain SHA-256 over the canonical fields."""
    engine = make_engine(url)
    prev = "0" * 64
    with engine.begin() as conn:
        for seq in range(1, n + 1):
            at = dt.datetime(2026, 1, 1, 0, 0, seq, tzinfo=dt.UTC)
            body = {
                "seq": seq,
                "occurred_at": at.isoformat(timespec="microseconds"),
                "actor": "local",
                "actor_role": "ops",
                "tenant_id": None,
                "action": "client.create",
                "target_type": "client",
                "target_id": f"c{seq}",
                "details": {},
                "prev_hash": prev,
            }
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = hashlib.sha256(canonical.encode()).hexdigest()
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, occurred_at, actor, actor_role, tenant_id, "
                    "action, target_type, target_id, details, prev_hash, hash) VALUES (:seq, :at, "
                    "'local', 'ops', NULL, 'client.create', 'client', :tid, '{}', :prev, :hash)"
                ),
                {"seq": seq, "at": at, "tid": f"c{seq}", "prev": prev, "hash": digest},
            )
            prev = digest
        conn.execute(
            text("UPDATE audit_chain_head SET last_seq = :n, last_hash = :h"), {"n": n, "h": prev}
        )
    engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'legacy.db'}"
    admin = require_env("LORAPLEX_TEST_PG_URL")
    return create_database(admin, f"lpx_audit_legacy_{os.getpid()}")


def test_legacy_events_verify_after_0007_and_new_ones_are_keyed(url: str, tmp_path: Path) -> None:
    audit.use_key(load_audit_key(Settings(home=tmp_path / "home")))  # as create_app does
    upgrade(url, "0006")
    _write_legacy_events(url, 3)
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        result = audit.verify(session)
        assert result.ok and result.events_checked == 3 and result.legacy_events == 3, result
    for session in run_unit_of_work(sessions):
        audit.record(
            session, actor=Principal.local_operator(), action="x", target_type="t", target_id="1"
        )
    with sessions() as session:
        result = audit.verify(session)
        assert result.ok and result.events_checked == 4 and result.legacy_events == 3, result
        scheme = session.execute(text("SELECT hash_scheme FROM audit_events WHERE seq = 4"))
        assert scheme.scalar_one() == "hmac-chain"  # a per-chain event since 0013
    engine.dispose()


def test_keyed_global_chain_and_its_anchor_verify_after_0013(url: str, tmp_path: Path) -> None:
    """Events and an anchor as 0007..0012 wrote them (one keyed global chain) become the frozen
    legacy chain: they verify, new events go to per-tenant chains, checkpoints pin both."""
    key = load_audit_key(Settings(home=tmp_path / "home"))
    audit.use_key(key)
    (tmp_path / "store").mkdir()
    store = open_store(f"file://{tmp_path / 'store'}")
    upgrade(url, "0012")
    engine = make_engine(url)
    prev = "0" * 64
    with engine.begin() as conn:
        for seq in range(1, 4):
            at = dt.datetime(2026, 12, 1, 0, 0, seq, tzinfo=dt.UTC)
            event = AuditEvent(
                seq=seq,
                occurred_at=at,
                actor="local",
                actor_role="ops",
                tenant_id=None,
                action="client.create",
                target_type="client",
                target_id=f"c{seq}",
                details={},
                prev_hash=prev,
                hash_scheme=HashScheme.HMAC_SHA256,
            )
            prev = compute_hash(event, key)
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, occurred_at, actor, actor_role, tenant_id, "
                    "action, target_type, target_id, details, prev_hash, hash, hash_scheme) VALUES "
                    "(:seq, :at, 'local', 'ops', NULL, 'client.create', 'client', :tid, '{}', "
                    ":prev, :hash, 'hmac-sha256')"
                ),
                {"seq": seq, "at": at, "tid": f"c{seq}", "prev": event.prev_hash, "hash": prev},
            )
        conn.execute(text("UPDATE audit_chain_head SET last_seq = 3, last_hash = :h"), {"h": prev})
    store.put_new(anchor_key(3, PREFIX), encode_anchor(key, 3, prev, utcnow(), PREFIX))
    upgrade(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        result = audit.verify(session, store=store)
        assert result.ok and result.events_checked == 3 and result.legacy_anchors == 1, result
    for session in run_unit_of_work(sessions):
        audit.record(
            session,
            actor=Principal.local_operator(),
            action="x",
            target_type="t",
            target_id="1",
            tenant_id=uuid.uuid4(),
        )
    with sessions() as session:
        made = audit.anchor(session, store=store, retain_days=1)
        assert made.created and made.entries == 2  # the legacy head and the tenant's
    with sessions() as session:
        result = audit.verify(session, store=store)
        assert result.ok and result.events_checked == 4 and result.chains == 2, result
        assert (
            session.execute(
                text("SELECT seq FROM audit_events WHERE chain != 'legacy'")
            ).scalar_one()
            == 4
        )
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_events SET target_id = 'forged' WHERE seq = 2"))
    with sessions() as session:
        result = audit.verify(session, store=store)
        assert not result.ok and result.first_bad_seq == 2 and result.first_bad_chain == "legacy"
    engine.dispose()
