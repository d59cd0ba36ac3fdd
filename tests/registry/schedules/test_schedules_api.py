"""Retrain schedules over HTTP: set by ops, read by the tenant, listed across tenants."""

from __future__ import annotations

import datetime as dt

import pytest

from registry.db import utcnow
from tests.registry.schedules.conftest import ScheduleWorld, when


def test_put_get_delete(sw: ScheduleWorld) -> None:
    before = utcnow()
    resp = sw.put("0 3 * * *")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["tenant"], body["adapter"], body["cron"]) == ("acme", "support", "0 3 * * *")
    assert body["timezone"] == "UTC" and body["enabled"] is True
    assert body["datasets"] == "latest" and body["dataset_names"] is None
    assert body["last_outcome"] == "" and body["last_job_id"] is None
    assert body["updated_by"] == sw.world.ops.client_id
    first = when(body["next_run_at"])
    assert before < first <= before + dt.timedelta(days=1)
    assert (first.hour, first.minute, first.second) == (3, 0, 0)
    upcoming = [when(u) for u in body["upcoming"]]
    assert upcoming == [first, first + dt.timedelta(days=1), first + dt.timedelta(days=2)]
    assert sw.schedule() == body  # the tenant reads what ops set

    resp = sw.http.delete(sw.url(), headers=sw.world.ops.headers)
    assert resp.status_code == 204
    gone = sw.get()
    assert gone.status_code == 404 and "support" in gone.json()["detail"]
    assert sw.http.delete(sw.url(), headers=sw.world.ops.headers).status_code == 404


def test_put_again_replaces(sw: ScheduleWorld) -> None:
    first = sw.set("0 3 * * *")
    again = sw.set("0 3 * * *")
    assert again["next_run_at"] == first["next_run_at"]  # unchanged: keeps its due time
    berlin = sw.set("0 3 1 1,4,7,10 *", timezone="Europe/Berlin", datasets="all")
    assert (berlin["cron"], berlin["timezone"], berlin["datasets"]) == (
        "0 3 1 1,4,7,10 *",
        "Europe/Berlin",
        "all",
    )
    runs = [when(u) for u in berlin["upcoming"]]
    assert len(runs) == 3 and all(a < b for a, b in zip(runs, runs[1:], strict=False))
    for run in runs:  # 03:00 in Berlin on the first of a quarter: 02:00Z (CET) or 01:00Z (CEST)
        local = run.astimezone(dt.timezone(dt.timedelta(hours=1 if run.hour == 2 else 2)))
        assert (local.month, local.day, local.hour) in {(m, 1, 3) for m in (1, 4, 7, 10)}
    assert sw.schedule() == berlin


def test_disabled_has_no_next_run(sw: ScheduleWorld) -> None:
    sw.set("0 3 * * *")
    off = sw.set("0 3 * * *", enabled=False)
    assert off["enabled"] is False and off["next_run_at"] is None and off["upcoming"] == []
    assert sw.schedule() == off
    on = sw.set("0 3 * * *", enabled=True)
    assert on["next_run_at"] is not None and len(on["upcoming"]) == 3


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"cron": "61 * * * *"}, "'61 * * * *'"),
        ({"cron": "0 0 30 2 *"}, "'0 0 30 2 *'"),
        ({"cron": "0 3 * *"}, "5 fields"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Base"}, "'Mars/Base'"),
        ({"cron": "0 3 * * *", "dataset_names": ["chat", "nope"]}, "'nope'"),
        ({"cron": "0 3 * * *", "datasets": "newest"}, "datasets"),
        ({"cron": ""}, "cron"),
    ],
)
def test_bad_schedule_is_422_and_nothing_is_stored(
    sw: ScheduleWorld, body: dict, needle: str
) -> None:
    resp = sw.http.put(sw.url(), json=body, headers=sw.world.ops.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "Unprocessable"
    assert needle in resp.json()["detail"]
    assert sw.get().status_code == 404
    # and an existing schedule stays as it was
    kept = sw.set("0 4 * * *")
    resp = sw.http.put(sw.url(), json=body, headers=sw.world.ops.headers)
    assert resp.status_code == 422
    assert sw.schedule() == kept
    assert [e["details"]["cron"] for e in sw.audit("schedule.set")] == ["0 4 * * *"]


def test_unknown_and_archived_adapters(sw: ScheduleWorld) -> None:
    resp = sw.put("0 3 * * *", adapter="nope")
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]
    assert sw.get(adapter="nope").status_code == 404
    sw.http.post("/v1/tenants/acme/adapters/support/archive", headers=sw.acme.headers)
    resp = sw.put("0 3 * * *")
    assert resp.status_code == 409 and "archived" in resp.json()["detail"]
    assert sw.get().status_code == 404


def test_dataset_names_are_kept(sw: ScheduleWorld) -> None:
    body = sw.set("0 3 * * *", dataset_names=["chat"], datasets="all")
    assert body["dataset_names"] == ["chat"] and body["datasets"] == "all"


def test_ops_list_across_tenants_soonest_first(sw: ScheduleWorld) -> None:
    globex = sw.world.tenant("globex")
    sw.add_adapter(globex, "bot")
    sw.add_adapter(sw.acme, "faq")
    sw.set("0 0 29 2 *")  # acme/support: the next leap day
    assert sw.put("*/5 * * * *", adapter="bot", tenant="globex").status_code == 200
    assert sw.put("0 3 * * *", adapter="faq", enabled=False).status_code == 200

    resp = sw.http.get("/v1/schedules", headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [(i["tenant"], i["adapter"]) for i in items] == [
        ("globex", "bot"),
        ("acme", "support"),
        ("acme", "faq"),  # disabled: no next run, last
    ]
    assert when(items[0]["next_run_at"]) < when(items[1]["next_run_at"])
    assert items[2]["next_run_at"] is None
    assert all(len(i["upcoming"]) == 3 for i in items[:2])

    resp = sw.http.get("/v1/schedules?tenant=acme", headers=sw.world.auditor.headers)
    assert [i["adapter"] for i in resp.json()["items"]] == ["support", "faq"]
    resp = sw.http.get("/v1/schedules?enabled=false", headers=sw.world.ops.headers)
    assert [i["adapter"] for i in resp.json()["items"]] == ["faq"]
    resp = sw.http.get("/v1/schedules?tenant=globex&limit=1", headers=sw.world.ops.headers)
    assert [i["adapter"] for i in resp.json()["items"]] == ["bot"]
    resp = sw.http.get("/v1/schedules?tenant=nobody", headers=sw.world.ops.headers)
    assert resp.status_code == 404 and "nobody" in resp.json()["detail"]


def test_set_and_delete_are_audited(sw: ScheduleWorld) -> None:
    sw.set("0 3 * * *", timezone="Europe/Berlin")
    sw.set("0 3 * * *", enabled=False)
    assert sw.http.delete(sw.url(), headers=sw.world.ops.headers).status_code == 204
    sets = sw.audit("schedule.set")
    assert [(e["details"]["timezone"], e["details"]["enabled"]) for e in sets] == [
        ("Europe/Berlin", True),
        ("UTC", False),
    ]
    assert sets[0]["details"]["adapter"] == "support" and sets[0]["details"]["next_run_at"]
    assert sets[1]["details"]["next_run_at"] is None
    (deleted,) = sw.audit("schedule.delete")
    assert deleted["details"] == {"adapter": "support", "cron": "0 3 * * *", "timezone": "UTC"}
    for event in [*sets, deleted]:
        assert event["actor"] == sw.world.ops.client_id
        assert event["tenant_id"] == sw.acme.tenant_id
        assert event["target_type"] == "adapter"
