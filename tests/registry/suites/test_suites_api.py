"""Eval-suite uploads through the API on real PostgreSQL + S3 (SQLite + folder for smoke): tenant
suites and ops' platform suites, stored like datasets (validated, de-duplicated, immutable)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from registry.models import AuditEvent, EvalSuite
from registry.suites.service import suites
from tests.conftest import Caller, World
from tests.registry.datasets.test_datasets_api import chat as dataset_row
from tests.registry.datasets.test_datasets_api import upload as upload_dataset


def row(i: int, *checks: dict[str, Any]) -> bytes:
    body = {
        "id": f"q-{i}",
        "messages": [{"role": "user", "content": f"question {i}"}],
        "checks": list(checks) or [{"type": "contains", "value": str(i)}],
    }
    return json.dumps(body).encode() + b"\n"


def upload(
    world: World, who: Caller, body: bytes, name: str = "golden", path: str | None = None
) -> Any:  # the test client's response
    return world.http.post(
        path or f"/v1/tenants/{who.slug}/eval-suites",
        headers=who.headers,
        data={"name": name},
        files={"file": ("suite.jsonl", body)},
    )


def count_suites(world: World) -> int:
    with world.stack.session() as session:
        return session.execute(select(func.count()).select_from(EvalSuite)).scalar_one()


@pytest.mark.smoke
def test_upload_dedups_hashes_stores_and_downloads(world: World) -> None:
    acme = world.tenant("acme")
    loss = {"type": "loss", "reference": "Four.", "max_loss": 2.0}
    body = row(0, loss) + b"".join(row(i) for i in range(1, 5)) + row(2)
    resp = upload(world, acme, body)
    assert resp.status_code == 201, resp.text
    suite = resp.json()
    kept = row(0, loss) + b"".join(row(i) for i in range(1, 5))
    assert suite["rows"] == 5 and suite["duplicates_dropped"] == 1 and suite["format"] == "chat"
    assert suite["check_counts"] == {"contains": 4, "loss": 1} and suite["owner"] == "tenant"
    assert suite["version"] == 1 and suite["created_by"] == acme.client_id
    assert suite["sha256"] == hashlib.sha256(kept).hexdigest() and suite["bytes"] == len(kept)
    keys = list(world.stack.store.list_keys(""))
    assert len(keys) == 1 and re.fullmatch(
        rf"tenants/{acme.tenant_id}/eval-suites/uploads/[0-9a-f]{{32}}\.jsonl", keys[0]
    )
    base = "/v1/tenants/acme/eval-suites"
    got = world.http.get(f"{base}/{suite['id']}/content", headers=acme.headers)
    assert got.status_code == 200 and got.content == kept
    assert got.headers["x-content-sha256"] == suite["sha256"]
    assert world.http.get(f"{base}/{suite['id']}", headers=acme.headers).json() == suite
    listed = world.http.get(base, headers=acme.headers).json()["items"]
    assert [s["id"] for s in listed] == [suite["id"]]
    with world.stack.session() as session:
        event = session.execute(
            select(AuditEvent).where(AuditEvent.action == "eval_suite.create")
        ).scalar_one()
        assert event.details["check_counts"] == {"contains": 4, "loss": 1}


def test_prompt_form(world: World) -> None:
    acme = world.tenant("acme")
    body = (
        b'{"prompt": "The capital of France is", "checks": [{"type": "regex", "pattern": "Paris"}]}'
    )
    suite = upload(world, acme, body).json()
    assert suite["format"] == "prompt" and suite["check_counts"] == {"regex": 1}


def test_same_content_is_idempotent_new_content_is_a_new_version(world: World) -> None:
    acme = world.tenant("acme")
    first = upload(world, acme, row(1))
    again = upload(world, acme, row(1))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    second = upload(world, acme, row(1) + row(2))
    assert second.status_code == 201 and second.json()["version"] == 2
    other = upload(world, acme, row(1), name="copy")
    assert other.status_code == 201 and other.json()["version"] == 1
    assert len(list(world.stack.store.list_keys(""))) == 2  # same content, stored once
    listed = world.http.get("/v1/tenants/acme/eval-suites?name=golden", headers=acme.headers)
    assert [s["version"] for s in listed.json()["items"]] == [2, 1]
    with world.stack.session() as session:
        tenant_id = uuid.UUID(acme.tenant_id or "")
        assert suites.resolve(session, tenant_id, "golden", None).version == 2
        assert suites.resolve(session, tenant_id, "golden", 1).id == uuid.UUID(first.json()["id"])
        with pytest.raises(Exception, match="version 3 of eval suite 'golden' not found"):
            suites.resolve(session, tenant_id, "golden", 3)
        with pytest.raises(Exception, match="platform eval suite 'golden' not found"):
            suites.resolve(session, None, "golden", None)


@pytest.mark.smoke
def test_invalid_file_is_a_422_report_by_line_and_nothing_is_stored(world: World) -> None:
    acme = world.tenant("acme")
    bad_regex = row(2, {"type": "regex", "pattern": "(?<=a)b"})
    answered = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ],
            "checks": [{"type": "exact", "value": "a"}],
        }
    ).encode()
    resp = upload(world, acme, row(1) + bad_regex + answered + b"\n" + row(4))
    assert resp.status_code == 422, resp.text
    out = resp.json()
    report = out["report"]
    assert report["invalid"] == 2 and report["lines"] == 4
    assert [e["line"] for e in report["errors"]] == [2, 3]
    assert "check 1 (regex)" in report["errors"][0]["reason"]
    assert "is from assistant" in report["errors"][1]["reason"]
    assert out["detail"].startswith("2 of 4 lines are invalid; nothing was stored. First: line 2")
    assert count_suites(world) == 0 and list(world.stack.store.list_keys("")) == []


def test_rows_over_the_limit_are_413(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "eval_suite_max_rows", 3)
    acme = world.tenant("acme")
    resp = upload(world, acme, b"".join(row(i) for i in range(4)))
    assert resp.status_code == 413, resp.text
    assert "more than 3 rows" in resp.json()["detail"]
    assert "LORAPLEX_EVAL_SUITE_MAX_ROWS" in resp.json()["detail"]
    assert count_suites(world) == 0 and list(world.stack.store.list_keys("")) == []


def test_suites_and_datasets_share_the_dataset_quota(world: World) -> None:
    acme = world.tenant("acme", quota_dataset_bytes=3000)
    data = b"".join(dataset_row(i) for i in range(10))  # ~1.0 KB
    assert upload_dataset(world, acme, data).status_code == 201
    small = b"".join(row(i) for i in range(10))  # ~1.2 KB; the next ~1.25 KB fits only
    # if the datasets were not counted
    assert upload(world, acme, small).status_code == 201
    assert upload(world, acme, small, name="alias").status_code == 201  # same bytes: free
    resp = upload(world, acme, b"".join(row(i) for i in range(100, 110)), name="more")
    assert resp.status_code == 413, resp.text
    assert "dataset quota exceeded" in resp.json()["detail"]
    assert "datasets and eval suites" in resp.json()["detail"]
    assert count_suites(world) == 2 and len(list(world.stack.store.list_keys(""))) == 2
    # over the whole quota while streaming: refused before the file ends
    resp = upload(world, acme, b"".join(row(i) for i in range(200, 260)), name="big")
    assert resp.status_code == 413 and "whole dataset quota" in resp.json()["detail"]


def test_other_tenants_suite_is_404_everywhere(world: World) -> None:
    acme, globex = world.tenant("acme"), world.tenant("globex")
    suite = upload(world, acme, row(1)).json()
    for path in (
        f"/v1/tenants/globex/eval-suites/{suite['id']}",
        f"/v1/tenants/globex/eval-suites/{suite['id']}/content",
        f"/v1/tenants/acme/eval-suites/{suite['id']}",
        f"/v1/platform/eval-suites/{suite['id']}",  # a tenant's suite is no platform suite
    ):
        resp = world.http.get(path, headers=globex.headers)
        assert resp.status_code == 404, path
    listed = world.http.get("/v1/tenants/globex/eval-suites", headers=globex.headers)
    assert listed.json()["items"] == []
    resp = world.http.get(f"/v1/tenants/acme/eval-suites/{uuid.uuid4()}", headers=acme.headers)
    assert resp.status_code == 404


@pytest.mark.smoke
def test_platform_suites_are_ops_to_upload_and_everyone_reads(world: World) -> None:
    acme = world.tenant("acme")
    path = "/v1/platform/eval-suites"
    refused = upload(world, acme, row(1), name="general", path=path)
    assert refused.status_code == 403 and "base_models:write" in refused.json()["detail"]
    assert upload(world, world.auditor, row(1), name="general", path=path).status_code == 403
    resp = upload(world, world.ops, row(1), name="general", path=path)
    assert resp.status_code == 201, resp.text
    suite = resp.json()
    assert suite["owner"] == "platform" and suite["created_by"] == world.ops.client_id
    keys = list(world.stack.store.list_keys(""))
    assert len(keys) == 1 and re.fullmatch(
        r"platform/eval-suites/uploads/[0-9a-f]{32}\.jsonl", keys[0]
    )
    again = upload(world, world.ops, row(1), name="general", path=path)
    assert again.status_code == 200 and again.json()["id"] == suite["id"]
    v2 = upload(world, world.ops, row(1) + row(2), name="general", path=path).json()
    assert v2["version"] == 2
    for who in (acme, world.auditor, world.ops):
        listed = world.http.get(path, headers=who.headers).json()["items"]
        assert [s["version"] for s in listed] == [2, 1]
        got = world.http.get(f"{path}/{suite['id']}/content", headers=who.headers)
        assert got.status_code == 200 and got.content == row(1)
    # platform and tenant suites never mix, even under the same name
    assert (
        world.http.get("/v1/tenants/acme/eval-suites", headers=acme.headers).json()["items"] == []
    )
    resp = world.http.get(f"/v1/tenants/acme/eval-suites/{suite['id']}", headers=acme.headers)
    assert resp.status_code == 404
    assert upload(world, acme, row(1), name="general").json()["version"] == 1
    with world.stack.session() as session:
        assert suites.resolve(session, None, "general", None).version == 2


def test_platform_suite_invalid_is_422(world: World) -> None:
    resp = upload(world, world.ops, b'{"prompt": "x"}\n', path="/v1/platform/eval-suites")
    assert resp.status_code == 422 and 'missing "checks"' in resp.json()["detail"]
    assert count_suites(world) == 0
