"""Migration 0007 on a log written before the key: old events become `sha256` (legacy) and still
verify; new ones are keyed. On PostgreSQL the append-only trigger stays on throughout."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.audit.service import audit
from registry.auth.keys import load_audit_key
from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.migrate import upgrade
from registry.settings import Settings
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
        assert scheme.scalar_one() == "hmac-sha256"
    engine.dispose()
