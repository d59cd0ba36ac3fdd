"""Sign-in, sign-out, session cookie and CSRF."""

from __future__ import annotations

import pytest

from registry.console.session import COOKIE
from tests.conftest import World
from tests.console.conftest import ConsoleClient

pytestmark = pytest.mark.smoke


def test_sign_in_sets_an_httponly_samesite_cookie_and_never_the_secret(world: World) -> None:
    c = ConsoleClient(world, None)
    c.get("/console/login")
    resp = c.post(
        "/console/login",
        {
            "client_id": world.ops.client_id,
            "client_secret": world.ops.secret,
            "csrf": c.http.cookies.get("lpx_console_login") or "",
            "next": "/console/audit",
        },
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/console/audit"
    cookie = next(h for h in resp.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "path=/console" in cookie.lower() and "secure" in cookie.lower()
    assert world.ops.secret not in cookie


def test_wrong_secret_is_refused_with_the_form_again(world: World) -> None:
    c = ConsoleClient(world, None)
    c.get("/console/login")
    resp = c.http.post(
        "/console/login",
        data={
            "client_id": world.ops.client_id,
            "client_secret": "nope",
            "csrf": c.http.cookies.get("lpx_console_login") or "",
        },
    )
    assert resp.status_code == 401
    assert "refused" in resp.text and 'name="client_secret"' in resp.text
    assert COOKIE not in c.http.cookies


def test_sign_in_without_the_form_nonce_is_refused(world: World) -> None:
    c = ConsoleClient(world, None)
    resp = c.http.post(
        "/console/login",
        data={"client_id": world.ops.client_id, "client_secret": world.ops.secret, "csrf": "x"},
    )
    assert resp.status_code == 403 and COOKIE not in c.http.cookies


def test_next_is_never_an_open_redirect(world: World) -> None:
    c = ConsoleClient(world, None)
    c.get("/console/login")
    resp = c.post(
        "/console/login",
        {
            "client_id": world.ops.client_id,
            "client_secret": world.ops.secret,
            "csrf": c.http.cookies.get("lpx_console_login") or "",
            "next": "//evil.example/console",
        },
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/console"


def test_pages_without_a_session_show_the_sign_in_form_with_401(world: World) -> None:
    c = ConsoleClient(world, None)
    resp = c.get("/console/audit")
    assert resp.status_code == 401 and 'id="login"' in resp.text
    assert 'value="/console/audit"' in resp.text  # comes back here after signing in


def test_a_forged_cookie_is_a_401_not_a_500(world: World) -> None:
    c = ConsoleClient(world, None)
    c.http.cookies.set(COOKIE, "not-a-token", domain="testserver.local", path="/console")
    resp = c.get("/console/audit")
    assert resp.status_code == 401 and "session has ended" in resp.text


def test_a_revoked_client_is_signed_out_at_its_next_page(world: World) -> None:
    acme = world.tenant("acme")
    c = ConsoleClient(world, acme)
    assert c.get("/console/t/acme").status_code == 200
    resp = world.http.delete(
        f"/v1/tenants/acme/clients/{acme.client_id}", headers=world.ops.headers
    )
    assert resp.status_code == 200, resp.text
    assert c.get("/console/t/acme").status_code == 401


def test_sign_out_needs_the_csrf_field_and_ends_the_session(world: World) -> None:
    c = ConsoleClient(world, world.ops)
    resp = c.http.post("/console/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert resp.status_code == 403
    assert c.post("/console/logout").status_code == 303
    assert c.get("/console").status_code == 401


def test_pages_carry_a_strict_content_security_policy(world: World) -> None:
    c = ConsoleClient(world, world.ops)
    resp = c.get("/console")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
