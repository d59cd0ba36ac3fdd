"""`loraplex backlog` against a live registry process with a Celery broker (Redis) and no
worker, so the jobs that `loraplex train` queues stay queued; one is then marked finished in
its database, as a worker would have."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.db import make_engine
from tests.cli.test_traffic_cli import login
from tests.conftest import require_env
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_base_model

pytestmark = pytest.mark.slow
ROWS = "".join(json.dumps({"prompt": f"q{i}?", "completion": f"a{i}"}) + "\n" for i in range(8))


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    redis = require_env("LORAPLEX_TEST_REDIS_URL").rstrip("/")
    broker = redis.rsplit("/", 1)[0] + "/13" if redis.rsplit("/", 1)[1].isdigit() else redis
    registry = start_registry(pg_admin_url, s3_endpoint, extra_env={"LORAPLEX_BROKER_URL": broker})
    try:
        yield registry
    finally:
        registry.stop()


def test_backlog_table_and_json(live: LiveRegistry, tmp_path: Path) -> None:
    ops = login(live, tmp_path / "ops", live.client_id, live.client_secret)
    with live.http() as http:
        base = make_base_model(tmp_path / "tiny")
        resp = http.post(
            "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=live.bearer()
        )
        assert resp.status_code == 201, resp.text
    (tmp_path / "d.jsonl").write_text(ROWS)
    tenants = {}
    for slug, jobs in (("acme", 3), ("globex", 1)):
        ops.json("tenants", "create", slug)
        client = ops.json("tenants", "client", slug)
        cli = login(live, tmp_path / slug, client["client_id"], client["client_secret"])
        cli.json("adapters", "create", "support", "--base-model", "tiny", "--training", "{}")
        out = cli.run("datasets", "upload", str(tmp_path / "d.jsonl"), "--name", "d").stdout
        dataset = out.rsplit("id ", 1)[1].strip()
        for _ in range(jobs):
            assert "queued" in cli.run("train", "support", "-d", dataset, "--no-follow").stdout
        tenants[slug] = cli
    engine = make_engine(live.env["LORAPLEX_DATABASE_URL"])
    try:
        with engine.begin() as conn:  # one of acme's jobs finished 10 minutes ago
            conn.execute(
                text(
                    "UPDATE training_jobs SET status = 'succeeded', finished_at = :at WHERE id = "
                    "(SELECT j.id FROM training_jobs j JOIN tenants t ON t.id = j.tenant_id "
                    "WHERE t.slug = 'acme' ORDER BY j.created_at LIMIT 1)"
                ),
                {"at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)},
            )
    finally:
        engine.dispose()

    body = ops.json("backlog", "--json")
    assert (body["queued"], body["running"], body["drain_per_hour"]) == (3, 0, 1)
    assert [(t["tenant"], t["queued"]) for t in body["tenants"]] == [("acme", 2), ("globex", 1)]
    assert body["eta_seconds"] == pytest.approx(3 * 3600, abs=0.1)

    table = ops.run("backlog").stdout
    assert "3 queued, 0 running, 0 paused" in table
    assert "manual" in table and "schedule" in table and "top 2 of 2 tenants" in table
    assert "drain: 1 jobs/hour (last hour: 1 succeeded" in table
    assert "ETA for 3 queued + running: 3h 0m" in table
    assert "per-tenant cap: 2 running jobs" in table

    one = ops.json("backlog", "--tenant", "globex", "--json")
    assert (one["tenant"], one["queued"], one["drain_per_hour"]) == ("globex", 1, 0)
    assert "unknown: no job finished in the last hour" in ops.run("backlog", "-t", "globex").stdout

    denied = tenants["acme"].run("backlog", ok=False)
    assert denied.returncode == 1 and "403" in denied.stderr and "ops and auditors" in denied.stderr
