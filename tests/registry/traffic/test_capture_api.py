"""Capture settings: PUT/GET/DELETE /v1/tenants/{tenant}/adapters/{name}/traffic-capture."""

from __future__ import annotations

from typing import Any

from tests.registry.traffic.seed import SeedWorld, sw

__all__ = ["sw"]

URL = "/v1/tenants/acme/adapters/support/traffic-capture"
ORDER = {"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}


def events(sw: SeedWorld, action: str) -> list[dict[str, Any]]:
    resp = sw.http.get("/v1/audit/events", params={"action": action}, headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def test_defaults_without_settings(sw: SeedWorld) -> None:
    resp = sw.http.get(URL, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {
        "tenant": "acme",
        "adapter": "support",
        "configured": False,
        "mode": "prompts",
        "sample_rate": None,
        "effective_sample_rate": 0.1,
        "retention": "30d",
        "retention_seconds": 30 * 86400,
        "redact": True,
        "redact_patterns": [],
        "tenant_traffic_logging": True,
        "updated_by": None,
        "updated_at": None,
    }


def test_set_replace_and_delete(sw: SeedWorld) -> None:
    body = {"mode": "full", "sample_rate": 0.5, "retention": "10d", "redact_patterns": [ORDER]}
    resp = sw.http.put(URL, json=body, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["configured"] is True and out["mode"] == "full"
    assert (out["sample_rate"], out["effective_sample_rate"]) == (0.5, 0.5)
    assert (out["retention"], out["retention_seconds"]) == ("10d", 10 * 86400)
    assert out["redact"] is True and out["redact_patterns"] == [ORDER]
    assert out["updated_by"] == sw.acme.client_id and out["updated_at"]
    assert sw.http.get(URL, headers=sw.acme.headers).json() == out

    # a PUT replaces everything: what is left out takes its default
    resp = sw.http.put(URL, json={"mode": "full", "redact": False}, headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["sample_rate"] is None and out["effective_sample_rate"] == 0.1
    assert out["retention"] == "30d" and out["redact"] is False and out["redact_patterns"] == []

    set_events = events(sw, "traffic_capture.set")
    assert [e["details"]["redact"] for e in set_events] == [True, False]  # oldest first
    assert set_events[0]["details"] == {
        "adapter": "support",
        "mode": "full",
        "sample_rate": 0.5,
        "retention_seconds": 10 * 86400,
        "redact": True,
        "redact_patterns": ["ORDER_ID"],
    }

    assert sw.http.delete(URL, headers=sw.acme.headers).status_code == 204
    assert sw.http.get(URL, headers=sw.acme.headers).json()["configured"] is False
    resp = sw.http.delete(URL, headers=sw.acme.headers)
    assert resp.status_code == 404 and "uses the defaults" in resp.json()["detail"]
    assert [e["details"] for e in events(sw, "traffic_capture.delete")] == [{"adapter": "support"}]


def test_bad_settings_are_refused_and_nothing_is_stored(sw: SeedWorld) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"redact_patterns": [{"name": "TICKET", "pattern": "(a"}]}, "TICKET"),
        ({"redact_patterns": [{"name": "BACKREF", "pattern": "(a)\\1"}]}, "BACKREF"),
        ({"redact_patterns": [{"name": "email", "pattern": "x"}]}, "email"),
        ({"redact_patterns": [ORDER, ORDER]}, "ORDER_ID"),
        ({"redact_patterns": "ORD-1"}, "redact_patterns"),
        ({"retention": "30m"}, "at least 1h"),
        ({"retention": "11000d"}, "at most"),
        ({"retention": "soon"}, "not a duration"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"mode": "everything"}, "mode"),
        ({"colour": "red"}, "colour"),
    ]
    for body, named in bad:
        resp = sw.http.put(URL, json=body, headers=sw.acme.headers)
        assert resp.status_code == 422, (body, resp.text)
        assert named in resp.text, (body, resp.text)
    assert sw.http.get(URL, headers=sw.acme.headers).json()["configured"] is False
    assert events(sw, "traffic_capture.set") == []


def test_archived_adapter_is_a_conflict(sw: SeedWorld) -> None:
    resp = sw.http.post("/v1/tenants/acme/adapters/billing/archive", headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    url = "/v1/tenants/acme/adapters/billing/traffic-capture"
    resp = sw.http.put(url, json={"mode": "full"}, headers=sw.acme.headers)
    assert resp.status_code == 409 and "archived" in resp.json()["detail"]
    assert sw.http.get(url, headers=sw.acme.headers).status_code == 200


def test_other_tenants_and_roles(sw: SeedWorld) -> None:
    body = {"mode": "full"}
    # globex has a 'support' too, but acme's path is not globex's and globex's is not acme's
    for url, headers in [
        (URL, sw.globex.headers),
        ("/v1/tenants/globex/adapters/support/traffic-capture", sw.acme.headers),
    ]:
        assert sw.http.put(url, json=body, headers=headers).status_code == 404
        assert sw.http.get(url, headers=headers).status_code == 404
        assert sw.http.delete(url, headers=headers).status_code == 404
    resp = sw.http.put(
        "/v1/tenants/acme/adapters/nope/traffic-capture", json=body, headers=sw.acme.headers
    )
    assert resp.status_code == 404 and "adapter 'nope'" in resp.json()["detail"]
    # the auditor reads, never writes
    assert sw.http.get(URL, headers=sw.world.auditor.headers).status_code == 200
    assert sw.http.put(URL, json=body, headers=sw.world.auditor.headers).status_code == 403
    # a token without traffic:write cannot set it
    read_only = sw.world.bearer(sw.acme.client_id, sw.acme.secret, "traffic:read")
    assert sw.http.put(URL, json=body, headers=read_only).status_code == 403
    assert sw.http.get(URL, headers=read_only).status_code == 200
    # globex's settings are its own
    url = "/v1/tenants/globex/adapters/support/traffic-capture"
    assert sw.http.put(url, json=body, headers=sw.globex.headers).status_code == 200
    assert sw.http.get(URL, headers=sw.acme.headers).json()["configured"] is False


def test_a_tenant_that_opted_out_is_told(sw: SeedWorld) -> None:
    resp = sw.http.put(
        "/v1/tenants/acme/traffic-logging", json={"enabled": False}, headers=sw.acme.headers
    )
    assert resp.status_code == 200, resp.text
    resp = sw.http.put(URL, json={"mode": "full"}, headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["tenant_traffic_logging"] is False
