"""POST /console/t/{t}/adapters/{n}/aliases/{alias}: promote and roll back from the console, with
the same rules as PUT .../aliases/{alias} and the reason in the alias history and audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from registry.models import AdapterVersion
from tests.conftest import Caller, World
from tests.console.conftest import ConsoleClient
from tests.registry.adapters.conftest import AdapterWorld

pytestmark = pytest.mark.smoke

API = "/v1/tenants/acme/adapters/support/aliases"
FORM = "/console/t/acme/adapters/support/aliases"


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    for _ in range(3):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1, "first release").status_code == 200
    return aw


def history(aw: AdapterWorld, alias: str = "production") -> list[tuple[Any, ...]]:
    resp = aw.http.get(f"{API}/{alias}/history", headers=aw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    return [(h["from_version"], h["to_version"], h["actor"], h["reason"]) for h in resp.json()]


def alias_events(aw: AdapterWorld) -> list[dict[str, Any]]:
    resp = aw.http.get("/v1/audit/events?action=alias.set", headers=aw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def test_promote_with_a_reason_moves_production_and_records_the_reason(aw: AdapterWorld) -> None:
    c = ConsoleClient(aw.world, aw.acme)
    resp = c.post(f"{FORM}/production", {"version": "3", "reason": "  evals won on golden  "})
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/console/t/acme/adapters/support/v/3?done=promoted"
    assert history(aw)[-1] == (1, 3, aw.acme.client_id, "evals won on golden")
    last = alias_events(aw)[-1]
    assert last["target_id"] == "support@production" and last["actor"] == aw.acme.client_id
    assert last["details"]["reason"] == "evals won on golden"
    assert last["details"]["from_version"] == 1 and last["details"]["to_version"] == 3
    # roll back: the same form with the previous version
    resp = c.post(f"{FORM}/production", {"version": "1", "reason": "latency regression"})
    assert resp.status_code == 303
    assert history(aw)[-1][:2] == (3, 1) and history(aw)[-1][3] == "latency regression"


def test_ops_moves_another_alias(aw: AdapterWorld) -> None:
    c = ConsoleClient(aw.world, aw.world.ops)
    resp = c.post(f"{FORM}/candidate", {"version": "2", "reason": "try it on canary"})
    assert resp.status_code == 303
    assert resp.headers["location"].endswith("/adapters/support/v/2?done=moved")
    assert history(aw, "candidate") == [(None, 2, aw.world.ops.client_id, "try it on canary")]


def test_the_auditor_is_refused_and_nothing_changes(aw: AdapterWorld) -> None:
    before = (history(aw), len(alias_events(aw)))
    c = ConsoleClient(aw.world, aw.world.auditor)
    resp = c.post(f"{FORM}/production", {"version": "2", "reason": "I should not"})
    assert resp.status_code == 403 and "adapters:write" in resp.text
    assert (history(aw), len(alias_events(aw))) == before


def test_another_tenants_adapter_is_404(aw: AdapterWorld) -> None:
    globex = aw.world.tenant("globex")
    c = ConsoleClient(aw.world, globex)
    resp = c.post(f"{FORM}/production", {"version": "2", "reason": "hostile takeover"})
    assert resp.status_code == 404
    assert len(history(aw)) == 1


@pytest.mark.parametrize("reason", [None, "", "  ", "ab", "x" * 501])
def test_a_missing_or_bad_reason_is_422(aw: AdapterWorld, reason: str | None) -> None:
    c = ConsoleClient(aw.world, aw.acme)
    data = {"version": "2"} | ({} if reason is None else {"reason": reason})
    resp = c.post(f"{FORM}/production", data)
    assert resp.status_code == 422 and 'id="error-message"' in resp.text
    assert "reason" in resp.text
    assert len(history(aw)) == 1


@pytest.mark.parametrize("csrf", [None, "", "forged"])
def test_a_missing_or_forged_csrf_is_403(aw: AdapterWorld, csrf: str | None) -> None:
    c = ConsoleClient(aw.world, aw.acme)
    data = {"version": "2", "reason": "looks fine"} | ({} if csrf is None else {"csrf": csrf})
    resp = c.http.post(f"{FORM}/production", data=data, follow_redirects=False)
    assert resp.status_code == 403
    assert len(history(aw)) == 1


def test_the_registrys_refusals_come_back_as_pages(aw: AdapterWorld) -> None:
    c = ConsoleClient(aw.world, aw.acme)
    assert c.post(f"{FORM}/production", {"version": "9", "reason": "typo"}).status_code == 404
    assert c.post(f"{FORM}/Prod!", {"version": "2", "reason": "bad name"}).status_code == 422
    assert c.post(f"{FORM}/v2", {"version": "2", "reason": "reads as v2"}).status_code == 422
    assert c.post(f"{FORM}/production", {"version": "x", "reason": "nan"}).status_code == 422
    with aw.world.stack.session() as session:
        session.execute(
            update(AdapterVersion)
            .where(AdapterVersion.version == 2)
            .values(gate={"passed": False, "reason": "pass_rate fell 0.9 -> 0.5"})
        )
        session.execute(
            update(AdapterVersion).where(AdapterVersion.version == 3).values(status="failed")
        )
        session.commit()
    # a tenant client without promotion:override cannot put the refused version in production
    scopes = ["adapters:read", "adapters:write", "tenants:read"]
    resp = aw.http.post(
        "/v1/tenants/acme/clients", json={"scopes": scopes}, headers=aw.world.ops.headers
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    narrow = ConsoleClient(aw.world, Caller(body["client_id"], body["client_secret"], {}))
    resp = narrow.post(f"{FORM}/production", {"version": "2", "reason": "ship it anyway"})
    assert resp.status_code == 403 and "promotion gate" in resp.text
    resp = c.post(f"{FORM}/production", {"version": "3", "reason": "ship the broken one"})
    assert resp.status_code == 409
    assert len(history(aw)) == 1
    # ops holds promotion:override: the override is recorded as one
    ops = ConsoleClient(aw.world, aw.world.ops)
    resp = ops.post(f"{FORM}/production", {"version": "2", "reason": "hotfix, gate flaky"})
    assert resp.status_code == 303
    assert alias_events(aw)[-1]["details"]["override"] is True
