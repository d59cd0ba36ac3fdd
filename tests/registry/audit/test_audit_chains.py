"""Per-tenant chains and the checkpoint digest: tampering with one tenant's chain or with the
checkpoints is found (globally and with ?tenant=), record_many is set-based, savepoints drop
their events, and appenders of different tenants do not wait on each other (PostgreSQL)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from registry.audit.anchors import anchor_key
from registry.audit.service import AuditItem, audit
from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker
from registry.migrate import upgrade
from registry.models import AuditChainHead, AuditEvent
from tests.conftest import World, create_database, require_env
from tests.registry.audit.calls import anchor as _anchor
from tests.registry.audit.calls import verify as _verify

ACTOR = Principal.local_operator()


def _sql(world: World, *statements: str) -> None:
    with world.stack.session() as session:
        if world.stack.kind == "postgres":  # as a superuser who switches the guard off
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for sql in statements:
            session.execute(text(sql))
        session.commit()


def _tenant_verify(world: World, slug: str) -> dict:
    resp = world.http.get(f"/v1/audit/verify?tenant={slug}", headers=world.auditor.headers)
    assert resp.status_code == 200, resp.text
    body: dict = resp.json()
    return body


@pytest.fixture
def acme(world: World) -> str:
    """platform: seq 1, 2; acme: 3 tenant.create, 4 client.create, 5..7 three updates;
    globex: 8, 9. Returns acme's chain."""
    tenant = world.tenant("acme")
    for i in range(3):
        resp = world.http.patch(
            "/v1/tenants/acme", json={"display_name": f"A{i}"}, headers=world.ops.headers
        )
        assert resp.status_code == 200, resp.text
    world.tenant("globex")
    return f"tenant:{tenant.tenant_id}"


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("sql", "bad_seq", "chain_seq", "reason"),
    [
        ("UPDATE audit_events SET target_id = 'x' WHERE seq = 5", 5, 3, "content"),
        ("DELETE FROM audit_events WHERE seq = 5", 6, 3, "gap"),
        # reorder: swap the positions of acme's 3rd and 4th events
        (
            "UPDATE audit_events SET chain_seq = 99 WHERE seq = 5; "
            "UPDATE audit_events SET chain_seq = 3 WHERE seq = 6; "
            "UPDATE audit_events SET chain_seq = 4 WHERE seq = 5",
            6,
            3,
            "does not link",
        ),
    ],
)
def test_tampering_with_one_tenants_chain(
    world: World, acme: str, sql: str, bad_seq: int, chain_seq: int, reason: str
) -> None:
    assert _verify(world)["ok"] and _tenant_verify(world, "acme")["ok"]
    _sql(world, *sql.split("; "))
    for result in (_verify(world), _tenant_verify(world, "acme")):
        assert result["ok"] is False, result
        assert (result["first_bad_chain"], result["first_bad_chain_seq"]) == (acme, chain_seq)
        assert result["first_bad_seq"] == bad_seq and reason in result["reason"]
    assert _tenant_verify(world, "globex")["ok"]  # another tenant's chain is untouched


@pytest.mark.smoke
def test_a_cut_tail_is_found_up_to_the_newest_checkpoint(world: World, acme: str) -> None:
    first = _anchor(world)
    assert first["entries"] == 3  # platform, acme, globex
    _sql(
        world,
        "DELETE FROM audit_events WHERE seq IN (6, 7)",
        f"UPDATE audit_chain_heads SET last_chain_seq = 3, last_seq = 5, last_hash = "
        f"(SELECT hash FROM audit_events WHERE seq = 5) WHERE chain = '{acme}'",
    )
    for result in (_verify(world), _tenant_verify(world, "acme")):
        assert result["ok"] is False and "cut from the end" in result["reason"], result
        assert (result["first_bad_chain"], result["first_bad_chain_seq"]) == (acme, 4)
    resp = world.http.post("/v1/audit/anchors", headers=world.ops.headers)
    assert resp.status_code == 409, resp.text


@pytest.mark.smoke
def test_checkpoint_rows_and_anchors_are_checked(world: World, acme: str) -> None:
    _anchor(world)
    world.http.patch("/v1/tenants/globex", json={"display_name": "G"}, headers=world.ops.headers)
    assert _anchor(world)["seq"] == 2
    result = _verify(world)
    assert result["ok"] and result["checkpoints"] == 2 and result["last_anchor_seq"] == 2
    _sql(world, f"UPDATE audit_checkpoint_entries SET chain_seq = 1 WHERE chain = '{acme}'")
    result = _verify(world)
    assert result["ok"] is False and "checkpoint 1 was altered" in result["reason"], result


def test_a_deleted_checkpoint_is_found(world: World, acme: str) -> None:
    _anchor(world)
    _sql(world, "DELETE FROM audit_checkpoint_entries", "DELETE FROM audit_checkpoints")
    result = _verify(world)
    assert result["ok"] is False and "cut from the end" in result["reason"], result
    assert "anchor" in result["reason"]
    assert _tenant_verify(world, "acme")["ok"] is False


def test_a_cut_anchor_chain_tail_is_found(world: World, acme: str) -> None:
    """The newest checkpoint row deleted (the marks too): the anchor still records it."""
    _anchor(world)
    world.http.patch("/v1/tenants/globex", json={"display_name": "G"}, headers=world.ops.headers)
    _anchor(world)
    assert world.stack.store.exists(anchor_key(2))
    _sql(
        world,
        "DELETE FROM audit_checkpoint_entries WHERE checkpoint_seq = 2",
        "DELETE FROM audit_checkpoints WHERE seq = 2",
    )
    result = _verify(world)
    assert result["ok"] is False and "checkpoints end at 1" in result["reason"], result


@pytest.mark.smoke
def test_record_many_groups_by_chain(world: World) -> None:
    tenants = [uuid.uuid4() for _ in range(10)]
    items = [AuditItem(ACTOR, "x.y", "t", str(i), tenants[i % 10]) for i in range(100)]
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with world.stack.session() as session:
        audit.record_many(session, items)
        event.listen(world.stack.engine, "before_cursor_execute", count)
        try:
            session.commit()
        finally:
            event.remove(world.stack.engine, "before_cursor_execute", count)
    if world.stack.kind == "postgres":  # lock + seqs, then insert + heads: two statements
        assert len([s for s in statements if "audit" in s]) == 2, statements
    result = _verify(world)
    assert result["ok"] and result["events_checked"] == 102 and result["chains"] == 11, result


@pytest.mark.smoke
def test_a_rolled_back_savepoint_drops_its_events(world: World) -> None:
    tid = uuid.uuid4()
    with world.stack.session() as session:
        audit.record(session, actor=ACTOR, action="kept", target_type="t", target_id="1")
        try:
            with session.begin_nested():
                audit.record(session, actor=ACTOR, action="dropped", target_type="t", target_id="2")
                raise RuntimeError("refused")
        except RuntimeError:
            pass
        with session.begin_nested():
            audit.record(
                session, actor=ACTOR, action="kept", target_type="t", target_id="3", tenant_id=tid
            )
        session.commit()
        actions = session.execute(select(AuditEvent.action).order_by(AuditEvent.seq)).scalars()
        assert list(actions)[-2:] == ["kept", "kept"]
    assert _verify(world)["ok"]


# ---- concurrency, on a database of its own (committed data, several connections)


@pytest.fixture(scope="module")
def pg() -> Iterator[sessionmaker[Session]]:
    url = create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_audit_chains_{os.getpid()}")
    upgrade(url)
    engine: Engine = make_engine(url, pool_size=12)
    yield make_sessionmaker(engine)
    engine.dispose()


def _append(sm: sessionmaker[Session], tenant: uuid.UUID, timeout_ms: int = 0) -> None:
    with sm() as s:
        if timeout_ms:
            s.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
        audit.record(s, actor=ACTOR, action="a", target_type="t", target_id="1", tenant_id=tenant)
        s.commit()


def test_a_held_tenant_head_does_not_block_another_tenant(pg: sessionmaker[Session]) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    _append(pg, a)
    _append(pg, b)
    with pg() as holder:  # holds tenant A's head, as an appender in its commit would
        holder.execute(
            select(AuditChainHead).where(AuditChainHead.chain == f"tenant:{a}").with_for_update()
        )
        _append(pg, b, timeout_ms=2000)  # not blocked
        with pytest.raises(OperationalError, match="lock timeout"):
            _append(pg, a, timeout_ms=300)  # A's appenders do wait
        holder.rollback()
    with pg() as s:
        assert audit.verify(s).ok


def test_one_tenants_appenders_serialize_gaplessly(pg: sessionmaker[Session]) -> None:
    tenant, others = uuid.uuid4(), [uuid.uuid4() for _ in range(8)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(25):
                with pg() as s:  # one tenant, and two chains in opposite orders: no deadlock
                    mine = [AuditItem(ACTOR, "b", "t", str(k), tenant)]
                    pair = [AuditItem(ACTOR, "c", "t", str(k), t) for t in others[k % 2 :: 1][:2]]
                    audit.record_many(s, mine + (pair if k % 2 else pair[::-1]))
                    s.commit()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with pg() as s:
        rows = s.execute(
            select(AuditEvent.chain_seq, AuditEvent.seq)
            .where(AuditEvent.chain == f"tenant:{tenant}")
            .order_by(AuditEvent.chain_seq)
        ).all()
        assert [r[0] for r in rows] == list(range(1, 201))
        assert [r[1] for r in rows] == sorted(r[1] for r in rows)  # seq grows along the chain
        result = audit.verify(s, tenant_id=tenant)
        assert result.ok and result.events_checked == 200, result
        assert audit.verify(s).ok
