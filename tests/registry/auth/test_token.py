from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import World


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.smoke
def test_client_secret_basic_and_post_issue_signed_jwts(world: World) -> None:
    acme = world.tenant("acme")
    basic = world.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(acme.client_id, acme.secret),
    )
    post = world.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": acme.client_id,
            "client_secret": acme.secret,
        },
    )
    for resp in (basic, post):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        claims = _claims(body["access_token"])
        assert claims["role"] == "tenant" and claims["tenant"] == "acme"
        assert claims["exp"] - claims["iat"] == 3600
        assert "inference" in claims["scope"].split()


def test_token_verifies_against_published_jwks(world: World) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    token = world.token(world.ops.client_id, world.ops.secret)
    jwks = world.http.get("/.well-known/jwks.json").json()
    assert all("d" not in k for k in jwks["keys"])  # never the private part
    decoded = jwt.decode(token, KeySet.import_key_set(jwks))
    assert decoded.header["typ"] == "at+jwt" and decoded.claims["role"] == "ops"


@pytest.mark.parametrize("auth", ["wrong-secret", "unknown-client", "missing"])
def test_bad_client_credentials_are_refused(world: World, auth: str) -> None:
    acme = world.tenant("acme")
    creds = {
        "wrong-secret": (acme.client_id, "nope"),
        "unknown-client": ("lpx_x", "y"),
        "missing": None,
    }[auth]
    resp = world.http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=creds)
    assert resp.status_code in (400, 401)
    assert resp.json()["error"] == "invalid_client"


def test_unsupported_grant_and_unknown_scope(world: World) -> None:
    ops = world.ops
    resp = world.http.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(ops.client_id, ops.secret)
    )
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_grant_type"
    resp = world.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "root:all"},
        auth=(ops.client_id, ops.secret),
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"


def test_scope_narrows_what_a_token_may_do(world: World) -> None:
    acme = world.tenant("acme")
    read_only = world.bearer(acme.client_id, acme.secret, scope="datasets:read")
    assert world.http.get("/v1/tenants/acme/datasets", headers=read_only).status_code == 200
    resp = world.http.post(
        "/v1/tenants/acme/datasets",
        headers=read_only,
        data={"name": "x"},
        files={"file": ("a.jsonl", b"{}\n")},
    )
    assert resp.status_code == 403
    assert "datasets:write" in resp.json()["detail"]
    # a tenant cannot ask for more than its role allows: ops scopes are simply not granted
    token = world.token(acme.client_id, acme.secret, scope="tenants:write datasets:read")
    assert _claims(token)["scope"] == "datasets:read"


def test_tenant_client_scopes_can_be_restricted_at_creation(world: World) -> None:
    world.tenant("acme")
    resp = world.http.post(
        "/v1/tenants/acme/clients", json={"scopes": ["inference"]}, headers=world.ops.headers
    )
    assert resp.status_code == 201 and resp.json()["scopes"] == "inference"
    resp = world.http.post(
        "/v1/tenants/acme/clients", json={"scopes": ["tenants:write"]}, headers=world.ops.headers
    )
    assert resp.status_code == 422 and "subset" in resp.json()["detail"]


def test_disabled_tenant_gets_no_token_and_its_tokens_stop(world: World) -> None:
    acme = world.tenant("acme")
    assert world.http.get("/v1/tenants/acme", headers=acme.headers).status_code == 200
    world.http.post("/v1/tenants/acme/disable", headers=world.ops.headers)
    resp = world.http.get("/v1/tenants/acme", headers=acme.headers)
    assert resp.status_code == 401 and "disabled" in resp.json()["detail"]
    resp = world.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(acme.client_id, acme.secret),
    )
    assert resp.status_code == 401
    world.http.post("/v1/tenants/acme/enable", headers=world.ops.headers)
    assert world.http.get("/v1/tenants/acme", headers=acme.headers).status_code == 200


def test_revoked_client_tokens_stop_working(world: World) -> None:
    acme = world.tenant("acme")
    resp = world.http.delete(
        f"/v1/tenants/acme/clients/{acme.client_id}", headers=world.ops.headers
    )
    assert resp.status_code == 200 and resp.json()["revoked_at"]
    resp = world.http.get("/v1/tenants/acme", headers=acme.headers)
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_secrets_are_stored_hashed(world: World) -> None:
    from sqlalchemy import select

    from registry.models import OAuthClient

    acme = world.tenant("acme")
    with world.stack.session() as session:
        row = session.execute(
            select(OAuthClient).where(OAuthClient.client_id == acme.client_id)
        ).scalar_one()
    assert acme.secret not in row.secret_hash and len(row.secret_hash) == 64


def test_malformed_bearer_tokens(world: World) -> None:
    for header in ("Bearer", "Bearer abc.def.ghi", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 50):
        resp = world.http.get("/v1/tenants", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.json()["error"] == "Unauthorized"
