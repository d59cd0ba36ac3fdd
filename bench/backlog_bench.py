"""Training backlog benchmark: `GET /v1/training-backlog`'s queries with 100,000 queued jobs.

    .venv/bin/python -m bench.backlog_bench [--queued 100000] [--finished 50000] [--repeats 7]

Starts its own PostgreSQL (tests.services), builds the schema with the migrations, and seeds
with set-based SQL (INSERT ... SELECT generate_series): tenants with one adapter each, the
queued jobs spread over them (90% schedule, 8% manual, 2% drift, created over the last 6 h),
200 running, and `--finished` finished jobs over the last 30 days of which 1,000 in the last
hour. Two shapes in one run: the quarterly retrain (as many tenants as queued jobs, one job
each) and a skewed queue (1,000 tenants). For each: the whole computation
(registry.training.backlog.compute, what the endpoint runs) all tenants and `?tenant=`, median
of `--repeats` after a warm-up, and EXPLAIN ANALYZE of the three queries. Prints a markdown
table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from registry.db import make_engine
from registry.migrate import upgrade
from registry.settings import Settings
from registry.tenants.repository import TenantRepository
from registry.training.backlog import compute
from tests.conftest import create_database
from tests.services import start_postgres, sweep_stale

RESULTS = Path(__file__).parent / "results"

SEED = """
INSERT INTO base_models (id, name, uri, digest, files, total_bytes, num_layers, module_shapes,
    config, created_by, created_at)
VALUES (gen_random_uuid(), 'tiny', '/tmp/tiny', repeat('0', 64), '{}', 0, 1, '{}', '{}',
    'bench', now());
INSERT INTO tenants (id, slug, display_name, quota_dataset_bytes, quota_adapters, created_at,
    updated_at)
SELECT gen_random_uuid(), 'bench-' || i, 'Bench ' || i, 1e9, 10, now(), now()
FROM generate_series(1, CAST(:tenants AS int)) AS i;
INSERT INTO adapters (id, tenant_id, name, base_model_id, training_config, promotion_policy,
    next_version, created_by, created_at)
SELECT gen_random_uuid(), t.id, 'support', (SELECT id FROM base_models), '{}', '{}', 2, 'bench',
    now()
FROM tenants t;
INSERT INTO adapter_versions (id, tenant_id, adapter_id, version, status, status_message,
    base_model_id, base_model_digest, training_config, config_hash, trigger, trigger_ref,
    code_version, created_by, created_at, updated_at)
SELECT gen_random_uuid(), a.tenant_id, a.id, 1, 'queued', '', a.base_model_id, repeat('0', 64),
    '{}', repeat('0', 64), 'schedule', '{}', 'bench', 'bench', now(), now()
FROM adapters a;
CREATE TEMP TABLE bench_adapters AS
SELECT row_number() OVER (ORDER BY a.id) AS n, a.id, a.tenant_id, v.id AS version_id
FROM adapters a JOIN adapter_versions v ON v.adapter_id = a.id;
CREATE UNIQUE INDEX ON bench_adapters (n);
"""

JOBS = """
INSERT INTO training_jobs (id, tenant_id, adapter_id, version_id, status, trigger, trigger_ref,
    config, dataset_ids, progress, result, attempts, max_attempts, cancel_requested, error,
    created_by, created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(), a.tenant_id, a.id, a.version_id, CAST(:status AS varchar),
    CASE WHEN i % 50 = 0 THEN 'drift' WHEN i % 12 = 1 THEN 'manual' ELSE 'schedule' END,
    '{}', '{}', '[]', '{}', '{}', 0, 3, false, '', 'bench', c.at, c.at,
    CASE WHEN CAST(:status AS varchar) <> 'queued' THEN now() - interval '10 minutes' END,
    CASE WHEN CAST(:status AS varchar) IN ('succeeded', 'failed', 'cancelled')
         THEN now() - CAST(:finished_span AS float8) * random() * interval '1 second' END
FROM generate_series(1, CAST(:count AS int)) AS i
JOIN bench_adapters a ON a.n = 1 + (i * 7919) % CAST(:tenants AS int)
CROSS JOIN LATERAL (
    SELECT now() - CAST(:created_span AS float8) * random() * interval '1 second' + i * interval '0'
    AS at
) AS c;
"""


def seed(engine: Engine, *, tenants: int, queued: int, finished: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for statement in SEED.split(";\n"):
            if statement.strip():
                conn.execute(text(statement), {"tenants": tenants})

        def jobs(count: int, status: str, created_span: float, finished_span: float) -> None:
            conn.execute(
                text(JOBS),
                {
                    "count": count,
                    "tenants": tenants,
                    "status": status,
                    "created_span": created_span,
                    "finished_span": finished_span,
                },
            )

        jobs(queued, "queued", 6 * 3600, 0)
        jobs(200, "running", 3600, 0)
        old = finished - 1000
        jobs(int(old * 0.9), "succeeded", 31 * 86400, 30 * 86400)
        jobs(int(old * 0.1), "failed", 31 * 86400, 30 * 86400)
        jobs(900, "succeeded", 7200, 3500)
        jobs(70, "failed", 7200, 3500)
        jobs(30, "cancelled", 7200, 3500)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return {"seed_s": round(time.perf_counter() - t0, 2)}


def _explain(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of each statement `compute` runs (captured from the engine)."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.startswith("EXPLAIN"):
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    with Session(engine) as session:
        compute(session, settings=settings, limit=10)
    event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        for statement, params in statements:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            lines = [row[0] for row in cursor.fetchall()]
            plans.append({"sql": " ".join(statement.split())[:160], "plan": lines})
    return plans


def measure(engine: Engine, settings: Settings, repeats: int) -> dict[str, Any]:
    def timed(tenant_slug: str | None) -> float:
        with Session(engine) as session:
            tenant = None
            if tenant_slug is not None:
                tenant = TenantRepository(session).get_by_slug(tenant_slug)
            t0 = time.perf_counter()
            compute(session, settings=settings, tenant=tenant, limit=10)
            return (time.perf_counter() - t0) * 1000

    out: dict[str, Any] = {}
    for label, slug in (("all tenants", None), ("?tenant=", "bench-1")):
        timed(slug)  # warm-up
        runs = [timed(slug) for _ in range(repeats)]
        out[label] = {"median_ms": round(statistics.median(runs), 1), "max_ms": round(max(runs), 1)}
    with Session(engine) as session:
        body = compute(session, settings=settings, limit=3)
    out["body"] = {
        "queued": body.queued,
        "running": body.running,
        "tenants_with_backlog": body.tenants_with_backlog,
        "drain_per_hour": body.drain_per_hour,
        "eta_seconds": body.eta_seconds,
        "by_trigger": [t.model_dump() for t in body.by_trigger],
    }
    return out


def _indexes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = 'training_jobs' ORDER BY 1")
        )
        return [r[0].split(" USING ")[1] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--finished", type=int, default=50_000)
    parser.add_argument("--skewed-tenants", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sweep_stale()
    pg = start_postgres()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "when": dt.datetime.now(dt.UTC).isoformat(),
        "args": vars(args),
        "runs": [],
    }
    try:
        for tenants in (args.queued, args.skewed_tenants):
            url = create_database(pg.url, f"backlog_bench_{tenants}")
            upgrade(url)
            engine = make_engine(url)
            settings = Settings(database_url=url)
            run: dict[str, Any] = {"tenants": tenants, "queued": args.queued}
            run |= seed(engine, tenants=tenants, queued=args.queued, finished=args.finished)
            run |= measure(engine, settings, args.repeats)
            run["explain"] = _explain(engine, settings)
            run["indexes"] = _indexes(engine)
            results["runs"].append(run)
            engine.dispose()
    finally:
        pg.stop()
    print(f"\n{args.queued:,} queued + 200 running + {args.finished:,} finished jobs; "
          f"median of {args.repeats} (PostgreSQL, this machine)\n")  # fmt: skip
    print("| tenants | all tenants (ms) | ?tenant= (ms) | tenants with backlog | drain/h |")
    print("|---|---|---|---|---|")
    for r in results["runs"]:
        print(
            f"| {r['tenants']:,} | {r['all tenants']['median_ms']} | {r['?tenant=']['median_ms']} "
            f"| {r['body']['tenants_with_backlog']:,} | {r['body']['drain_per_hour']} |"
        )
    for r in results["runs"]:
        print(f"\n{r['tenants']:,} tenants; training_jobs indexes: {r['indexes']}")
        for p in r["explain"]:
            timing = [line for line in p["plan"] if "Execution Time" in line]
            print(f"- {p['sql'][:90]}… {timing[0].strip() if timing else ''}")
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S%z")
    path = RESULTS / f"backlog_bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
