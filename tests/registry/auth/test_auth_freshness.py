"""How fresh the registry's auth checks are with the verified-token cache on (1 s by default).

A change made through this process (the API) is refused at once: its commit clears the cache.
A change this process did not make (another worker or replica, or SQL straight in the database,
simulated here by a Core UPDATE that no ORM flush sees) is refused within
`LORAPLEX_AUTH_CACHE_SECONDS`, and until then the cached principal is still served.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from registry.db import utcnow
from registry.models import OAuthClient, Tenant
from tests.conftest import World

MARGIN_S = 0.5  # the poll interval and one request on a loaded machine


def _out_of_band(world: World, stmt: Any) -> None:
    """Run `stmt` on the app's database without an ORM flush: the cache never hears of it."""
    with world.stack.session() as session:
        session.connection().execute(stmt)
        session.commit()


def _refused_after(world: World, path: str, headers: dict[str, str]) -> tuple[float, Any]:
    """Seconds from now until `path` answers 401 (200 until then), and that answer."""
    t0 = time.monotonic()
    while True:
        resp = world.http.get(path, headers=headers)
        elapsed = time.monotonic() - t0
        if resp.status_code == 401:
            return elapsed, resp
        assert resp.status_code == 200, resp.text
        assert elapsed < 5, "still accepted after 5 s"
        time.sleep(0.02)


def _check_bound(world: World, headers: dict[str, str], stmt: Any, detail: str) -> None:
    ttl = world.stack.app.state.settings.auth_cache_seconds
    assert ttl == 1.0
    before = time.monotonic()
    assert world.http.get("/v1/tenants/acme", headers=headers).status_code == 200
    cached_at = time.monotonic()  # the principal was stored by now
    _out_of_band(world, stmt)
    changed_at = time.monotonic()
    resp = world.http.get("/v1/tenants/acme", headers=headers)
    if time.monotonic() - before < ttl * 0.8:  # well inside the TTL: served from the cache
        assert resp.status_code == 200, "the cache is off: the change was seen at once"
    elapsed, resp = _refused_after(world, "/v1/tenants/acme", headers)
    assert detail in resp.json()["detail"]
    assert (changed_at - cached_at) + elapsed <= ttl + MARGIN_S


def test_a_client_revoked_elsewhere_is_refused_within_one_second(world: World) -> None:
    acme = world.tenant("acme")
    stmt = (
        update(OAuthClient)
        .where(OAuthClient.client_id == acme.client_id)
        .values(revoked_at=utcnow())
    )
    _check_bound(world, acme.headers, stmt, "revoked")


def test_a_tenant_disabled_elsewhere_is_refused_within_one_second(world: World) -> None:
    acme = world.tenant("acme")
    stmt = update(Tenant).where(Tenant.slug == "acme").values(disabled_at=utcnow())
    _check_bound(world, acme.headers, stmt, "disabled")


def test_a_revoke_through_the_api_is_refused_at_once(world: World) -> None:
    acme = world.tenant("acme")
    assert world.http.get("/v1/tenants/acme", headers=acme.headers).status_code == 200  # cached
    resp = world.http.delete(
        f"/v1/tenants/acme/clients/{acme.client_id}", headers=world.ops.headers
    )
    assert resp.status_code == 200
    resp = world.http.get("/v1/tenants/acme", headers=acme.headers)
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_a_disable_through_the_api_is_refused_at_once_and_enable_restores(world: World) -> None:
    acme = world.tenant("acme")
    path = "/v1/tenants/acme/datasets/00000000-0000-0000-0000-000000000000"
    assert world.http.get(path, headers=acme.headers).status_code == 404  # authorized, cached
    assert world.http.post("/v1/tenants/acme/disable", headers=world.ops.headers).is_success
    resp = world.http.get(path, headers=acme.headers)
    assert resp.status_code == 401 and "disabled" in resp.json()["detail"]
    assert world.http.post("/v1/tenants/acme/enable", headers=world.ops.headers).is_success
    assert world.http.get(path, headers=acme.headers).status_code == 404
