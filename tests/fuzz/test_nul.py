"""NUL characters (PostgreSQL text cannot hold them) answer 422 saying so, before any SQL:
in a path segment, a query parameter or a JSON string; one that reaches SQL by another way (a
form field) is still a 422, not a 500. Found by tests/fuzz/test_registry_api.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.validation_types import JsonNulScanner
from tests.conftest import World


@pytest.fixture
def loose(world: World) -> TestClient:
    """A client that gets a 500 as a response instead of the server's exception."""
    return TestClient(world.stack.app, base_url="https://testserver", raise_server_exceptions=False)


def _refused(resp: object, where: str) -> None:
    status, body = resp.status_code, resp.json()  # type: ignore[attr-defined]
    assert status == 422, f"{status}: {body}"
    assert body["error"] == "Unprocessable", body
    assert "NUL" in body["detail"] and where in body["detail"], body


def test_nul_in_a_query_parameter(world: World, loose: TestClient) -> None:
    for who in (world.ops, world.auditor):
        resp = loose.get("/v1/audit/events?tenant=ac%00me", headers=who.headers)
        _refused(resp, "'tenant'")


def test_nul_in_a_path_segment(world: World, loose: TestClient) -> None:
    world.tenant("acme")
    _refused(loose.get("/v1/tenants/ac%00me", headers=world.ops.headers), "path")
    _refused(loose.get("/v1/tenants/acme/adapters/a%00b", headers=world.ops.headers), "path")


@pytest.mark.parametrize("escape", ["\\u0000", "\\\\\\u0000"])  # NUL; backslash, NUL
def test_nul_in_a_json_string(world: World, loose: TestClient, escape: str) -> None:
    body = '{"slug": "nul", "display_name": "N' + escape + 'N"}'
    resp = loose.post(
        "/v1/tenants",
        content=body.encode(),
        headers={**world.ops.headers, "content-type": "application/json"},
    )
    _refused(resp, "JSON")
    assert loose.get("/v1/tenants/nul", headers=world.ops.headers).status_code == 404


def test_an_escaped_backslash_before_u0000_is_not_a_nul(world: World, loose: TestClient) -> None:
    """`\\\\u0000` in JSON is a backslash then the text 'u0000': stored as sent."""
    body = '{"slug": "bsl", "display_name": "a\\\\u0000b"}'
    resp = loose.post(
        "/v1/tenants",
        content=body.encode(),
        headers={**world.ops.headers, "content-type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["display_name"] == "a\\u0000b"


def test_a_nul_reaching_sql_another_way_is_422(world: World, loose: TestClient) -> None:
    """Form fields are not scanned; the database's refusal (DataError) is the caller's 422."""
    resp = loose.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&client_id=a%00b&client_secret=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "Unprocessable", resp.text


@pytest.mark.parametrize(
    ("text", "nul"),
    [
        (b'{"a": "x\\u0000"}', True),
        (b'{"a": "x\\\\u0000"}', False),  # backslash, then the text u0000
        (b'{"a": "x\\\\\\u0000"}', True),  # backslash, then NUL
        (b'{"a": "x\\u00000"}', True),
        (b'{"a": "x\\u0001 u0000"}', False),
        (b'{"a": "' + b"\\\\" * 5000 + b'\\u0000"}', True),
        (b'{"a": "' + b"\\\\" * 5000 + b'u0000"}', False),
    ],
)
def test_the_json_scanner_finds_a_nul_escape_across_any_chunk_boundary(
    text: bytes, nul: bool
) -> None:
    assert JsonNulScanner().feed(text) is nul
    for size in (1, 2, 3, 5, 7):
        scanner = JsonNulScanner()
        found = any(scanner.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert found is nul, size
