"""Route changes are announced on PostgreSQL (LISTEN/NOTIFY, issue 19): on commit, never on
rollback; by alias moves, new versions, version status changes and archived adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from registry.db import run_unit_of_work
from registry.notify import announce
from registry.training.lifecycle import lifecycle
from tests.registry.adapters.conftest import AdapterWorld
from tests.registry.live_db import Heard, LiveDB, live_db
from tests.registry.training.conftest import JobWorld


@pytest.fixture
def live(pg_admin_url: str, s3_endpoint: str, tmp_path: Path) -> Iterator[LiveDB]:
    with live_db(pg_admin_url, s3_endpoint, tmp_path) as db:
        yield db


@pytest.fixture
def heard(live: LiveDB) -> Iterator[Heard]:
    listener = Heard(live.url)
    yield listener
    listener.close()


def test_an_announcement_is_delivered_on_commit_and_never_on_rollback(
    pg_url: str, pg_engine: Engine
) -> None:
    heard = Heard(pg_url)
    tenant, adapter = uuid.uuid4(), uuid.uuid4()
    try:
        with Session(pg_engine) as session:
            announce(session, tenant, adapter)
            announce(session, tenant, adapter)  # the same twice in one transaction: once
            assert heard.drain(0.2) == []  # not before the commit
            session.commit()
        assert heard.drain() == [{"tenant": str(tenant), "adapter": str(adapter)}]
        with Session(pg_engine) as session:
            announce(session, tenant, None)
            session.rollback()
        assert heard.drain() == []
    finally:
        heard.close()


def test_sqlite_announces_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with Session(engine) as session:
        announce(session, uuid.uuid4(), uuid.uuid4())  # no pg_notify there: a no-op
        session.commit()
    engine.dispose()


def test_alias_moves_new_versions_and_archiving_are_announced(
    live: LiveDB, heard: Heard, tmp_path: Path
) -> None:
    aw = AdapterWorld(live.world, tmp_path / "tiny-base")
    adapter = aw.http.get("/v1/tenants/acme/adapters/support", headers=aw.acme.headers).json()
    change = [{"tenant": aw.acme.tenant_id, "adapter": adapter["id"]}]
    heard.drain(0.1)
    assert aw.upload().status_code == 201 and heard.drain() == change  # `support@v1` exists
    assert aw.upload().status_code == 201 and heard.drain() == change
    assert aw.set_alias("production", 1).status_code == 200 and heard.drain() == change
    assert aw.set_alias("production", 1).status_code == 200 and heard.drain() == []  # no move
    assert aw.set_alias("production", 9).status_code == 404 and heard.drain() == []  # refused
    assert aw.set_alias("production", 2).status_code == 200 and heard.drain() == change
    resp = aw.http.delete(
        "/v1/tenants/acme/adapters/support/aliases/production",
        params={"reason": "pulled"},
        headers=aw.acme.headers,
    )
    assert resp.status_code == 204, resp.text
    assert heard.drain() == change
    resp = aw.http.post("/v1/tenants/acme/adapters/support/archive", headers=aw.acme.headers)
    assert resp.status_code == 200, resp.text
    assert heard.drain() == change


def test_version_status_changes_are_announced(live: LiveDB, heard: Heard, tmp_path: Path) -> None:
    jw = JobWorld(live.world, tmp_path / "tiny-base")
    sessions = live.world.stack.app.state.sessionmaker
    first, second = jw.create_job().json(), jw.create_job().json()
    found = heard.drain()
    assert len(found) == 2 and {f["tenant"] for f in found} == {jw.acme.tenant_id}  # queued
    adapter = found[0]["adapter"]
    change = [{"tenant": jw.acme.tenant_id, "adapter": adapter}]
    for session in run_unit_of_work(sessions):
        claim = lifecycle.claim(
            session, job_id=uuid.UUID(first["id"]), worker="w", lease_seconds=60
        )
        assert claim.job is not None
    assert heard.drain() == change  # queued -> training
    for session in run_unit_of_work(sessions):
        job = claim.job
        session.add(job)
        lifecycle.mark_ready(session, job=job)
        lifecycle.succeed(session, job=job, result={})
    assert heard.drain() == change  # training -> ready
    for session in run_unit_of_work(sessions):
        claim = lifecycle.claim(
            session, job_id=uuid.UUID(second["id"]), worker="w", lease_seconds=60
        )
        assert claim.job is not None
    heard.drain()
    for session in run_unit_of_work(sessions):
        job = session.merge(claim.job)
        assert not lifecycle.fail(session, job=job, error="boom", retryable=False)
    assert heard.drain() == change  # training -> failed
