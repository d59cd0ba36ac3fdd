from __future__ import annotations

import pytest

from tests.conftest import World


@pytest.mark.smoke
def test_create_list_get_update_tenant(world: World) -> None:
    ops = world.ops.headers
    resp = world.http.post(
        "/v1/tenants", json={"slug": "acme", "display_name": "Acme"}, headers=ops
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["quota_dataset_bytes"] == 10 << 30 and body["quota_adapters"] == 50
    assert body["disabled"] is False
    assert world.http.get("/v1/tenants/acme", headers=ops).json()["id"] == body["id"]
    resp = world.http.patch("/v1/tenants/acme", json={"quota_adapters": 3}, headers=ops)
    assert resp.json()["quota_adapters"] == 3
    slugs = [t["slug"] for t in world.http.get("/v1/tenants", headers=ops).json()["items"]]
    assert slugs == ["acme"]


def test_duplicate_slug_is_a_conflict(world: World) -> None:
    world.tenant("acme")
    resp = world.http.post(
        "/v1/tenants", json={"slug": "acme", "display_name": "Again"}, headers=world.ops.headers
    )
    assert resp.status_code == 409
    assert resp.json() == {"error": "Conflict", "detail": "tenant 'acme' already exists"}


@pytest.mark.parametrize("slug", ["A", "ab_", "-abc", "x" * 70, "a b", ""])
def test_invalid_slug_is_422_with_a_message(world: World, slug: str) -> None:
    resp = world.http.post(
        "/v1/tenants", json={"slug": slug, "display_name": "x"}, headers=world.ops.headers
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "Unprocessable" and "slug" in resp.json()["detail"]


def test_tenant_sees_only_itself_in_the_list(world: World) -> None:
    acme = world.tenant("acme")
    world.tenant("globex")
    items = world.http.get("/v1/tenants", headers=acme.headers).json()["items"]
    assert [t["slug"] for t in items] == ["acme"]


def test_unknown_tenant_is_404(world: World) -> None:
    resp = world.http.get("/v1/tenants/nobody", headers=world.ops.headers)
    assert resp.status_code == 404 and resp.json()["detail"] == "tenant 'nobody' not found"


def test_disabled_tenant_refuses_writes_even_from_ops(world: World) -> None:
    world.tenant("acme")
    world.http.post("/v1/tenants/acme/disable", headers=world.ops.headers)
    resp = world.http.post(
        "/v1/tenants/acme/datasets",
        headers=world.ops.headers,
        data={"name": "x"},
        files={"file": ("a.jsonl", b"{}\n")},
    )
    assert resp.status_code == 409 and "disabled" in resp.json()["detail"]
    # ...but ops can still read it
    assert world.http.get("/v1/tenants/acme", headers=world.ops.headers).json()["disabled"]


def test_client_secret_is_shown_once(world: World) -> None:
    world.tenant("acme")
    created = world.http.post(
        "/v1/tenants/acme/clients", json={"name": "ci"}, headers=world.ops.headers
    ).json()
    assert created["client_secret"]
    listed = world.http.get("/v1/tenants/acme/clients", headers=world.ops.headers).json()
    assert all("client_secret" not in c for c in listed)
    assert created["client_id"] in [c["client_id"] for c in listed]


def test_openapi_and_health(world: World) -> None:
    spec = world.http.get("/openapi.json").json()
    assert "/v1/tenants/{tenant}/datasets" in spec["paths"]
    assert world.http.get("/healthz").json() == {"status": "ok"}
    ready = world.http.get("/readyz").json()
    assert ready == {"ready": True, "checks": {"database": "ok", "object_store": "ok"}}
