"""`loraplex traffic capture | traces | erase | expire` against a live registry process:
settings over HTTP (options left out keep their value), traces seeded straight into its
database and store, retention run by hand with database access, erasure."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.storage import open_store
from tests.cli.test_remote_cli import Cli
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_base_model
from tests.registry.traffic.seed import seed_traces

pytestmark = pytest.mark.slow
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    registry = start_registry(pg_admin_url, s3_endpoint)
    try:
        yield registry
    finally:
        registry.stop()


def login(live: LiveRegistry, folder: Path, client_id: str, secret: str) -> Cli:
    cli = Cli(live, folder)
    cli.run("login", "--url", live.base_url, "--client-id", client_id, "--client-secret", secret)
    return cli


def seed(live: LiveRegistry, s3_endpoint: str, created_at: dt.datetime) -> list[str]:
    env = live.env
    engine = make_engine(env["LORAPLEX_DATABASE_URL"])
    store = open_store(
        env["LORAPLEX_OBJECT_STORE"], s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
    )
    try:
        for session in run_unit_of_work(make_sessionmaker(engine)):
            traces = [{"request": {"messages": [{"role": "user", "content": "where is ORD-1?"}]}}]
            seeded = seed_traces(session, store, "acme", "support", None, traces, created_at)
    finally:
        engine.dispose()
    return [s.request_id for s in seeded]


def test_capture_traces_expire_erase(live: LiveRegistry, s3_endpoint: str, tmp_path: Path) -> None:
    ops = login(live, tmp_path / "ops", live.client_id, live.client_secret)
    with live.http() as http:
        base = make_base_model(tmp_path / "tiny")
        resp = http.post(
            "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=live.bearer()
        )
        assert resp.status_code == 201, resp.text
    ops.json("tenants", "create", "acme", "--name", "Acme")
    client = ops.json("tenants", "client", "acme")
    acme = login(live, tmp_path / "acme", client["client_id"], client["client_secret"])
    acme.json("adapters", "create", "support", "--base-model", "tiny", "--training", "{}")

    shown = acme.json("traffic", "capture", "support", "--show")
    assert shown["configured"] is False and shown["mode"] == "prompts"

    out = acme.json("traffic", "capture", "support", "--mode", "full", "--rate", "0.5",
                    "--retention", "2d", "--pattern", "ORDER_ID=ORD-[0-9]{6}")  # fmt: skip
    assert (out["mode"], out["sample_rate"], out["retention"]) == ("full", 0.5, "2d")
    assert out["redact_patterns"] == [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}]
    out = acme.json("traffic", "capture", "support", "--no-redact")  # the rest stays
    assert (out["mode"], out["sample_rate"], out["retention"]) == ("full", 0.5, "2d")
    assert out["redact"] is False and out["redact_patterns"][0]["name"] == "ORDER_ID"

    bad = acme.run("traffic", "capture", "support", "--pattern", "TICKET=(a", ok=False)
    assert bad.returncode != 0 and "TICKET" in bad.stderr and "422" in bad.stderr
    bad = acme.run("traffic", "capture", "support", "--pattern", "TICKET", ok=False)
    assert bad.returncode != 0 and "NAME=REGEX" in bad.stderr

    old = seed(live, s3_endpoint, NOW - dt.timedelta(days=3))
    young = seed(live, s3_endpoint, NOW - dt.timedelta(hours=1))
    listed = acme.json("traffic", "traces", "support", "--json")
    assert [t["request_id"] for t in listed] == young + old
    assert listed[0]["trace"]["request"]["messages"][0]["content"] == "where is ORD-1?"
    table = acme.run("traffic", "traces", "support", "--limit", "1").stdout
    assert young[0] in table and old[0] not in table and "where is ORD-1?" in table

    expired = json.loads(acme.run("traffic", "expire").stdout)  # retention 2d: the old one goes
    assert expired == {"rows": 1, "objects": 1, "feedback": 0}
    assert [t["request_id"] for t in acme.json("traffic", "traces", "support", "--json")] == young

    refused = acme.run("traffic", "erase", ok=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    out = acme.run("traffic", "erase", "--adapter", "support", "--yes").stdout
    assert "1 samples, 0 feedback, 1 trace objects" in out
    assert acme.json("traffic", "traces", "support", "--json") == []

    assert "defaults" in acme.run("traffic", "capture", "support", "--reset").stdout
    assert acme.json("traffic", "capture", "support", "--show")["configured"] is False
