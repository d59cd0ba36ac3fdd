"""Drift policies that retrain on traffic: `datasets: traffic`, a teacher, the curated dataset's
name; schedules refuse `traffic`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.db import run_unit_of_work
from registry.models import Teacher
from tests.conftest import World
from tests.registry.training.conftest import JobWorld

POLICY = "/v1/tenants/acme/adapters/support/drift-policy"


class PolicyWorld(JobWorld):
    def put(self, headers: dict[str, str] | None = None, **body: Any) -> Any:
        return self.http.put(POLICY, json=body, headers=headers or self.world.ops.headers)

    def teacher(self, name: str, *, enabled: bool = True) -> None:
        for session in run_unit_of_work(self.world.stack.app.state.sessionmaker):
            session.add(
                Teacher(
                    name=name,
                    base_url="http://127.0.0.1:9/v1",
                    model="big",
                    secret_name=None,
                    requests_per_minute=60,
                    timeout_seconds=30.0,
                    max_retries=3,
                    max_requests=1000,
                    max_tokens=256,
                    enabled=enabled,
                    created_by="test",
                )
            )


@pytest.fixture
def pw(world: World, tmp_path: Path) -> PolicyWorld:
    return PolicyWorld(world, tmp_path / "tiny-base")


def _problem(resp: Any) -> str:
    assert resp.status_code == 422, resp.text
    return str(resp.json())


def test_a_traffic_policy_names_its_curated_dataset_and_teacher(pw: PolicyWorld) -> None:
    resp = pw.put(datasets="traffic", window="1h", min_samples=40)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["datasets"] == "traffic" and body["teacher"] is None
    assert body["traffic_dataset"] == "support-traffic"  # the default: '<adapter>-traffic'

    pw.teacher("big-model")
    resp = pw.put(datasets="traffic", teacher="big-model", traffic_dataset="desk-traces")
    assert resp.status_code == 200, resp.text
    assert resp.json()["teacher"] == "big-model"
    assert resp.json()["traffic_dataset"] == "desk-traces"
    got = pw.http.get(POLICY, headers=pw.acme.headers).json()  # the tenant reads it too
    assert got["teacher"] == "big-model" and got["traffic_dataset"] == "desk-traces"

    # back to uploaded data: the teacher and the curated name go
    resp = pw.put(datasets="latest")
    assert resp.status_code == 200, resp.text
    assert resp.json()["teacher"] is None and resp.json()["traffic_dataset"] is None
    events = pw.http.get("/v1/audit/events?action=drift_policy.set", headers=pw.world.ops.headers)
    teachers = [e["details"].get("teacher") for e in events.json()["items"]]
    assert "big-model" in teachers


def test_traffic_options_are_refused_elsewhere_or_when_unknown(pw: PolicyWorld) -> None:
    assert "only for datasets 'traffic'" in _problem(pw.put(teacher="big-model"))
    assert "only for datasets 'traffic'" in _problem(pw.put(traffic_dataset="x"))
    assert "teacher 'nobody' not found" in _problem(pw.put(datasets="traffic", teacher="nobody"))
    pw.teacher("retired", enabled=False)
    assert "is disabled" in _problem(pw.put(datasets="traffic", teacher="retired"))
    assert "traffic_dataset" in _problem(pw.put(datasets="traffic", traffic_dataset="../up"))
    # uploaded data named with a traffic policy must exist
    resp = pw.put(datasets="traffic", dataset_names=["missing"])
    assert "no uploaded dataset named 'missing'" in _problem(resp)
    resp = pw.put(datasets="traffic", dataset_names=["chat"])
    assert resp.status_code == 200, resp.text
    # nothing was stored by the refusals
    assert pw.http.get(POLICY, headers=pw.world.ops.headers).json()["dataset_names"] == ["chat"]


def test_a_tenant_cannot_set_a_policy_and_another_tenant_sees_none(pw: PolicyWorld) -> None:
    assert pw.put(headers=pw.acme.headers, datasets="traffic").status_code == 403
    globex = pw.world.tenant("globex")
    resp = pw.http.put(
        "/v1/tenants/globex/adapters/support/drift-policy",
        json={"datasets": "traffic"},
        headers=pw.world.ops.headers,
    )
    assert resp.status_code == 404
    assert pw.http.get(POLICY, headers=globex.headers).status_code == 404


def test_schedules_refuse_traffic(pw: PolicyWorld) -> None:
    resp = pw.http.put(
        "/v1/tenants/acme/adapters/support/schedule",
        json={"cron": "0 3 * * *", "datasets": "traffic"},
        headers=pw.world.ops.headers,
    )
    assert "traffic is for drift policies" in _problem(resp)
