"""Probes and metrics of the registry."""

from __future__ import annotations

from tests.conftest import World


def test_metrics_count_requests_per_route_template(world: World) -> None:
    acme = world.tenant("acme")
    for _ in range(2):
        assert world.http.get("/v1/tenants/acme", headers=acme.headers).status_code == 200
    text = world.http.get("/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("loraplex_registry_requests_total{")
        and 'route="/v1/tenants/{tenant}"' in x
        and 'method="GET"' in x
        and 'status="200"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "loraplex_registry_request_seconds_bucket" in text
