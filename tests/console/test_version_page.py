"""The version page: the numbers an auditor follows (datasets and digests, job, evals against
base and production, the gate, manifest digests, alias history with reasons, serving), who
may see it, and that it stays fast and bounded for an adapter with 100 versions."""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from registry.adapters.versions import NewVersion, versions
from registry.db import run_unit_of_work
from registry.models import Adapter, AdapterVersion, Dataset, Eval, TrainingJob, UsageRecord
from tests.conftest import Caller, World
from tests.console.conftest import ConsoleClient
from tests.lora_files import make_adapter, make_base_model
from tests.registry.lineage.seed import seed_chain

pytestmark = pytest.mark.smoke

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
URL = "/console/t/acme/adapters/support/v/"


def _api(world: World, base_dir: Path) -> Caller:
    """Base model 'tiny', tenant acme, adapter 'support' with v1 uploaded and in production."""
    make_base_model(base_dir)
    http = world.http
    resp = http.post(
        "/v1/base-models", json={"name": "tiny", "uri": str(base_dir)}, headers=world.ops.headers
    )
    assert resp.status_code == 201, resp.text
    acme = world.tenant("acme")
    resp = http.post(
        "/v1/tenants/acme/adapters",
        headers=acme.headers,
        json={"name": "support", "base_model": "tiny", "training": {"rank": 4}},
    )
    assert resp.status_code == 201, resp.text
    config, weights = make_adapter("tiny")
    files = {
        "adapter_config.json": ("adapter_config.json", config),
        "adapter_model.safetensors": ("adapter_model.safetensors", weights),
    }
    resp = http.post(
        "/v1/tenants/acme/adapters/support/versions", files=files, headers=acme.headers
    )
    assert resp.status_code == 201, resp.text
    _alias(world, acme, "production", 1, "first release")
    return acme


def _alias(world: World, who: Caller, alias: str, number: int, reason: str) -> None:
    resp = world.http.put(
        f"/v1/tenants/acme/adapters/support/aliases/{alias}",
        json={"version": number, "reason": reason},
        headers=who.headers,
    )
    assert resp.status_code == 200, resp.text


def _dataset(s: Session, tenant_id: uuid.UUID, creator: str, name: str, rows: int) -> Dataset:
    d = Dataset(
        tenant_id=tenant_id,
        name=name,
        version=3,
        format="chat",
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        bytes=1000,
        rows=rows,
        duplicates_dropped=0,
        source_sha256="e" * 64,
        source_bytes=1000,
        object_key=f"k/{name}",
        created_by=creator,
    )
    s.add(d)
    return d


def _trained_v2(world: World, acme: Caller) -> dict[str, Any]:
    """v2: a scheduled retrain of v1 on two datasets, with a job, evals, a gate and traffic."""
    tenant_id = uuid.UUID(acme.tenant_id or "")
    facts: dict[str, Any] = {}
    for s in run_unit_of_work(world.stack.app.state.sessionmaker):
        adapter = s.execute(select(Adapter).where(Adapter.tenant_id == tenant_id)).scalar_one()
        v1 = versions.get(s, adapter=adapter, number=1)

        train = _dataset(s, tenant_id, acme.client_id, "tickets", 1234)
        held = _dataset(s, tenant_id, acme.client_id, "tickets-heldout", 87)
        s.flush()
        job_id = uuid.uuid4()
        ref = {"schedule": {"cron": "0 3 * * *", "timezone": "UTC"}, "due_at": T0.isoformat()}
        v2 = versions.allocate(
            s,
            adapter=adapter,
            new=NewVersion(
                status="ready",
                trigger="schedule",
                created_by="lpx-scheduler",
                training_config={"rank": 4},
                trigger_ref=ref,
                job_id=str(job_id),
                parent=v1,
                datasets=[(train, "train"), (held, "validation")],
            ),
        )
        s.add(
            TrainingJob(
                id=job_id,
                tenant_id=tenant_id,
                adapter_id=adapter.id,
                version_id=v2.id,
                status="succeeded",
                trigger="schedule",
                trigger_ref=ref,
                config={"rank": 4},
                dataset_ids=[str(train.id)],
                created_by="lpx-scheduler",
                started_at=T0,
                finished_at=T0 + dt.timedelta(minutes=12, seconds=3),
            )
        )
        weights = "7" * 64
        v2.manifest = {"files": {"adapter_model.safetensors": {"sha256": weights, "size": 4096}}}
        v2.manifest_digest, v2.size_bytes, v2.ready_at = "9" * 64, 4096, T0 + dt.timedelta(hours=1)
        v2.gate = {
            "passed": True,
            "promote": False,
            "reason": "manual policy (would win against production v1): eval_loss 0.4123 vs 0.9",
            "checks": [],
            "policy": "manual",
        }
        held_suite = "heldout-abc123"
        for version, subject, metrics, details in (
            (v2, "version", {"eval_loss": 0.4123}, {}),
            (v2, "base_model", {"eval_loss": 1.875}, {}),
            (v1, "version", {"eval_loss": 0.9}, {"scored_for": "v2"}),
        ):
            s.add(
                Eval(
                    tenant_id=tenant_id,
                    adapter_id=adapter.id,
                    version_id=version.id,
                    subject=subject,
                    suite=held_suite,
                    metrics=metrics,
                    dataset_id=held.id,
                    details=details,
                    created_by="worker",
                )
            )
        for i in range(30):  # served for three days by two clients
            s.add(
                UsageRecord(
                    tenant_id=tenant_id,
                    adapter_id=adapter.id,
                    version_id=v2.id,
                    request_id=f"r{i}",
                    client_id=f"client-{i % 2}",
                    model="support",
                    endpoint="chat.completions",
                    stream=False,
                    status_code=200,
                    prompt_tokens=10,
                    completion_tokens=5,
                    latency_ms=12.0,
                    started_at=T0 + dt.timedelta(days=i // 10, hours=i % 10),
                )
            )
        facts = {"job": str(job_id), "train": train.sha256, "weights": weights}
    _alias(world, acme, "production", 2, "beat v1 on held-out loss")
    return facts


@pytest.fixture
def seeded(world: World, tmp_path: Path) -> dict[str, Any]:
    acme = _api(world, tmp_path / "tiny")
    return {"acme": acme, **_trained_v2(world, acme)}


def test_the_version_page_shows_the_numbers(
    world: World, console: Any, seeded: dict[str, Any]
) -> None:
    page = console(seeded["acme"]).get(URL + "v2")
    assert page.status_code == 200, page.text
    html = page.text
    for section in ("status", "lineage", "manifest", "evals", "gate", "alias-history", "serving"):
        assert f'id="{section}"' in html, section
    assert "tickets@v3" in html and "1,234" in html and seeded["train"] in html  # dataset
    assert 'data-node-id="job:' + seeded["job"] in html and "12m 03s" in html  # job duration
    assert "0 3 * * *" in html  # the schedule that triggered it
    assert seeded["weights"] in html and "9" * 64 in html  # file digest, manifest digest
    assert "0.4123" in html and "1.875" in html and "0.9" in html  # candidate, base, production
    assert "would win against production v1" in html  # the gate's reason
    assert "beat v1 on held-out loss" in html and "first release" in html  # alias reasons
    assert 'class="alias-event touches" data-alias="production" data-to="2"' in html
    assert 'class="alias-event" data-alias="production" data-to="1"' in html
    assert 'id="serving-requests">30<' in html and 'id="serving-clients">2<' in html
    assert 'class="bar"' in html  # the chart per day
    assert '<a href="/console/t/acme/adapters/support/v/1"><g class="node"' in html  # parent
    assert 'id="promote"' not in html  # already production
    assert 'id="who-did-what"' not in html  # a tenant sees the alias history only


def test_an_uploaded_version_shows_its_manifest_and_no_gate(
    world: World, console: Any, seeded: dict[str, Any]
) -> None:
    with world.stack.session() as s:
        v1 = s.execute(select(AdapterVersion).where(AdapterVersion.version == 1)).scalar_one()
        manifest, digest = v1.manifest or {}, v1.manifest_digest
    page = console(seeded["acme"]).get(URL + "1")
    assert page.status_code == 200, page.text
    assert "No gate ran" in page.text and digest and digest in page.text
    for name, f in manifest["files"].items():
        assert name in page.text and f["sha256"] in page.text
    assert 'id="promote"' in page.text and 'name="version" value="1"' in page.text


def test_ops_see_the_audit_events_and_auditors_get_no_promote_form(
    world: World, console: Any, seeded: dict[str, Any]
) -> None:
    ops = console(world.ops).get(URL + "1")
    assert ops.status_code == 200 and 'id="who-did-what"' in ops.text
    assert "alias.set" in ops.text and "version.upload" in ops.text
    assert 'id="promote"' in ops.text
    auditor = console(world.auditor).get(URL + "1")
    assert auditor.status_code == 200 and 'id="who-did-what"' in auditor.text
    assert 'id="promote"' not in auditor.text and 'method="post" action="/console/t/acme' not in (
        auditor.text
    )


def test_another_tenant_and_unknown_versions_get_404(
    world: World, console: Any, seeded: dict[str, Any]
) -> None:
    globex = ConsoleClient(world, world.tenant("globex"))
    assert globex.get(URL + "v2").status_code == 404
    acme = console(seeded["acme"])
    for ref in ("99", "v99", "abc"):
        assert acme.get(URL + ref).status_code == 404, ref
    assert acme.get("/console/t/acme/adapters/nope/v/1").status_code == 404


@contextmanager
def statements(world: World) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    event.listen(world.stack.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(world.stack.engine, "before_cursor_execute", record)


def test_a_hundred_versions_load_fast_with_a_bounded_number_of_statements(
    world: World, console: Any
) -> None:
    acme = world.tenant("acme")
    tenant_id = uuid.UUID(acme.tenant_id or "")
    big = seed_chain(world.stack, tenant_id, creator=acme.client_id, depth=100, name="support")
    small = seed_chain(world.stack, tenant_id, creator=acme.client_id, depth=10, name="small")
    with world.stack.session() as s:
        for chain, number, count in ((big, 100, 500), (small, 10, 20)):
            s.add_all(
                UsageRecord(
                    tenant_id=tenant_id,
                    adapter_id=chain.adapter_id,
                    version_id=chain.versions[number],
                    request_id=f"r{i}",
                    client_id=f"c{i % 7}",
                    model="support",
                    endpoint="chat.completions",
                    stream=False,
                    status_code=200,
                    prompt_tokens=3,
                    completion_tokens=4,
                    latency_ms=1.0,
                    started_at=T0 + dt.timedelta(minutes=17 * i),
                )
                for i in range(count)
            )
        s.commit()
    ops = console(world.ops)
    assert ops.get(URL + "v100").status_code == 200  # warm-up
    took = []
    for _ in range(5):
        start = time.perf_counter()
        resp = ops.get(URL + "v100")
        took.append(time.perf_counter() - start)
        assert resp.status_code == 200
    assert "99 ancestors" in resp.text and "support@v99 (parent)" in resp.text
    assert statistics.median(took) < 0.3, [f"{t * 1000:.0f} ms" for t in took]
    with statements(world) as hundred:
        ops.get(URL + "v100")
    with statements(world) as ten:
        ops.get("/console/t/acme/adapters/small/v/10")
    assert len(hundred) == len(ten) <= 25, (len(hundred), len(ten))
