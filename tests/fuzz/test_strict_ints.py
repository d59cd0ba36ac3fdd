"""A JSON `true` is not a quota: pydantic's lax mode read it as 1 and the tenant was created with
a one-byte quota. Found by tests/fuzz/test_registry_api.py (negative data accepted)."""

from __future__ import annotations

import pytest

from tests.conftest import World


@pytest.mark.parametrize("field", ["quota_dataset_bytes", "quota_adapters"])
def test_a_boolean_quota_is_422_and_nothing_is_stored(world: World, field: str) -> None:
    ops = world.ops.headers
    body = {"slug": "boolq", "display_name": "B", field: True}
    resp = world.http.post("/v1/tenants", json=body, headers=ops)
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["detail"], resp.text
    assert world.http.get("/v1/tenants/boolq", headers=ops).status_code == 404
    world.tenant("acme")
    resp = world.http.patch("/v1/tenants/acme", json={field: True}, headers=ops)
    assert resp.status_code == 422, resp.text
