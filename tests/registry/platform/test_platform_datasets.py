"""Platform datasets (ops' rehearsal data): uploaded and read by ops, listed (metadata only) by
anyone with base_models:read, never readable row by row by a tenant, and invisible to tenant
dataset routes."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.models import Dataset
from tests.conftest import Caller, World
from tests.lora_files import make_base_model

PLATFORM = "/v1/platform/datasets"


def chat(i: int) -> bytes:
    row = {
        "messages": [
            {"role": "user", "content": f"general question {i}"},
            {"role": "assistant", "content": f"general answer {i}"},
        ]
    }
    return json.dumps(row).encode() + b"\n"


def upload(world: World, body: bytes, name: str = "rehearsal", who: Caller | None = None):  # type: ignore[no-untyped-def]
    return world.http.post(
        PLATFORM,
        headers=(who or world.ops).headers,
        data={"name": name},
        files={"file": ("general.jsonl", body)},
    )


@pytest.mark.smoke
def test_upload_list_get_and_content_for_ops(world: World) -> None:
    body = b"".join(chat(i) for i in range(10)) + chat(2)
    resp = upload(world, body)
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    kept = b"".join(chat(i) for i in range(10))
    assert ds["rows"] == 10 and ds["duplicates_dropped"] == 1 and ds["version"] == 1
    assert ds["sha256"] == hashlib.sha256(kept).hexdigest()
    assert ds["created_by"] == world.ops.client_id
    keys = list(world.stack.store.list_keys(""))
    assert len(keys) == 1 and re.fullmatch(
        r"platform/datasets/uploads/[0-9a-f]{32}\.jsonl", keys[0]
    )
    with world.stack.session() as session:
        row = session.execute(select(Dataset).where(Dataset.id == uuid.UUID(ds["id"]))).scalar_one()
        assert row.tenant_id is None

    acme = world.tenant("acme")
    for caller in (world.ops, world.auditor, acme):
        listed = world.http.get(PLATFORM, headers=caller.headers)
        assert listed.status_code == 200 and [d["id"] for d in listed.json()["items"]] == [ds["id"]]
        one = world.http.get(f"{PLATFORM}/{ds['id']}", headers=caller.headers)
        assert one.status_code == 200 and one.json() == ds

    got = world.http.get(f"{PLATFORM}/{ds['id']}/content", headers=world.ops.headers)
    assert got.status_code == 200 and got.content == kept
    assert got.headers["x-content-sha256"] == ds["sha256"]


def test_versions_and_idempotent_reupload(world: World) -> None:
    first = upload(world, chat(1))
    again = upload(world, chat(1))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    second = upload(world, chat(1) + chat(2))
    assert second.status_code == 201 and second.json()["version"] == 2
    other = upload(world, chat(1), name="other")
    assert other.status_code == 201 and other.json()["version"] == 1
    named = world.http.get(PLATFORM, params={"name": "rehearsal"}, headers=world.ops.headers)
    assert [d["version"] for d in named.json()["items"]] == [2, 1]


def test_same_name_as_a_tenant_dataset_is_independent(world: World) -> None:
    acme = world.tenant("acme")
    mine = world.http.post(
        "/v1/tenants/acme/datasets",
        headers=acme.headers,
        data={"name": "rehearsal"},
        files={"file": ("d.jsonl", chat(1))},
    )
    assert mine.status_code == 201 and mine.json()["version"] == 1
    platform = upload(world, chat(1))
    # the same content and name, but another owner: a new row, version 1, under platform/
    assert platform.status_code == 201 and platform.json()["version"] == 1
    assert platform.json()["id"] != mine.json()["id"]
    keys = sorted(world.stack.store.list_keys(""))
    assert len(keys) == 2 and keys[0].startswith("platform/datasets/uploads/")
    assert keys[1].startswith(f"tenants/{acme.tenant_id}/datasets/uploads/")


def test_invalid_file_is_422_with_line_report_and_stores_nothing(world: World) -> None:
    resp = upload(world, chat(1) + b'{"messages": "nope"}\n')
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert "line 2" in body["detail"] and body["report"]["invalid"] == 1
    assert list(world.stack.store.list_keys("")) == []
    missing = world.http.post(PLATFORM, headers=world.ops.headers, files={"file": ("d", chat(1))})
    assert missing.status_code == 422 and "'name'" in missing.json()["detail"]


def test_tenants_and_auditors_cannot_upload_or_read_rows(world: World) -> None:
    acme = world.tenant("acme")
    for caller in (acme, world.auditor):
        resp = upload(world, chat(1), who=caller)
        assert resp.status_code == 403 and "base_models:write" in resp.json()["detail"]
    ds = upload(world, chat(1)).json()
    for caller in (acme, world.auditor):
        resp = world.http.get(f"{PLATFORM}/{ds['id']}/content", headers=caller.headers)
        assert resp.status_code == 403 and "base_models:write" in resp.json()["detail"]


def test_tenant_dataset_routes_never_see_platform_datasets(world: World) -> None:
    acme = world.tenant("acme")
    ds = upload(world, chat(1)).json()
    listed = world.http.get("/v1/tenants/acme/datasets", headers=acme.headers).json()["items"]
    assert listed == []
    for path in (
        f"/v1/tenants/acme/datasets/{ds['id']}",
        f"/v1/tenants/acme/datasets/{ds['id']}/content",
    ):
        for caller in (acme, world.ops):
            resp = world.http.get(path, headers=caller.headers)
            assert resp.status_code == 404, resp.text
    # ...nor can a tenant's dataset be reached through the platform routes
    mine = world.http.post(
        "/v1/tenants/acme/datasets",
        headers=acme.headers,
        data={"name": "mine"},
        files={"file": ("d.jsonl", chat(2))},
    ).json()
    resp = world.http.get(f"{PLATFORM}/{mine['id']}", headers=world.ops.headers)
    assert resp.status_code == 404 and "platform dataset" in resp.json()["detail"]
    assert [
        d["id"] for d in world.http.get(PLATFORM, headers=world.ops.headers).json()["items"]
    ] == [ds["id"]]


def test_training_cannot_use_a_platform_dataset_by_id(world: World, tmp_path: Path) -> None:
    """A job names tenant datasets only: a platform id is not one (the tenant repository)."""
    ds = upload(world, chat(1)).json()
    acme = world.tenant("acme")
    base = make_base_model(tmp_path / "tiny")
    resp = world.http.post(
        "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=world.ops.headers
    )
    assert resp.status_code == 201, resp.text
    resp = world.http.post(
        "/v1/tenants/acme/adapters",
        headers=acme.headers,
        json={"name": "support", "base_model": "tiny"},
    )
    assert resp.status_code == 201, resp.text
    resp = world.http.post(
        "/v1/tenants/acme/training-jobs",
        headers=acme.headers,
        json={"adapter": "support", "dataset_ids": [ds["id"]]},
    )
    assert resp.status_code == 404 and f"dataset '{ds['id']}' not found" in resp.json()["detail"]
