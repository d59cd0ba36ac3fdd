"""PUT /v1/base-models/{name}/evals: a base model's general suite, forgetting tolerance and
rehearsal set (platform rows only), shown in BaseModelOut and audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import World
from tests.lora_files import make_base_model
from tests.registry.suites_pins.rows import insert_suite

EVALS = "/v1/base-models/tiny/evals"


def rows(n: int, tag: str = "") -> bytes:
    return b"".join(
        json.dumps({"prompt": f"{tag}q{i}", "completion": f"a{i}"}).encode() + b"\n"
        for i in range(n)
    )


@pytest.fixture
def tiny(world: World, tmp_path: Path) -> World:
    folder = make_base_model(tmp_path / "tiny")
    resp = world.http.post(
        "/v1/base-models", json={"name": "tiny", "uri": str(folder)}, headers=world.ops.headers
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["general_suite"] is None and resp.json()["rehearsal"] is None
    assert resp.json()["forgetting_tolerance"] == 0.05
    return world


def platform_dataset(world: World, body: bytes, name: str = "general-mix") -> dict[str, object]:
    resp = world.http.post(
        "/v1/platform/datasets",
        headers=world.ops.headers,
        data={"name": name},
        files={"file": ("mix.jsonl", body)},
    )
    assert resp.status_code == 201, resp.text
    out: dict[str, object] = resp.json()
    return out


def test_set_show_and_clear(tiny: World) -> None:
    world = tiny
    insert_suite(world, "general", 1)
    g2 = insert_suite(world, "general", 2)
    d1 = platform_dataset(world, rows(4))
    platform_dataset(world, rows(5))  # version 2
    body = {
        "general_suite": {"name": "general", "version": None},
        "forgetting_tolerance": 0.1,
        "rehearsal": {"dataset": "general-mix", "version": 1, "ratio": 0.25},
    }
    resp = world.http.put(EVALS, json=body, headers=world.ops.headers)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["general_suite"] == {k: g2[k] for k in ("id", "name", "version", "sha256")}
    assert out["forgetting_tolerance"] == 0.1
    assert out["rehearsal"] == {
        "dataset_id": d1["id"],
        "name": "general-mix",
        "version": 1,
        "sha256": d1["sha256"],
        "rows": 4,
        "ratio": 0.25,
    }
    acme = world.tenant("acme")
    for caller in (world.ops, acme):
        got = world.http.get("/v1/base-models/tiny", headers=caller.headers).json()
        assert got["general_suite"] == out["general_suite"] and got["rehearsal"] == out["rehearsal"]
        listed = world.http.get("/v1/base-models", headers=caller.headers).json()
        assert listed[0]["rehearsal"] == out["rehearsal"]

    cleared = world.http.put(EVALS, json={}, headers=world.ops.headers)
    assert cleared.status_code == 200, cleared.text
    c = cleared.json()
    assert c["general_suite"] is None and c["rehearsal"] is None
    assert c["forgetting_tolerance"] == 0.05


def test_audit_records_before_and_after(tiny: World) -> None:
    world = tiny
    g = insert_suite(world, "general", 1)
    d = platform_dataset(world, rows(3))
    body = {
        "general_suite": {"name": "general", "version": 1},
        "forgetting_tolerance": 0.0,
        "rehearsal": {"dataset": "general-mix", "ratio": 0.9},
    }
    assert world.http.put(EVALS, json=body, headers=world.ops.headers).status_code == 200
    assert (
        world.http.put(
            EVALS, json={"forgetting_tolerance": 1}, headers=world.ops.headers
        ).status_code
        == 200
    )
    events = world.http.get(
        "/v1/audit/events", params={"action": "base_model.evals.set"}, headers=world.ops.headers
    ).json()["items"]
    assert [e["target_id"] for e in events] == ["tiny", "tiny"]
    first_after = {
        "general_suite": {"id": g["id"], "name": "general", "version": 1},
        "forgetting_tolerance": 0.0,
        "rehearsal": {"dataset_id": d["id"], "name": "general-mix", "version": 1, "ratio": 0.9},
    }
    off = {"general_suite": None, "forgetting_tolerance": 0.05, "rehearsal": None}
    assert events[0]["details"] == {"before": off, "after": first_after}
    assert events[1]["details"] == {
        "before": first_after,
        "after": {"general_suite": None, "forgetting_tolerance": 1.0, "rehearsal": None},
    }
    assert events[0]["actor"] == world.ops.client_id and events[0]["tenant_id"] is None


def test_tenant_suites_and_datasets_are_not_platform_ones(tiny: World) -> None:
    world = tiny
    acme = world.tenant("acme")
    insert_suite(world, "general", 1, tenant_id=acme.tenant_id)
    resp = world.http.put(
        EVALS, json={"general_suite": {"name": "general"}}, headers=world.ops.headers
    )
    assert resp.status_code == 404
    assert "platform eval suite 'general' not found" in resp.json()["detail"]
    mine = world.http.post(
        "/v1/tenants/acme/datasets",
        headers=acme.headers,
        data={"name": "general-mix"},
        files={"file": ("d.jsonl", rows(2))},
    )
    assert mine.status_code == 201
    resp = world.http.put(
        EVALS,
        json={"rehearsal": {"dataset": "general-mix", "ratio": 0.1}},
        headers=world.ops.headers,
    )
    assert resp.status_code == 404
    assert "platform dataset 'general-mix' not found" in resp.json()["detail"]
    got = world.http.get("/v1/base-models/tiny", headers=world.ops.headers).json()
    assert got["general_suite"] is None and got["rehearsal"] is None


def test_unknown_version_and_unknown_base_model_are_404(tiny: World) -> None:
    world = tiny
    insert_suite(world, "general", 1)
    resp = world.http.put(
        EVALS, json={"general_suite": {"name": "general", "version": 2}}, headers=world.ops.headers
    )
    assert resp.status_code == 404
    assert "version 2 of platform eval suite 'general'" in resp.json()["detail"]
    platform_dataset(world, rows(2))
    resp = world.http.put(
        EVALS,
        json={"rehearsal": {"dataset": "general-mix", "version": 3, "ratio": 0.1}},
        headers=world.ops.headers,
    )
    assert resp.status_code == 404
    assert "version 3 of platform dataset 'general-mix'" in resp.json()["detail"]
    resp = world.http.put("/v1/base-models/nope/evals", json={}, headers=world.ops.headers)
    assert resp.status_code == 404 and "base model 'nope'" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"forgetting_tolerance": 1.5}, "forgetting_tolerance"),
        ({"forgetting_tolerance": -0.1}, "forgetting_tolerance"),
        ({"rehearsal": {"dataset": "d", "ratio": 0}}, "ratio"),
        ({"rehearsal": {"dataset": "d", "ratio": 0.95}}, "ratio"),
        ({"rehearsal": {"dataset": "d"}}, "ratio"),
        ({"general_suite": {"name": "g", "version": 0}}, "version"),
        ({"general_suite": {"name": "g", "extra": 1}}, "extra"),
        ({"tolerance": 0.1}, "tolerance"),
    ],
)
def test_bad_bodies_are_422(tiny: World, body: dict[str, object], needle: str) -> None:
    resp = tiny.http.put(EVALS, json=body, headers=tiny.ops.headers)
    assert resp.status_code == 422 and needle in resp.text, resp.text


def test_only_ops_may_set(tiny: World) -> None:
    acme = tiny.tenant("acme")
    for caller in (acme, tiny.auditor):
        resp = tiny.http.put(EVALS, json={}, headers=caller.headers)
        assert resp.status_code == 403 and "base_models:write" in resp.json()["detail"]
