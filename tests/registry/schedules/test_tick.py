"""The scheduler tick: due schedules become training jobs with trigger 'schedule'."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from registry.db import run_unit_of_work
from registry.tasks import TRAIN
from registry.training.lifecycle import lifecycle
from tests.registry.schedules.conftest import ScheduleWorld, when
from tests.registry.training.conftest import ROWS

SECONDS = dt.timedelta(seconds=5)
DAY = dt.timedelta(days=1)


def _train_tasks(sw: ScheduleWorld) -> list[tuple[str, list, float]]:
    return [t for t in sw.world.stack.tasks.sent if t[0] == TRAIN]


def test_a_due_schedule_queues_one_job(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *")["next_run_at"])
    out = sw.tick(due + SECONDS)
    assert out.claimed == 1 and len(out.queued) == 1 and out.skipped == []

    (job,) = sw.jobs()
    assert job["id"] == str(out.queued[0])
    assert job["trigger"] == "schedule" and job["status"] == "queued"
    ref = job["trigger_ref"]
    assert when(ref["due_at"]) == due and when(ref["ticked_at"]) == due + SECONDS
    assert ref["missed_runs"] == 0
    assert ref["schedule"] == {"cron": "0 3 * * *", "timezone": "UTC"}
    assert job["dataset_ids"] == [sw.dataset["id"]]  # no version yet: all of acme's datasets
    assert _train_tasks(sw) == [(TRAIN, [job["id"]], 0)]
    (version,) = sw.versions()
    assert version["trigger"] == "schedule" and version["job_id"] == job["id"]

    schedule = sw.schedule()
    assert schedule["last_outcome"] == "queued" and schedule["last_job_id"] == job["id"]
    assert job["id"] in schedule["last_message"]
    assert when(schedule["last_due_at"]) == due
    assert when(schedule["last_run_at"]) == due + SECONDS
    assert when(schedule["next_run_at"]) == due + DAY
    assert when(schedule["upcoming"][0]) == due + DAY

    again = sw.tick(due + SECONDS)  # the same moment again: nothing is due any more
    assert (again.claimed, again.queued, again.skipped) == (0, [], [])
    assert len(sw.jobs()) == 1 and len(_train_tasks(sw)) == 1

    (fired,) = sw.audit("schedule.fired")
    assert fired["actor"] == "scheduler" and job["created_by"] == "scheduler"
    assert fired["details"]["outcome"] == "queued" and fired["details"]["job_id"] == job["id"]
    assert when(fired["details"]["next_run_at"]) == due + DAY


def test_not_due_yet_and_disabled_do_nothing(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *")["next_run_at"])
    out = sw.tick(due - SECONDS)
    assert (out.claimed, out.queued) == (0, [])
    sw.set("0 3 * * *", enabled=False)
    out = sw.tick(due + 10 * DAY)
    assert (out.claimed, out.queued) == (0, [])
    assert sw.jobs() == [] and _train_tasks(sw) == []
    schedule = sw.schedule()
    assert schedule["last_outcome"] == "" and schedule["last_run_at"] is None


def test_missed_due_times_collapse_into_one_run(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 * * * *")["next_run_at"])
    now = due + dt.timedelta(hours=5, minutes=30)
    out = sw.tick(now)
    assert len(out.queued) == 1
    (job,) = sw.jobs()
    assert job["trigger_ref"]["missed_runs"] == 5
    assert when(job["trigger_ref"]["due_at"]) == due
    schedule = sw.schedule()
    assert when(schedule["next_run_at"]) == due + dt.timedelta(hours=6)
    assert when(schedule["last_due_at"]) == due
    (fired,) = sw.audit("schedule.fired")
    assert fired["details"]["missed_runs"] == 5


def test_busy_adapter_is_skipped_and_the_schedule_moves_on(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *")["next_run_at"])
    first = sw.tick(due + SECONDS).queued[0]  # still queued: RecordingQueue never runs it
    out = sw.tick(due + DAY + SECONDS)
    assert out.claimed == 1 and out.queued == []
    (why,) = out.skipped
    assert why.startswith("acme/support: ") and str(first) in why
    assert len(sw.jobs()) == 1 and len(_train_tasks(sw)) == 1
    schedule = sw.schedule()
    assert schedule["last_outcome"] == "skipped" and schedule["last_job_id"] is None
    assert str(first) in schedule["last_message"] and "queued" in schedule["last_message"]
    assert when(schedule["last_due_at"]) == due + DAY
    assert when(schedule["next_run_at"]) == due + 2 * DAY
    outcomes = [e["details"]["outcome"] for e in sw.audit("schedule.fired")]
    assert outcomes == ["queued", "skipped"]


def test_a_finished_job_does_not_block_the_next_run(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *")["next_run_at"])
    first = sw.tick(due + SECONDS).queued[0]
    resp = sw.http.post(f"/v1/tenants/acme/training-jobs/{first}/cancel", headers=sw.acme.headers)
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    out = sw.tick(due + DAY + SECONDS)
    assert len(out.queued) == 1 and out.queued[0] != first
    assert [v["version"] for v in sw.versions()] in ([1, 2], [2, 1])


@pytest.mark.parametrize(("mode", "expected"), [("latest", ["v2"]), ("all", ["v1", "v2"])])
def test_dataset_selection(sw: ScheduleWorld, mode: str, expected: list[str]) -> None:
    orders = {
        "v1": sw.upload_dataset("orders", ROWS[:5]),
        "v2": sw.upload_dataset("orders", ROWS[5:]),
    }
    assert [orders["v1"]["version"], orders["v2"]["version"]] == [1, 2]
    sw.upload_dataset("returns", ROWS[:3])
    due = when(sw.set("0 3 * * *", dataset_names=["orders"], datasets=mode)["next_run_at"])
    assert len(sw.tick(due + SECONDS).queued) == 1
    (job,) = sw.jobs()
    assert job["dataset_ids"] == [orders[v]["id"] for v in expected]
    assert job["trigger_ref"]["datasets"] == mode
    (version,) = sw.versions()
    assert sorted((d["id"], d["role"]) for d in version["datasets"]) == sorted(
        (orders[v]["id"], "train") for v in expected
    )


def _train_to_ready(sw: ScheduleWorld, job_id: str) -> None:
    """What a worker does, minus the training: claim, store, ready, succeed."""
    for session in run_unit_of_work(sw.world.stack.app.state.sessionmaker):
        claim = lifecycle.claim(session, job_id=uuid.UUID(job_id), worker="w1", lease_seconds=60)
        assert claim.state == "claimed" and claim.job is not None
        lifecycle.record_artifact(
            session,
            job=claim.job,
            prefix="artifacts/x",
            manifest={},
            manifest_digest="0" * 64,
            size_bytes=1,
        )
        lifecycle.mark_ready(session, job=claim.job)
        lifecycle.succeed(session, job=claim.job, result={})


def test_default_names_are_those_the_current_version_was_trained_on(sw: ScheduleWorld) -> None:
    orders = sw.upload_dataset("orders", ROWS[:5])
    manual = sw.create_job(dataset_ids=[orders["id"]])  # version 1, trained on 'orders' only
    assert manual.status_code == 201, manual.text
    _train_to_ready(sw, manual.json()["id"])
    newer = sw.upload_dataset("orders", ROWS[5:])
    due = when(sw.set("0 3 * * *")["next_run_at"])
    (queued,) = sw.tick(due + SECONDS).queued
    job = next(j for j in sw.jobs() if j["id"] == str(queued))
    assert job["dataset_ids"] == [newer["id"]]  # not 'chat', which v1 was not trained on
    assert [v["parent_version"] for v in sw.versions() if v["version"] == 2] == [1]


def test_without_a_ready_version_the_default_is_every_dataset_name(sw: ScheduleWorld) -> None:
    orders = sw.upload_dataset("orders", ROWS[:5])
    manual = sw.create_job(dataset_ids=[orders["id"]]).json()
    resp = sw.http.post(
        f"/v1/tenants/acme/training-jobs/{manual['id']}/cancel", headers=sw.acme.headers
    )
    assert resp.status_code == 200  # a cancelled version is not the current one
    due = when(sw.set("0 3 * * *")["next_run_at"])
    (queued,) = sw.tick(due + SECONDS).queued
    job = next(j for j in sw.jobs() if j["id"] == str(queued))
    assert job["dataset_ids"] == [sw.dataset["id"], orders["id"]]  # 'chat', 'orders'


def test_no_datasets_is_skipped_and_nothing_is_left_behind(sw: ScheduleWorld) -> None:
    globex = sw.world.tenant("globex")
    sw.add_adapter(globex, "bot")
    due = when(sw.put("0 3 * * *", adapter="bot", tenant="globex").json()["next_run_at"])
    out = sw.tick(due + SECONDS)
    assert out.claimed == 1 and out.queued == []
    (why,) = out.skipped
    assert why.startswith("globex/bot: ") and "no datasets" in why
    assert sw.jobs("globex", headers=globex.headers) == []
    assert sw.versions("bot", "globex", headers=globex.headers) == []
    assert _train_tasks(sw) == []
    resp = sw.get("bot", "globex", headers=globex.headers)
    schedule = resp.json()
    assert schedule["last_outcome"] == "skipped" and "no datasets" in schedule["last_message"]
    assert "'bot'" in schedule["last_message"]
    assert when(schedule["next_run_at"]) == due + DAY


def test_one_tick_handles_several_tenants(sw: ScheduleWorld) -> None:
    globex = sw.world.tenant("globex")
    sw.add_adapter(globex, "bot")
    sw.upload_dataset("g", ROWS, headers=globex.headers, tenant="globex")
    acme_due = when(sw.set("0 3 * * *")["next_run_at"])
    globex_due = when(sw.put("0 3 * * *", adapter="bot", tenant="globex").json()["next_run_at"])
    assert acme_due == globex_due
    out = sw.tick(acme_due + SECONDS)
    assert out.claimed == 2 and len(out.queued) == 2
    assert len(sw.jobs()) == 1 and len(sw.jobs("globex", headers=globex.headers)) == 1


def test_lineage_shows_the_schedule_that_triggered_the_version(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *", timezone="Europe/Berlin")["next_run_at"])
    (job_id,) = sw.tick(due + SECONDS).queued
    (version,) = sw.versions()
    url = f"/v1/tenants/acme/adapters/support/versions/{version['version']}/lineage"
    resp = sw.http.get(url, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    graph = resp.json()
    (trigger,) = [n for n in graph["nodes"] if n["type"] == "trigger"]
    assert trigger["id"] == f"trigger:{version['id']}"
    assert trigger["attrs"]["kind"] == "schedule"
    assert trigger["attrs"]["schedule"] == {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    assert trigger["attrs"]["missed_runs"] == 0
    assert "0 3 * * *" in trigger["label"] and "Europe/Berlin" in trigger["label"]
    edges = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert (f"job:{job_id}", trigger["id"], "wasInformedBy") in edges
    assert (f"version:{version['id']}", f"job:{job_id}", "wasGeneratedBy") in edges

    resp = sw.http.get(url, params={"format": "prov"}, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    activity = doc["activity"][f"loraplex:trigger/{version['id']}"]
    assert activity["prov:type"] == {"$": "loraplex:ScheduledRun", "type": "prov:QUALIFIED_NAME"}
    informed = {(r["prov:informed"], r["prov:informant"]) for r in doc["wasInformedBy"].values()}
    assert informed == {(f"loraplex:job/{job_id}", f"loraplex:trigger/{version['id']}")}
