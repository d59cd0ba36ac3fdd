"""Every endpoint x every kind of caller, with the expected status.

A new endpoint joins by one line in ENDPOINTS, naming its access class. The path may use
{tenant} (acme's slug; "other" is globex calling it) and {dataset} (one of acme's datasets).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import World

CALLERS = ["own", "other", "ops", "auditor", "none", "expired", "foreign_key", "disabled"]

# access class -> expected status per caller ("2xx" = any success)
# Scope checks come before the tenant lookup, so a tenant calling an ops-only endpoint on
# another tenant gets 403 (it could not act on its own tenant either), never a hint of existence.
_UNAUTH = {"none": 401, "expired": 401, "foreign_key": 401, "disabled": 401}
ACCESS: dict[str, dict[str, int | str]] = {
    "public": dict.fromkeys(CALLERS, "2xx"),
    "tenant_read": {"own": "2xx", "other": 404, "ops": "2xx", "auditor": "2xx", **_UNAUTH},
    "tenant_write": {"own": "2xx", "other": 404, "ops": "2xx", "auditor": 403, **_UNAUTH},
    "ops_write": {"own": 403, "other": 403, "ops": "2xx", "auditor": 403, **_UNAUTH},
    "platform_read": {"own": "2xx", "other": "2xx", "ops": "2xx", "auditor": "2xx", **_UNAUTH},
    "audit": {"own": 403, "other": 403, "ops": "2xx", "auditor": "2xx", **_UNAUTH},
}

JSONL = b'{"prompt": "2+2?", "completion": "4"}\n'


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    access: str
    json: Callable[[], Any] | None = None
    files: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _fresh_tenant() -> dict[str, str]:
    return {"slug": f"t{time.monotonic_ns()}", "display_name": "New"}


ENDPOINTS = [
    Endpoint("GET", "/healthz", "public"),
    Endpoint("GET", "/readyz", "public"),
    Endpoint("GET", "/.well-known/jwks.json", "public"),
    Endpoint("POST", "/v1/tenants", "ops_write", json=_fresh_tenant),
    Endpoint("GET", "/v1/tenants", "platform_read"),
    Endpoint("GET", "/v1/tenants/{tenant}", "tenant_read"),
    Endpoint("PATCH", "/v1/tenants/{tenant}", "ops_write", json=lambda: {"quota_adapters": 7}),
    Endpoint("POST", "/v1/tenants/{tenant}/disable", "ops_write"),
    Endpoint("POST", "/v1/tenants/{tenant}/enable", "ops_write"),
    Endpoint("POST", "/v1/tenants/{tenant}/clients", "ops_write", json=lambda: {}),
    Endpoint("GET", "/v1/tenants/{tenant}/clients", "tenant_read"),
    Endpoint("DELETE", "/v1/tenants/{tenant}/clients/{spare_client}", "ops_write"),
    Endpoint(
        "POST",
        "/v1/tenants/{tenant}/datasets",
        "tenant_write",
        files={"file": ("d.jsonl", JSONL)},
        data={"name": "fresh"},
    ),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets/{dataset}", "tenant_read"),
    Endpoint("GET", "/v1/tenants/{tenant}/datasets/{dataset}/content", "tenant_read"),
    Endpoint("GET", "/v1/audit/events", "audit"),
    Endpoint("GET", "/v1/audit/verify", "audit"),
]


def _sign(world: World, claims: dict[str, Any], key: Any) -> str:
    return jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, key)


def _headers_for(world: World, caller: str) -> dict[str, str]:
    acme, globex = world.acme, world.globex  # type: ignore[attr-defined]
    if caller == "own":
        return acme.headers
    if caller == "other":
        return globex.headers
    if caller == "ops":
        return world.ops.headers
    if caller == "auditor":
        return world.auditor.headers
    if caller == "none":
        return {}
    now = int(time.time())
    claims = {
        "iss": "loraplex",
        "aud": "loraplex",
        "client_id": acme.client_id,
        "sub": acme.client_id,
        "role": "tenant",
        "scope": "datasets:read tenants:read",
        "iat": now - 7200,
        "exp": now - 3600,
    }
    if caller == "expired":
        key = world.stack.app.state.signing_keys.private
        return {"Authorization": f"Bearer {_sign(world, claims, key)}"}
    if caller == "foreign_key":
        claims |= {"iat": now, "exp": now + 600}
        return {"Authorization": f"Bearer {_sign(world, claims, RSAKey.generate_key(2048))}"}
    if caller == "disabled":
        resp = world.http.post(f"/v1/tenants/{acme.slug}/disable", headers=world.ops.headers)
        assert resp.status_code == 200
        return acme.headers
    raise AssertionError(caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_authz(world: World, endpoint: Endpoint, caller: str) -> None:
    world.acme = acme = world.tenant("acme")  # type: ignore[attr-defined]
    world.globex = world.tenant("globex")  # type: ignore[attr-defined]
    upload = world.http.post(
        f"/v1/tenants/{acme.slug}/datasets",
        data={"name": "base"},
        files={"file": ("d.jsonl", JSONL)},
        headers=acme.headers,
    )
    assert upload.status_code == 201, upload.text
    spare = world.http.post(
        f"/v1/tenants/{acme.slug}/clients", json={}, headers=world.ops.headers
    ).json()["client_id"]
    path = endpoint.path.format(tenant=acme.slug, dataset=upload.json()["id"], spare_client=spare)
    headers = _headers_for(world, caller)
    resp = world.http.request(
        endpoint.method,
        path,
        headers=headers,
        json=endpoint.json() if endpoint.json else None,
        files=endpoint.files or None,
        data=endpoint.data or None,
    )
    expected = ACCESS[endpoint.access][caller]
    if expected == "2xx":
        assert 200 <= resp.status_code < 300, f"{endpoint} as {caller}: {resp.text}"
    else:
        assert resp.status_code == expected, f"{endpoint} as {caller}: {resp.text}"
        body = resp.json()
        assert set(body) >= {"error", "detail"} and body["detail"], body


def test_every_route_is_in_the_matrix(world: World) -> None:
    """A new endpoint cannot slip in without its authz row."""
    covered = {
        (
            e.method,
            e.path.replace("{spare_client}", "{client_id}").replace("{dataset}", "{dataset_id}"),
        )
        for e in ENDPOINTS
    }
    # documentation, and the token endpoint (client credentials: tests/registry/auth)
    skip = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/oauth/token"}
    for route in world.stack.app.routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", set())
        if path in skip:
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in covered, f"{method} {path} has no row in ENDPOINTS"
