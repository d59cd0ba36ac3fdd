"""Labelling jobs through the API: queued after commit, refused inputs, tenant isolation,
cancel, and a teacher that jobs name cannot be deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.tasks import LABEL
from tests.conftest import World
from tests.workers.labelling_world import LabelWorld

URL = "/v1/tenants/acme/adapters/support/labelling-jobs"


@pytest.fixture
def lw(world: World, tmp_path: Path) -> LabelWorld:
    (tmp_path / "secrets").mkdir()
    world_ = LabelWorld(world, tmp_path / "tiny-base", tmp_path / "secrets")
    world_.add_teacher("https://teacher.example/v1")
    return world_


def test_create_read_list_and_cancel(lw: LabelWorld) -> None:
    job = lw.create_job(window="24h", max_prompts=5, version=1)
    assert job["status"] == "queued" and job["teacher"] == "tutor" and job["adapter"] == "support"
    params = job["params"]
    assert params["dataset"] == "taught" and params["max_prompts"] == 5 and params["version"] == 1
    assert params["skip_answered"] is True and params["since"] < params["until"]
    assert lw.world.stack.tasks.sent == [(LABEL, [job["id"]], 0)]
    listed = lw.http.get("/v1/tenants/acme/labelling-jobs", headers=lw.acme.headers).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    by_auditor = lw.http.get(
        f"/v1/tenants/acme/labelling-jobs/{job['id']}", headers=lw.world.auditor.headers
    )
    assert by_auditor.status_code == 200
    again = lw.http.post(URL, json={"teacher": "tutor", "dataset": "x"}, headers=lw.acme.headers)
    assert again.status_code == 409 and "still queued" in again.json()["detail"]
    assert lw.http.delete("/v1/teachers/tutor", headers=lw.world.ops.headers).status_code == 409

    cancel = f"/v1/tenants/acme/labelling-jobs/{job['id']}/cancel"
    resp = lw.http.post(cancel, headers=lw.acme.headers)
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert lw.http.post(cancel, headers=lw.acme.headers).status_code == 409
    resp = lw.http.delete("/v1/teachers/tutor", headers=lw.world.ops.headers)
    assert resp.status_code == 409 and "disable it instead" in resp.json()["detail"]
    actions = [
        e["action"]
        for e in lw.http.get("/v1/audit/events", headers=lw.world.ops.headers).json()["items"]
    ]
    assert "labelling_job.create" in actions and "labelling_job.cancel" in actions


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"teacher": "nope"}, 422, "teacher 'nope' not found; enabled teachers: tutor"),
        ({"window": "7d", "since": "2026-01-01T00:00:00Z"}, 422, "either window or since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422, "before"),
        ({"since": "2026-01-02T00:00:00"}, 422, "timezone"),
        ({"dataset": "bad name"}, 422, "dataset"),
        ({"max_prompts": 0}, 422, "max_prompts"),
        ({"version": 9}, 404, "version 9"),
    ],
)
def test_bad_requests_store_nothing(lw: LabelWorld, body: dict, status: int, needle: str) -> None:
    payload = {"teacher": "tutor", "dataset": "taught"} | body
    resp = lw.http.post(URL, json=payload, headers=lw.acme.headers)
    assert resp.status_code == status and needle in resp.text, resp.text
    assert lw.http.get("/v1/tenants/acme/labelling-jobs", headers=lw.acme.headers).json() == {
        "items": []
    }
    assert lw.world.stack.tasks.sent == []


def test_a_disabled_teacher_is_refused(lw: LabelWorld) -> None:
    lw.http.patch("/v1/teachers/tutor", json={"enabled": False}, headers=lw.world.ops.headers)
    resp = lw.http.post(URL, json={"teacher": "tutor", "dataset": "d"}, headers=lw.acme.headers)
    assert resp.status_code == 422 and "disabled" in resp.json()["detail"]


def test_another_tenant_sees_nothing(lw: LabelWorld) -> None:
    job = lw.create_job()
    globex = lw.world.tenant("globex")
    for method, path in [
        ("GET", f"/v1/tenants/globex/labelling-jobs/{job['id']}"),
        ("POST", f"/v1/tenants/globex/labelling-jobs/{job['id']}/cancel"),
        ("GET", f"/v1/tenants/acme/labelling-jobs/{job['id']}"),
        ("POST", "/v1/tenants/globex/adapters/support/labelling-jobs"),
    ]:
        body = {"teacher": "tutor", "dataset": "d"} if method == "POST" else None
        resp = lw.http.request(method, path, json=body, headers=globex.headers)
        assert resp.status_code == 404, (path, resp.text)
    listed = lw.http.get("/v1/tenants/globex/labelling-jobs", headers=globex.headers).json()
    assert listed == {"items": []}
