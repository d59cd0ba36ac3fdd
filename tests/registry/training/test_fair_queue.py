"""The fair claim on a database of its own (committed rows, concurrent claimers): priority,
round robin across tenants, the tenant cap, the adapter rule, retry backoff, exactly once;
and the doorbells (`wake`, `ring`, the reaper)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from registry.db import make_engine, make_sessionmaker, run_unit_of_work, utcnow
from registry.migrate import upgrade
from registry.models import TrainingJob
from registry.settings import Settings
from registry.tasks import TRAIN
from registry.training.lifecycle import Claim, lifecycle
from registry.training.queueing import priority_for, ring, wake
from tests.conftest import RecordingQueue, create_database
from tests.registry.training.fair_seed import FairSeed

SETTINGS = Settings(training_tenant_concurrency=100)  # the cap apart: round robin alone


def _engine(url: str) -> Engine:
    upgrade(url)
    return make_engine(url) if url.startswith("sqlite") else make_engine(url, pool_size=10)


def _pg_url(request: pytest.FixtureRequest) -> str:
    admin: str = request.getfixturevalue("pg_admin_url")
    return create_database(admin, f"loraplex_fair_{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    sqlite = f"sqlite:///{tmp_path / 'fair.db'}"
    eng = _engine(sqlite if request.param == "sqlite" else _pg_url(request))
    yield eng
    eng.dispose()


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Concurrent claimers need PostgreSQL (SQLite has a single writer)."""
    eng = _engine(_pg_url(request))
    yield eng
    eng.dispose()


def claim(engine: Engine, worker: str = "w", cap: int = 100) -> Claim:
    for session in run_unit_of_work(make_sessionmaker(engine)):
        out = lifecycle.claim_next(session, worker=worker, lease_seconds=60, tenant_cap=cap)
    return out


def claimed_ids(engine: Engine, count: int, cap: int = 100) -> list[uuid.UUID]:
    out = []
    for _ in range(count):
        job = claim(engine, cap=cap).job
        assert job is not None
        out.append(job.id)
    return out


def finish(engine: Engine, job_id: uuid.UUID) -> None:
    for session in run_unit_of_work(make_sessionmaker(engine)):
        job = session.get(TrainingJob, job_id)
        assert job is not None
        lifecycle.mark_ready(session, job=job)
        lifecycle.succeed(session, job=job, result={})


def test_a_tenant_with_one_job_is_not_stuck_behind_one_with_a_thousand(engine: Engine) -> None:
    seed = FairSeed(engine)
    big, small = seed.tenants(2)
    seed.jobs([big] * 1000)
    [lone] = seed.jobs([small])
    first = claimed_ids(engine, 3)
    assert lone in first
    # and the big tenant's next turn comes after the small one's, in creation order
    rows = select(TrainingJob.tenant_id).where(TrainingJob.id.in_(first))
    with make_sessionmaker(engine)() as session:
        assert sorted(map(str, session.scalars(rows))) == sorted(map(str, [big, big, small]))


def test_round_robin_across_three_tenants(engine: Engine) -> None:
    seed = FairSeed(engine)
    a, b, c = seed.tenants(3)
    jobs = {t: seed.jobs([t] * 4) for t in (a, b, c)}
    order = claimed_ids(engine, 9)
    owner = {j: t for t, ids in jobs.items() for j in ids}
    rounds = [[owner[j] for j in order[i : i + 3]] for i in range(0, 9, 3)]
    assert all(sorted(map(str, r)) == sorted(map(str, (a, b, c))) for r in rounds), rounds
    assert [j for j in order if owner[j] == a] == jobs[a][:3]  # oldest first within a tenant


def test_a_drift_job_queued_after_fifty_scheduled_ones_is_claimed_first(engine: Engine) -> None:
    seed = FairSeed(engine)
    tenants = seed.tenants(51)
    seed.jobs(tenants[:50], trigger="schedule", priority=priority_for("schedule", SETTINGS))
    [drift] = seed.jobs(tenants[50:], trigger="drift", priority=priority_for("drift", SETTINGS))
    assert claimed_ids(engine, 1) == [drift]


def test_a_busy_adapter_and_a_retry_backoff_are_skipped(engine: Engine) -> None:
    seed = FairSeed(engine)
    [t] = seed.tenants(1)
    first = seed.jobs([t])[0]
    with make_sessionmaker(engine)() as session:
        adapter_id = session.get(TrainingJob, first).adapter_id  # type: ignore[union-attr]
    second = seed.jobs([t], adapter_ids=[adapter_id])[0]
    assert claimed_ids(engine, 1) == [first]
    assert claim(engine).state == "idle"  # the second waits for the adapter
    for session in run_unit_of_work(make_sessionmaker(engine)):
        job = session.get(TrainingJob, first)
        assert job is not None
        assert lifecycle.fail(session, job=job, error="flaky", retryable=True, retry_after=3600)
    assert claimed_ids(engine, 1) == [second]  # the failed one waits out its backoff
    finish(engine, second)
    assert claim(engine).state == "idle"
    with engine.begin() as conn:
        conn.execute(
            update(TrainingJob)
            .where(TrainingJob.id == first)
            .values(not_before=utcnow() - dt.timedelta(seconds=1))
        )
    assert claimed_ids(engine, 1) == [first]


def _concurrently(engine: Engine, threads: int, cap: int) -> list[uuid.UUID]:
    """`threads` workers claim until nothing is claimable; every claimed job id."""
    barrier, got, errors = threading.Barrier(threads), [], []

    def work(n: int) -> None:
        try:
            barrier.wait()
            while (job := claim(engine, f"w{n}", cap).job) is not None:
                got.append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors
    return got


def test_the_tenant_cap_holds_with_four_concurrent_claimers(pg: Engine) -> None:
    seed = FairSeed(pg)
    a, b = seed.tenants(2)
    seed.jobs([a] * 10 + [b] * 10)
    got = _concurrently(pg, 4, cap=2)
    with make_sessionmaker(pg)() as session:
        owners = [session.get(TrainingJob, j).tenant_id for j in got]  # type: ignore[union-attr]
    assert sorted(map(str, owners)) == sorted(map(str, [a, a, b, b]))


def test_eight_concurrent_claimers_take_each_job_exactly_once(pg: Engine) -> None:
    seed = FairSeed(pg)
    tenants = seed.tenants(20)
    jobs = seed.jobs(tenants * 3)
    got = _concurrently(pg, 8, cap=1000)
    assert len(got) == len(set(got)) == len(jobs)
    with make_sessionmaker(pg)() as session:
        rows = session.scalars(select(TrainingJob).where(TrainingJob.id.in_(jobs))).all()
        assert {(r.status, r.attempts) for r in rows} == {("running", 1)}


def test_wake_rings_at_most_the_setting_and_ring_only_when_work_remains(engine: Engine) -> None:
    seed = FairSeed(engine)
    [t] = seed.tenants(1)
    ids = seed.jobs([t] * 5)
    queue = RecordingQueue()
    for session in run_unit_of_work(make_sessionmaker(engine)):
        wake(session, queue=queue, settings=Settings(training_wakeups=3), job_ids=ids)
        assert queue.sent == []  # after the commit only
    assert queue.sent == [(TRAIN, [str(j)], 0) for j in ids[:3]]
    claimed_ids(engine, 5)
    for session in run_unit_of_work(make_sessionmaker(engine)):
        assert ring(session, queue=queue, settings=SETTINGS) is None
    assert len(queue.sent) == 3
    finish(engine, ids[0])
    [extra] = seed.jobs([t])
    for session in run_unit_of_work(make_sessionmaker(engine)):
        assert ring(session, queue=queue, settings=SETTINGS) == extra
    assert queue.sent[-1] == (TRAIN, [str(extra)], 0)


def test_stale_queued_jobs_get_a_bounded_number_of_doorbells(engine: Engine) -> None:
    seed = FairSeed(engine)
    tenants = seed.tenants(10)
    seed.jobs(tenants * 10)
    cutoff = utcnow() - dt.timedelta(minutes=1)  # seeded a day ago: all 100 are stale
    counts = []
    for _ in range(3):
        for session in run_unit_of_work(make_sessionmaker(engine)):
            counts.append(len(lifecycle.stale_queued(session, older_than=cutoff, limit=64)))
    assert counts == [64, 36, 0]  # each touched: counted again only after another period
