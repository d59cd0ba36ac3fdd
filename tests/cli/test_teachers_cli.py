"""`loraplex teachers` (ops) and `loraplex labelling` against a live registry process whose
in-process worker calls a teacher on 127.0.0.1 with the key from its secrets folder."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.models import Adapter, TrafficSample
from tests.cli.test_remote_cli import Cli
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_base_model
from tests.workers.teacher_server import chat, teacher_server


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


def seed_prompts(live: LiveRegistry, prompts: list[str]) -> None:
    engine = make_engine(live.env["LORAPLEX_DATABASE_URL"])
    try:
        for session in run_unit_of_work(make_sessionmaker(engine)):
            adapter = session.execute(select(Adapter).where(Adapter.name == "support")).scalar_one()
            for text in prompts:
                session.add(
                    TrafficSample(
                        tenant_id=adapter.tenant_id,
                        adapter_id=adapter.id,
                        source="api",
                        record={"messages": [{"role": "user", "content": text}]},
                        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
                    )
                )
    finally:
        engine.dispose()


def test_teachers_and_a_labelling_run(live: LiveRegistry, tmp_path: Path) -> None:
    ops = login(live, tmp_path / "ops", live.client_id, live.client_secret)
    ops.json("base-models", "register", "tiny", str(make_base_model(tmp_path / "tiny")))
    ops.json("tenants", "create", "acme")
    creds = ops.json("tenants", "client", "acme")
    acme = login(live, tmp_path / "acme", creds["client_id"], creds["client_secret"])
    acme.json("adapters", "create", "support", "--base-model", "tiny")
    seed_prompts(live, ["one", "two", "three"])
    (live.home / "secrets").mkdir(exist_ok=True)
    (live.home / "secrets" / "TUTOR_KEY").write_text("sk-cli\n")

    with teacher_server(lambda s: chat(f"answer to {s.body['messages'][-1]['content']}")) as t:
        added = ops.json(
            "teachers", "add", "tutor", "--base-url", t.url, "--model", "big",
            "--secret", "TUTOR_KEY", "--rpm", "600", "--timeout", "5", "--budget", "50",
        )  # fmt: skip
        assert added["max_requests"] == 50 and added["secret_name"] == "TUTOR_KEY"
        assert "tutor" in acme.run("teachers", "list").stdout
        refused = acme.run("teachers", "add", "x", "--base-url", t.url, "--model", "m", ok=False)
        assert refused.returncode != 0 and "teachers:write" in refused.stderr

        job = acme.json(
            "labelling", "run", "support", "--teacher", "tutor", "--dataset", "taught",
            "--window", "1h", "--follow",
        )  # fmt: skip
        assert job["status"] == "succeeded", job["error"]
        assert job["progress"]["kept"] == 3 and job["dataset_id"]
        assert {s.authorization for s in t.seen} == {"Bearer sk-cli"}
    table = acme.run("labelling", "list").stdout
    assert job["id"][:8] in table and "succeeded" in table
    shown = acme.json("labelling", "show", job["id"])
    assert shown["params"]["dataset"] == "taught"

    disabled = ops.json("teachers", "update", "tutor", "--disable")
    assert disabled["enabled"] is False
    again = acme.run(
        "labelling", "run", "support", "--teacher", "tutor", "--dataset", "d", ok=False
    )
    assert again.returncode != 0 and "disabled" in again.stderr
    removed = ops.run("teachers", "remove", "tutor", ok=False)
    assert removed.returncode != 0 and "disable it instead" in removed.stderr
    assert "taught" in acme.run("datasets", "list").stdout
