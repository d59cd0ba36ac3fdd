"""Drift policies with `datasets: traffic`, on real PostgreSQL and the S3 server: the drift pass
curates the window's corrected and approved traces and trains on them with the newest uploaded
data; without such traffic it skips and stores nothing; with a teacher it labels first."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.datasets.derived import store_rows
from registry.db import run_unit_of_work
from registry.models import Adapter, Feedback, LabellingJob, Teacher, Tenant, UsageRecord
from registry.models.enums import JobStatus
from registry.tenants.repository import TenantRepository
from registry.traffic.retrain import NO_TRAFFIC, train_after_labelling
from tests.registry.traffic.seed import SeededTrace, seed_traces
from tests.retraining.conftest import Retraining, orders
from tests.workers.teacher_server import Reply, Seen, teacher_server
from tests.workers.teacher_server import chat as answer
from workers.drift import compute_drift
from workers.labelling import run_labelling

WRONG = json.dumps({"item": "apples", "name": "Alice", "qty": 1}, sort_keys=True)


def _traffic(
    r: Retraining, slug: str, adapter: str, rows: list[dict[str, Any]], fates: list[str]
) -> list[tuple[SeededTrace, str]]:
    """Full traces of `rows`' prompts and feedback on them: `fix` (rated -1, corrected), `fix0`
    (rated 0, corrected), `ok` (the right answer served, rated 1), `bad` (rated -1, no
    correction), `none` (no feedback). Returns (trace, the right answer)."""
    traces, answers = [], []
    for row, fate in zip(rows, fates, strict=True):
        *prompt, answer = row["messages"]
        served = answer["content"] if fate == "ok" else WRONG
        traces.append(
            {"request": {"messages": prompt}, "response": {"role": "assistant", "content": served}}
        )
        answers.append(answer["content"])
    seeded = seed_traces(r.world, r.ctx.store, slug, adapter, 1, traces=traces)
    for session in run_unit_of_work(r.ctx.sessions):
        tenant = TenantRepository(session).get_by_slug(slug)
        assert tenant is not None
        for t, fate, right in zip(seeded, fates, answers, strict=True):
            if fate == "none":
                continue
            rating = {"fix": -1, "fix0": 0, "ok": 1, "bad": -1}[fate]
            correction = [{"role": "assistant", "content": right}] if "fix" in fate else None
            adapter_id, version_id = _usage_row(session, tenant.id, t.request_id)
            session.add(
                Feedback(
                    tenant_id=tenant.id,
                    adapter_id=adapter_id,
                    version_id=version_id,
                    request_id=t.request_id,
                    rating=rating,
                    correction=correction,
                    created_by="test",
                )
            )
    return list(zip(seeded, answers, strict=True))


def _usage_row(
    session: Session, tenant_id: uuid.UUID, request_id: str
) -> tuple[uuid.UUID, uuid.UUID]:
    stmt = select(UsageRecord.adapter_id, UsageRecord.version_id).where(
        UsageRecord.tenant_id == tenant_id, UsageRecord.request_id == request_id
    )
    adapter_id, version_id = session.execute(stmt).one()
    return adapter_id, version_id


def _setup(r: Retraining, slug: str, **policy: Any) -> dict[str, Any]:
    train = r.dataset(slug, "orders", orders(300, seed=0))
    r.adapter(slug, "orders", trained_on=train)
    newer = r.dataset(slug, "orders", orders(60, seed=9))  # uploaded after v1 was trained
    r.policy(slug, "orders", window="1h", min_samples=40, datasets="traffic", **policy)
    return newer


def _datasets(r: Retraining, slug: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = r.ok(r.http.get(f"/v1/tenants/{slug}/datasets", headers=r.ops))[
        "items"
    ]
    return items


def _content(r: Retraining, slug: str, dataset_id: str) -> list[dict[str, Any]]:
    resp = r.http.get(f"/v1/tenants/{slug}/datasets/{dataset_id}/content", headers=r.ops)
    assert resp.status_code == 200, resp.text
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def test_drift_trains_on_corrected_and_approved_traffic_with_the_newest_upload(
    retraining: Retraining,
) -> None:
    r = retraining
    newer = _setup(r, "tracy")
    fates = ["fix"] * 20 + ["fix0"] * 10 + ["ok"] * 10 + ["bad"] * 10 + ["none"] * 10
    seeded = _traffic(r, "tracy", "orders", orders(60, seed=7, shift=True), fates)

    [entry] = compute_drift(r.ctx, tenant="tracy", adapter="orders")

    assert entry["decision"]["outcome"] == "triggered", entry
    assert "40 curated rows" in entry["decision"]["message"]
    [job] = r.jobs("tracy", "orders")
    assert job["id"] == entry["decision"]["job_id"] and job["trigger"] == "drift"
    traffic = job["trigger_ref"]["traffic"]
    assert traffic["rows"] == 40 and traffic["corrected"] == 30 and traffic["matched"] == 60
    assert traffic["dataset"] == "orders-traffic" and traffic["version"] == 1
    assert traffic["uploaded"] == [{"name": "orders", "version": 2}]
    assert job["trigger_ref"]["drift"]["metric"] == "prompt_length_psi"
    assert r.train_tasks(job["id"]) == 1

    # The curated rows: the corrections and the approved answers, never the wrong ones.
    [curated] = [d for d in _datasets(r, "tracy") if d["name"] == "orders-traffic"]
    assert curated["id"] == traffic["dataset_id"] and curated["rows"] == 40
    assert curated["origin"]["kind"] == "traffic"
    rows = _content(r, "tracy", curated["id"])
    kept = {
        t.trace["request"]["messages"][-1]["content"]: right
        for (t, right), fate in zip(seeded, fates, strict=True)
        if fate in ("fix", "fix0", "ok")
    }
    assert {row["messages"][-2]["content"]: row["messages"][-1]["content"] for row in rows} == kept
    assert all(row["messages"][-1]["content"] != WRONG for row in rows)
    # v2 trains on the curated traffic and the newest upload of the name v1 was trained on
    assert job["dataset_ids"] == [curated["id"], newer["id"]]

    lineage = r.ok(
        r.http.get("/v1/tenants/tracy/adapters/orders/versions/2/lineage", headers=r.ops)
    )
    [trigger] = [n for n in lineage["nodes"] if n["type"] == "trigger"]
    assert trigger["attrs"]["kind"] == "drift" and trigger["attrs"]["traffic"]["rows"] == 40
    [node] = [n for n in lineage["nodes"] if n["type"] == "traffic"]
    assert node["id"] == f"traffic:{curated['id']}"
    events = r.ok(r.http.get("/v1/audit/events?action=drift_policy.triggered", headers=r.ops))
    [event] = [e for e in events["items"] if e["details"].get("job_id") == job["id"]]
    assert event["details"]["traffic"]["corrected"] == 30


def test_traffic_nobody_corrected_or_approved_starts_nothing_and_stores_nothing(
    retraining: Retraining,
) -> None:
    r = retraining
    _setup(r, "quiet")
    fates = ["none"] * 30 + ["bad"] * 20
    _traffic(r, "quiet", "orders", orders(50, seed=7, shift=True), fates)

    [entry] = compute_drift(r.ctx, tenant="quiet", adapter="orders")

    assert entry["decision"]["outcome"] == "skipped", entry
    assert NO_TRAFFIC in entry["decision"]["message"]
    assert r.jobs("quiet", "orders") == []
    assert "orders-traffic" not in {d["name"] for d in _datasets(r, "quiet")}
    policy = r.ok(r.http.get("/v1/tenants/quiet/adapters/orders/drift-policy", headers=r.ops))
    assert policy["last_outcome"] == "skipped" and policy["last_job_id"] is None


def test_a_busy_adapter_skips_and_keeps_no_curated_dataset(retraining: Retraining) -> None:
    r = retraining
    newer = _setup(r, "busy")
    _traffic(r, "busy", "orders", orders(50, seed=7, shift=True), ["fix"] * 50)
    manual = r.ok(
        r.http.post(
            "/v1/tenants/busy/training-jobs",
            json={"adapter": "orders", "dataset_ids": [newer["id"]]},
            headers=r.tenant("busy").headers,
        )
    )

    [entry] = compute_drift(r.ctx, tenant="busy", adapter="orders")

    assert entry["decision"]["outcome"] == "skipped"
    assert f"training job {manual['id']}" in entry["decision"]["message"]
    assert [j["id"] for j in r.jobs("busy", "orders")] == [manual["id"]]
    assert "orders-traffic" not in {d["name"] for d in _datasets(r, "busy")}


def _teacher(r: Retraining, name: str, base_url: str = "http://127.0.0.1:9/v1") -> None:
    for session in run_unit_of_work(r.ctx.sessions):
        session.add(
            Teacher(
                name=name,
                base_url=base_url,
                model="big",
                secret_name=None,
                requests_per_minute=60,
                timeout_seconds=5.0,
                max_retries=1,
                max_requests=100,
                max_tokens=64,
                enabled=True,
                created_by="test",
            )
        )


def test_with_a_teacher_labelling_comes_first_then_training_follows(retraining: Retraining) -> None:
    r = retraining
    _teacher(r, "sage")
    newer = _setup(r, "taught", teacher="sage")
    shifted = orders(60, seed=7, shift=True)
    _traffic(r, "taught", "orders", shifted, ["fix"] * 10 + ["none"] * 50)

    [entry] = compute_drift(r.ctx, tenant="taught", adapter="orders")

    assert entry["decision"]["outcome"] == "triggered", entry
    assert "labelling job" in entry["decision"]["message"]
    assert r.jobs("taught", "orders") == []  # no training before the teacher's answers
    for session in run_unit_of_work(r.ctx.sessions):
        [job] = session.execute(select(LabellingJob)).scalars().all()
        tenant = session.get(Tenant, job.tenant_id)
        assert tenant is not None and tenant.slug == "taught"
        assert job.params["skip_answered"] is True and job.params["dataset"].startswith("orders")
        assert job.followup is not None
        follow = job.followup["train"]
        assert follow["uploaded_dataset_ids"] == [newer["id"]]
        assert follow["trigger_ref"]["traffic"]["rows"] == 10
        curated_id = follow["curated_dataset_id"]
        # what the labelling worker does once the teacher answered
        labelled = store_rows(
            session,
            actor=Principal.local_operator(),
            tenant=tenant,
            name="orders-traffic-teacher",
            rows=shifted[10:40],  # the teacher's answers that passed the checks
            origin={"kind": "teacher", "teacher": "sage", "sent": 50, "kept": 30},
            store=r.ctx.store,
            settings=r.ctx.settings,
        )
        job.dataset_id, job.status = labelled.row.id, JobStatus.SUCCEEDED
        job.counts = {"sent": 50, "kept": 30, "refused": 20}
        training_job = train_after_labelling(
            session, job=job, settings=r.ctx.settings, queue=r.ctx.queue
        )
        assert training_job is not None
        adapter = session.get(Adapter, job.adapter_id)
        assert adapter is not None and training_job.adapter_id == adapter.id
        labelled_id = str(labelled.row.id)
    [trained] = r.jobs("taught", "orders")
    assert trained["trigger"] == "drift"
    assert trained["dataset_ids"] == [curated_id, labelled_id, newer["id"]]
    assert trained["trigger_ref"]["traffic"]["labelled"]["kept"] == 30


def test_the_teacher_path_end_to_end_drift_labelling_worker_then_training(
    retraining: Retraining,
) -> None:
    """The drift pass queues the labelling job; the real labelling worker asks a teacher over
    HTTP; its answers become a dataset and the worker starts the training job itself."""
    r = retraining
    shifted = orders(60, seed=11, shift=True)
    right = {row["messages"][-2]["content"]: row["messages"][-1]["content"] for row in shifted}

    def knows(seen: Seen) -> Reply:
        return answer(right[seen.body["messages"][-1]["content"]])

    with teacher_server(knows) as teacher:
        _teacher(r, "oracle", base_url=teacher.url)
        newer = _setup(r, "scholar", teacher="oracle")
        _traffic(r, "scholar", "orders", shifted, ["fix"] * 10 + ["none"] * 50)
        [entry] = compute_drift(r.ctx, tenant="scholar", adapter="orders")
        assert entry["decision"]["outcome"] == "triggered", entry
        for session in run_unit_of_work(r.ctx.sessions):
            scholar = TenantRepository(session).get_by_slug("scholar")
            assert scholar is not None
            stmt = select(LabellingJob.id).where(LabellingJob.tenant_id == scholar.id)
            job_id = str(session.execute(stmt).scalar_one())
        run_labelling(r.ctx, job_id, host="w1")
    asked = [s.body["messages"][-1]["content"] for s in teacher.seen]
    assert len(asked) == 50 and set(asked) <= set(right)  # the 10 corrected were not sent
    [trained] = r.jobs("scholar", "orders")
    assert trained["trigger"] == "drift"
    labelled = trained["trigger_ref"]["traffic"]["labelled"]
    assert labelled["kept"] == 50, labelled
    curated, taught, uploaded = trained["dataset_ids"]
    assert uploaded == newer["id"]
    rows = _content(r, "scholar", taught)
    assert {row["messages"][-1]["content"] for row in rows} <= set(right.values())
    assert len(_content(r, "scholar", curated)) == 10
