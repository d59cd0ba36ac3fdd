"""Schedule tick benchmark: a fleet's quarterly retrains falling due on the same minute.

    .venv/bin/python -m bench.tick_bench [--tenants 10000,100000] [--old 1000] [--pair 10000]

Starts its own PostgreSQL and Redis (tests.services). For each size: a fresh database seeded
with set-based multi-row INSERTs (N tenants, each with one adapter, one dataset and one
quarterly schedule, all due at the same instant), then the real tick (`schedules.tick.drain`,
batch and budget from the settings, sends through a Celery client to Redis) run back to back
until nothing is due. Reported: schedules queued/s, time until all are queued (working time,
and as beat would space the ticks), SQL statements and CPU ms (this process: registry side
and Celery client) per schedule. Then `--pair` schedules drained by two concurrent loops:
jobs and queued versions per adapter counted after (exactly one each). Then the OLD per-row
tick (a labelled copy below; 100 per transaction, `start_retrain` per schedule) on `--old`
schedules, in the same run. And `loraplex schedules tick`'s start-up with nothing due, with
the old import path (`cli.compose`: the app and in-process workers) and the new one.
Prints a markdown table; the JSON goes to bench/results/tick_bench.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.orm import Session

from registry.adapters.promotion import PromotionPolicy
from registry.adapters.schemas import TrainingConfig
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.logging import configure_logging
from registry.migrate import upgrade
from registry.models import (
    Adapter,
    AdapterVersion,
    BaseModel,
    Dataset,
    Tenant,
    TrainingJob,
    TrainingSchedule,
)
from registry.models.enums import ScheduleOutcome
from registry.schedules import cron
from registry.schedules.tick import drain, missed_runs
from registry.settings import Settings
from registry.tasks import CeleryQueue, TaskQueue
from registry.training.automatic import Skipped, start_retrain
from tests.conftest import create_database
from tests.services import start_postgres, start_redis, sweep_stale

RESULTS = Path(__file__).parent / "results"
CRON = "0 3 1 1,4,7,10 *"
DUE = dt.datetime(2027, 4, 1, 3, 0, tzinfo=dt.UTC)
NOW = DUE + dt.timedelta(seconds=30)
PAGE = 5_000
BEAT_SECONDS = 60


def _page(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), PAGE):
        session.execute(insert(model), rows[i : i + PAGE])  # multi-row INSERTs (insertmanyvalues)


def seed(engine: Engine, n: int, tag: str) -> float:
    """N tenants, each: one adapter, one 10-row dataset, one quarterly schedule due at DUE."""
    t0 = time.perf_counter()
    sessions = make_sessionmaker(engine)
    for session in run_unit_of_work(sessions):
        base = session.execute(select(BaseModel.id).where(BaseModel.name == "tiny")).scalar()
        if base is None:
            base = uuid.uuid4()
            shapes = {f"model.layers.0.self_attn.{m}": [64, 64] for m in ("q_proj", "v_proj")}
            session.add(
                BaseModel(
                    id=base,
                    name="tiny",
                    uri="/nowhere",
                    digest="0" * 64,
                    files={},
                    total_bytes=1,
                    architecture="LlamaForCausalLM",
                    num_layers=1,
                    module_shapes=shapes,
                    config={},
                    created_by="bench",
                )
            )
            session.flush()
        config = TrainingConfig(rank=4).model_dump()
        policy = PromotionPolicy().model_dump()
        tenants, adapters, datasets, schedules = [], [], [], []
        for i in range(n):
            t, a = uuid.uuid4(), uuid.uuid4()
            tenants.append(
                {
                    "id": t,
                    "slug": f"{tag}-{i}",
                    "display_name": f"{tag} {i}",
                    "quota_dataset_bytes": 1 << 30,
                    "quota_adapters": 10,
                }
            )
            adapters.append(
                {
                    "id": a,
                    "tenant_id": t,
                    "name": "support",
                    "base_model_id": base,
                    "training_config": config,
                    "promotion_policy": policy,
                    "created_by": "bench",
                }
            )
            datasets.append(
                {
                    "tenant_id": t,
                    "name": "chat",
                    "version": 1,
                    "format": "chat",
                    "sha256": "0" * 64,
                    "bytes": 1000,
                    "rows": 10,
                    "duplicates_dropped": 0,
                    "source_sha256": "0" * 64,
                    "source_bytes": 1000,
                    "object_key": f"d/{t}",
                    "created_by": "bench",
                }
            )
            schedules.append(
                {
                    "adapter_id": a,
                    "tenant_id": t,
                    "cron": CRON,
                    "timezone": "UTC",
                    "enabled": True,
                    "datasets": "latest",
                    "dataset_names": None,
                    "next_run_at": DUE,
                    "next_fire_at": DUE,
                    "spread_seconds": 0,
                    "updated_by": "bench",
                }
            )
        for model, rows in (
            (Tenant, tenants),
            (Adapter, adapters),
            (Dataset, datasets),
            (TrainingSchedule, schedules),
        ):
            _page(session, model, rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


class Counter:
    """SQL statements this process sends (an executemany counts once: psycopg pipelines it)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1


def _measure(engine: Engine, fn: Callable[[], int]) -> dict[str, float]:
    counter = Counter(engine)
    cpu0, t0 = time.process_time(), time.perf_counter()
    queued = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    event.remove(engine, "before_cursor_execute", counter._seen)
    per = max(queued, 1)
    return {
        "queued": queued,
        "seconds": round(seconds, 2),
        "queued_per_s": round(queued / seconds, 1),
        "statements_per_schedule": round(counter.count / per, 3),
        "cpu_ms_per_schedule": round(cpu * 1000 / per, 3),
    }


def new_tick(engine: Engine, settings: Settings, queue: TaskQueue) -> dict[str, Any]:
    sessions = make_sessionmaker(engine)
    ticks: list[float] = []

    def run() -> int:
        queued = 0
        while True:
            out = drain(sessions, settings=settings, queue=queue, now=NOW)
            ticks.append(out.seconds)
            queued += out.queued_count
            if not out.more_due:
                return queued

    result = _measure(engine, run)
    # As beat runs it: a tick every BEAT_SECONDS, each working up to its budget.
    result["ticks"] = len(ticks)
    result["until_all_queued_beat_s"] = round((len(ticks) - 1) * BEAT_SECONDS + ticks[-1], 2)
    return result


def concurrent_pair(engine: Engine, settings: Settings, queue: TaskQueue) -> dict[str, Any]:
    sessions = make_sessionmaker(engine)
    claimed: list[int] = []

    def loop() -> None:
        while True:
            out = drain(sessions, settings=settings, queue=queue, now=NOW)
            claimed.append(out.claimed)
            if out.claimed == 0:
                return

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    with engine.connect() as conn:
        per_adapter = (
            select(TrainingJob.adapter_id, func.count().label("n"))
            .group_by(TrainingJob.adapter_id)
            .subquery()
        )
        jobs = dict(
            conn.execute(select(per_adapter.c.n, func.count()).group_by(per_adapter.c.n)).all()
        )
        per_version = (
            select(AdapterVersion.adapter_id, func.count().label("n"))
            .where(AdapterVersion.status == "queued")
            .group_by(AdapterVersion.adapter_id)
        ).subquery()
        versions = dict(
            conn.execute(select(per_version.c.n, func.count()).group_by(per_version.c.n)).all()
        )
        schedules = conn.execute(select(func.count()).select_from(TrainingSchedule)).scalar_one()
    return {
        "schedules": schedules,
        "seconds": round(seconds, 2),
        "claimed_total": sum(claimed),
        "adapters_by_job_count": {str(k): v for k, v in jobs.items()},
        "adapters_by_queued_version_count": {str(k): v for k, v in versions.items()},
        "exactly_once": jobs == {1: schedules} and versions == {1: schedules},
    }


# ---- OLD TICK (copy of registry/schedules/tick.py before issue 22, for comparison only) ----
def old_tick(
    session: Session, *, now: dt.datetime, settings: Settings, queue: TaskQueue, limit: int = 100
) -> int:
    actor = Principal.local_operator("scheduler")
    stmt = (
        select(TrainingSchedule)
        .where(TrainingSchedule.enabled.is_(True), TrainingSchedule.next_run_at <= now)
        .order_by(TrainingSchedule.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    queued = 0
    for row in session.execute(stmt).scalars().all():
        tenant = session.get(Tenant, row.tenant_id)
        adapter = session.get(Adapter, row.adapter_id)
        assert tenant is not None and adapter is not None and row.next_run_at is not None
        due = row.next_run_at
        missed = missed_runs(row, due, now)
        ref = {
            "schedule": {"cron": row.cron, "timezone": row.timezone},
            "due_at": due.isoformat(),
            "ticked_at": now.isoformat(),
            "missed_runs": missed,
            "datasets": row.datasets,
        }
        job_id = None
        try:
            job = start_retrain(
                session,
                tenant=tenant,
                adapter=adapter,
                mode=row.datasets,
                names=row.dataset_names,
                trigger="schedule",
                trigger_ref=ref,
                settings=settings,
                queue=queue,
                actor=actor,
            )
            job_id, queued = job.id, queued + 1
            row.last_outcome, row.last_message = ScheduleOutcome.QUEUED, f"job {job.id} queued"
        except Skipped as exc:
            row.last_outcome, row.last_message = ScheduleOutcome.SKIPPED, str(exc)[:2000]
        row.last_due_at, row.last_run_at, row.last_job_id = due, now, job_id
        row.next_run_at = cron.next_after(row.cron, row.timezone, now)
        row.next_fire_at = row.next_run_at  # (not in the old code: keeps the new column sane)
        audit.record(
            session,
            actor=actor,
            action="schedule.fired",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "due_at": due.isoformat(),
                "outcome": row.last_outcome,
                "job_id": str(job_id),
            },
        )
    session.flush()
    return queued


# ---- END OF OLD TICK ----


def old_loop(engine: Engine, settings: Settings, queue: TaskQueue) -> dict[str, Any]:
    sessions = make_sessionmaker(engine)
    ticks = 0

    def run() -> int:
        nonlocal ticks
        queued = 0
        while True:
            for session in run_unit_of_work(sessions):
                got = old_tick(session, now=NOW, settings=settings, queue=queue)
            ticks += 1
            queued += got
            if got == 0:
                return queued

    result = _measure(engine, run)
    result["ticks"] = ticks
    per_tick = 100
    # The old beat: 100 per tick, one tick a minute.
    result["until_all_queued_beat_s"] = round(
        (result["queued"] + per_tick - 1) // per_tick * BEAT_SECONDS, 1
    )
    return result


STARTUP = """
import sys, time
t0 = time.perf_counter()
if sys.argv[1] == "old":
    import cli.compose  # what `schedules tick` imported before (the app, in-process workers)
from cli import app
app(["schedules", "tick"], standalone_mode=False)
heavy = [m for m in ("torch", "peft", "transformers", "vllm", "fastapi", "registry.app",
                     "workers.inprocess") if m in sys.modules]
print(round((time.perf_counter() - t0) * 1000), ",".join(heavy), file=sys.stderr)
"""


def startup(db_url: str, broker: str, repeats: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {}
    env = {
        **os.environ,
        "LORAPLEX_DATABASE_URL": db_url,
        "LORAPLEX_BROKER_URL": broker,
        "LORAPLEX_HOME": tempfile.mkdtemp(prefix="tick-bench-"),
        "LORAPLEX_LOG_LEVEL": "WARNING",
    }
    for kind in ("old", "new"):
        times, heavy = [], ""
        for _ in range(repeats):
            p = subprocess.run(
                [sys.executable, "-c", STARTUP, kind],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            last = p.stderr.strip().splitlines()[-1].split(" ")
            times.append(int(last[0]))
            heavy = last[1] if len(last) > 1 else ""
        out[kind] = {"ms_median": sorted(times)[len(times) // 2], "ms": times, "heavy": heavy}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", default="10000,100000")
    parser.add_argument("--old", type=int, default=1000, help="schedules for the old tick; 0: skip")
    parser.add_argument("--pair", type=int, default=10000, help="schedules for 2 loops; 0: skip")
    args = parser.parse_args()
    configure_logging("WARNING", json=True)
    sweep_stale()
    pg, rds = start_postgres(), start_redis()
    results: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "runs": {}}
    try:
        settings = Settings(
            database_url=pg.url,
            broker_url=rds.url,
            log_level="WARNING",
            home=Path(tempfile.mkdtemp(prefix="tick-bench-home-")),
        )
        queue = CeleryQueue(settings)
        results["settings"] = {
            "batch": settings.schedule_tick_batch,
            "budget_s": settings.schedule_tick_budget_seconds,
        }
        jobs = [("new", int(n)) for n in args.tenants.split(",") if n]
        jobs += [("pair", args.pair)] if args.pair else []
        jobs += [("old", args.old)] if args.old else []
        for kind, n in jobs:
            url = create_database(pg.url, f"tick_{kind}_{n}")
            upgrade(url)
            engine = make_engine(url)
            seeded = seed(engine, n, kind)
            run = {"new": new_tick, "pair": concurrent_pair, "old": old_loop}[kind]
            result = run(engine, settings.model_copy(update={"database_url": url}), queue)
            result["seed_s"] = round(seeded, 1)
            results["runs"][f"{kind}-{n}"] = result
            print(kind, n, json.dumps(result), flush=True)
            if kind == "new" and "startup" not in results:
                results["startup"] = startup(url, rds.url)  # nothing due any more
            engine.dispose()
        results["redis_training_queue_len"] = redis.Redis.from_url(rds.url).llen("training")
    finally:
        rds.stop()
        pg.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tick_bench.json").write_text(json.dumps(results, indent=2, default=str))
    _table(results)


def _table(results: dict[str, Any]) -> None:
    print(
        "\n| run | queued | queued/s | until all queued (work) | (as beat spaces ticks) "
        "| statements/schedule | CPU ms/schedule | seed s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results["runs"].items():
        if name.startswith("pair"):
            continue
        print(
            f"| {name} | {r['queued']} | {r['queued_per_s']} | {r['seconds']} s "
            f"| {r['until_all_queued_beat_s']} s | {r['statements_per_schedule']} "
            f"| {r['cpu_ms_per_schedule']} | {r['seed_s']} |"
        )
    new = [r for k, r in results["runs"].items() if k.startswith("new")]
    old = [r for k, r in results["runs"].items() if k.startswith("old")]
    if new and old:
        print(f"\nqueued/s new/old: {new[0]['queued_per_s'] / old[0]['queued_per_s']:.1f}x")
    for name, r in results["runs"].items():
        if name.startswith("pair"):
            print(
                f"\n{name}: two loops, {r['seconds']} s, exactly once: {r['exactly_once']} "
                f"(jobs per adapter {r['adapters_by_job_count']}, queued versions "
                f"{r['adapters_by_queued_version_count']})"
            )
    if "startup" in results:
        s = results["startup"]
        print(
            f"\nstart-up, nothing due: old {s['old']['ms_median']} ms ({s['old']['heavy']}), "
            f"new {s['new']['ms_median']} ms ({s['new']['heavy'] or 'none of the heavy'})"
        )


if __name__ == "__main__":
    main()
