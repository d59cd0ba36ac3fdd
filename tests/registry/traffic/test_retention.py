"""Retention (`expire_traces`, the task `loraplex.traffic_retention`): per adapter, rows older
than its retention go, and so do their trace objects once no row points at them, and feedback
older than the same cutoff; everything younger stays."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from registry.models import Feedback, TrafficSample
from registry.settings import Settings
from registry.tasks import TRAFFIC_RETENTION
from registry.traffic.retention import Expired, expire_traces
from tests.registry.traffic.seed import SeedWorld, sw
from workers.context import WorkerContext
from workers.task_table import run_task

__all__ = ["sw"]

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


def expire(sw: SeedWorld, now: dt.datetime = NOW, batch: int = 5000) -> Expired:
    settings: Settings = sw.world.stack.app.state.settings
    with sw.world.stack.session() as session:
        out = expire_traces(session, store=sw.store, settings=settings, now=now, batch=batch)
        session.commit()
    return out


def request_ids(sw: SeedWorld) -> set[str | None]:
    with sw.world.stack.session() as session:
        return set(session.execute(select(TrafficSample.request_id)).scalars())


def feedback_ids(sw: SeedWorld) -> set[str]:
    with sw.world.stack.session() as session:
        return set(session.execute(select(Feedback.request_id)).scalars())


def test_platform_default_and_per_adapter_retention(sw: SeedWorld) -> None:
    # support: no settings, the platform's 30 days; billing: 2 days
    resp = sw.http.put(
        "/v1/tenants/acme/adapters/billing/traffic-capture",
        json={"mode": "full", "retention": "2d"},
        headers=sw.acme.headers,
    )
    assert resp.status_code == 200, resp.text
    old = sw.seed(traces=[{}, {}, {}], created_at=NOW - 31 * DAY)
    young = sw.seed(traces=[{}], created_at=NOW - 29 * DAY)
    old_prompts = sw.seed(created_at=NOW - 40 * DAY, captured="prompts")
    billing_old = sw.seed(adapter="billing", version=None, created_at=NOW - 3 * DAY)
    billing_young = sw.seed(adapter="billing", version=None, created_at=NOW - DAY)
    globex_old = sw.seed(tenant="globex", created_at=NOW - 31 * DAY)
    for t in old[:2] + young:  # feedback given when the request was answered
        sw.feedback(t, 1, created_at=dt.datetime.fromisoformat(t.trace["created_at"]))
    keys_before = sw.trace_keys()
    assert len(keys_before) == 5  # prompts-only capture writes no object

    out = expire(sw, batch=2)  # 3 + 1 + 1 + 1 expired rows, in batches of 2

    assert out == Expired(rows=6, objects=3, feedback=2)
    gone = {t.request_id for t in old + old_prompts + billing_old + globex_old}
    kept = {t.request_id for t in young + billing_young}
    assert request_ids(sw) == kept and not gone & request_ids(sw)
    dead = {old[0].object_key, billing_old[0].object_key, globex_old[0].object_key}
    assert sw.trace_keys() == sorted(set(keys_before) - dead)
    assert feedback_ids(sw) == {young[0].request_id}
    assert expire(sw) == Expired()  # nothing left to do


def test_an_object_stays_while_one_of_its_rows_is_young(sw: SeedWorld) -> None:
    seeded = sw.seed(traces=[{}, {}, {}], created_at=NOW - 31 * DAY)
    with sw.world.stack.session() as session:  # one row of the batch is younger
        session.execute(
            update(TrafficSample)
            .where(TrafficSample.id == seeded[2].row_id)
            .values(created_at=NOW - 29 * DAY)
        )
        session.commit()

    assert expire(sw) == Expired(rows=2, objects=0, feedback=0)
    assert sw.trace_keys() == [seeded[0].object_key]
    assert request_ids(sw) == {seeded[2].request_id}

    assert expire(sw, now=NOW + 2 * DAY) == Expired(rows=1, objects=1, feedback=0)
    assert sw.trace_keys() == [] and request_ids(sw) == set()


def test_deleting_the_settings_brings_back_the_default(sw: SeedWorld) -> None:
    url = "/v1/tenants/acme/adapters/support/traffic-capture"
    resp = sw.http.put(url, json={"mode": "full", "retention": "90d"}, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    seeded = sw.seed(created_at=NOW - 40 * DAY)
    assert expire(sw) == Expired()
    assert sw.http.delete(url, headers=sw.acme.headers).status_code == 204
    assert expire(sw) == Expired(rows=1, objects=1, feedback=0)
    assert seeded[0].object_key not in sw.trace_keys()


def test_the_periodic_task_runs_it(sw: SeedWorld) -> None:
    sw.seed(traces=[{}, {}], created_at=NOW - 31 * DAY)
    app = sw.world.stack.app
    ctx = WorkerContext(
        settings=app.state.settings,
        engine=sw.world.stack.engine,
        sessions=app.state.sessionmaker,
        store=sw.store,
        queue=sw.world.stack.tasks,
    )
    assert run_task(ctx, TRAFFIC_RETENTION, host="test") == {"rows": 2, "objects": 1, "feedback": 0}
    assert sw.trace_keys() == [] and request_ids(sw) == set()
