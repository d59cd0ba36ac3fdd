from __future__ import annotations

from tests.conftest import World


def test_tenant_opts_out_and_back_in_and_it_is_audited(world: World) -> None:
    acme = world.tenant("acme")
    assert world.http.get("/v1/tenants/acme", headers=acme.headers).json()["traffic_logging"]
    r = world.http.put(
        "/v1/tenants/acme/traffic-logging", json={"enabled": False}, headers=acme.headers
    )
    assert r.status_code == 200 and r.json()["traffic_logging"] is False
    r = world.http.put("/v1/tenants/acme/traffic-logging", json={}, headers=acme.headers)
    assert r.status_code == 422
    events = world.http.get(
        "/v1/audit/events",
        params={"action": "tenant.traffic_logging"},
        headers=world.auditor.headers,
    ).json()["items"]
    assert [e["details"] for e in events] == [{"enabled": False}]
