"""A token narrowed to some scopes reaches only the routes those scopes open, whatever the role."""

from __future__ import annotations

import pytest

from tests.conftest import World


@pytest.mark.parametrize("path", ["/v1/training-jobs", "/v1/schedules"])
@pytest.mark.parametrize("role", ["ops", "auditor"])
def test_cross_tenant_lists_need_adapters_read(world: World, path: str, role: str) -> None:
    caller = world.ops if role == "ops" else world.auditor
    narrowed = world.bearer(caller.client_id, caller.secret, scope="base_models:read")
    assert world.http.get("/v1/base-models", headers=narrowed).status_code == 200
    resp = world.http.get(path, headers=narrowed)
    assert resp.status_code == 403, resp.text
    assert resp.json()["detail"] == "this token lacks the 'adapters:read' scope"
    full = world.bearer(caller.client_id, caller.secret, scope="adapters:read")
    assert world.http.get(path, headers=full).status_code == 200
