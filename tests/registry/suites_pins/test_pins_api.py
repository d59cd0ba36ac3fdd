"""PUT/GET /v1/tenants/{t}/adapters/{name}/eval-suites: the suites pinned to an adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.db import run_unit_of_work
from registry.models import Adapter
from registry.suites.pins import pinned_suites
from tests.conftest import Caller, World
from tests.lora_files import make_base_model
from tests.registry.suites_pins.rows import insert_suite

PINS = "/v1/tenants/{slug}/adapters/support/eval-suites"


class PinWorld:
    """Base model 'tiny'; tenants acme and globex, each with an adapter 'support'."""

    def __init__(self, world: World, base_dir: Path) -> None:
        self.world, self.http = world, world.http
        make_base_model(base_dir)
        resp = self.http.post(
            "/v1/base-models",
            json={"name": "tiny", "uri": str(base_dir)},
            headers=world.ops.headers,
        )
        assert resp.status_code == 201, resp.text
        self.acme: Caller = world.tenant("acme")
        self.globex: Caller = world.tenant("globex")
        for who in (self.acme, self.globex):
            resp = self.http.post(
                f"/v1/tenants/{who.slug}/adapters",
                headers=who.headers,
                json={"name": "support", "base_model": "tiny"},
            )
            assert resp.status_code == 201, resp.text

    def put(self, suites: list[dict[str, object]], who: Caller | None = None):  # type: ignore[no-untyped-def]
        who = who or self.acme
        return self.http.put(
            PINS.format(slug=who.slug), json={"suites": suites}, headers=who.headers
        )

    def get(self, who: Caller | None = None):  # type: ignore[no-untyped-def]
        who = who or self.acme
        return self.http.get(PINS.format(slug=who.slug), headers=who.headers)


@pytest.fixture
def pw(world: World, tmp_path: Path) -> PinWorld:
    return PinWorld(world, tmp_path / "base")


def test_set_get_and_replace_in_order(pw: PinWorld) -> None:
    acme = pw.acme.tenant_id
    golden1 = insert_suite(pw.world, "golden", 1, tenant_id=acme)
    golden2 = insert_suite(pw.world, "golden", 2, tenant_id=acme, check_counts={"regex": 3})
    tools = insert_suite(pw.world, "tools", 1, tenant_id=acme, rows=5)
    assert pw.get().json() == {"suites": []}

    resp = pw.put([{"name": "tools"}, {"name": "golden", "version": 1}])
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"suites": [tools, golden1]}
    assert pw.get().json() == {"suites": [tools, golden1]}

    # null version: the latest now, kept as that exact version
    resp = pw.put([{"name": "golden", "version": None}])
    assert resp.status_code == 200 and resp.json() == {"suites": [golden2]}
    insert_suite(pw.world, "golden", 3, tenant_id=acme)
    assert pw.get().json() == {"suites": [golden2]}

    assert pw.put([]).json() == {"suites": []}
    assert pw.get().json() == {"suites": []}


def test_pinned_suites_for_workers(pw: PinWorld) -> None:
    acme = pw.acme.tenant_id
    a = insert_suite(pw.world, "a", tenant_id=acme)
    b = insert_suite(pw.world, "b", tenant_id=acme)
    assert pw.put([{"name": "b"}, {"name": "a"}]).status_code == 200
    for session in run_unit_of_work(pw.world.stack.app.state.sessionmaker):
        adapter = session.query(Adapter).filter_by(tenant_id=acme, name="support").one()
        assert [str(s.id) for s in pinned_suites(session, adapter)] == [b["id"], a["id"]]


def test_unknown_suite_or_version_is_404_and_changes_nothing(pw: PinWorld) -> None:
    insert_suite(pw.world, "golden", 1, tenant_id=pw.acme.tenant_id)
    assert pw.put([{"name": "golden"}]).status_code == 200
    resp = pw.put([{"name": "golden"}, {"name": "nope"}])
    assert resp.status_code == 404 and "eval suite 'nope' not found" in resp.json()["detail"]
    resp = pw.put([{"name": "golden", "version": 7}])
    assert resp.status_code == 404
    assert "version 7 of eval suite 'golden' not found" in resp.json()["detail"]
    assert [s["name"] for s in pw.get().json()["suites"]] == ["golden"]


def test_another_tenants_suite_or_a_platform_suite_is_404(pw: PinWorld) -> None:
    insert_suite(pw.world, "secret", 1, tenant_id=pw.globex.tenant_id)
    insert_suite(pw.world, "general", 1, tenant_id=None)
    for name in ("secret", "general"):
        for version in (None, 1):
            resp = pw.put([{"name": name, "version": version}])
            assert resp.status_code == 404, resp.text
            assert f"'{name}' not found" in resp.json()["detail"]
    # ...and globex itself can pin its own
    assert pw.put([{"name": "secret"}], who=pw.globex).status_code == 200
    assert pw.get().json() == {"suites": []}


def test_another_tenants_adapter_is_404(pw: PinWorld) -> None:
    resp = pw.http.get(PINS.format(slug="globex"), headers=pw.acme.headers)
    assert resp.status_code == 404
    resp = pw.http.get("/v1/tenants/acme/adapters/nope/eval-suites", headers=pw.acme.headers)
    assert resp.status_code == 404 and "adapter 'nope' not found" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"suites": [{"name": "a"}, {"name": "a", "version": 2}]}, "named twice"),
        ({"suites": [{"name": f"s{i}"} for i in range(17)]}, "at most 16"),
        ({"suites": [{"name": "a", "version": 0}]}, "greater than or equal to 1"),
        ({"suites": [{"name": "a", "weight": 2}]}, "weight"),
        ({"suites": [{"name": "bad name"}]}, "pattern"),
        ({}, "suites"),
    ],
)
def test_bad_bodies_are_422(pw: PinWorld, body: dict[str, object], needle: str) -> None:
    resp = pw.http.put(PINS.format(slug="acme"), json=body, headers=pw.acme.headers)
    assert resp.status_code == 422 and needle in resp.text, resp.text


def test_audit_records_before_and_after(pw: PinWorld) -> None:
    acme = pw.acme.tenant_id
    one = insert_suite(pw.world, "one", tenant_id=acme)
    two = insert_suite(pw.world, "two", tenant_id=acme)
    assert pw.put([{"name": "one"}]).status_code == 200
    assert pw.put([{"name": "two"}, {"name": "one"}]).status_code == 200
    events = pw.http.get(
        "/v1/audit/events",
        params={"action": "adapter.eval_suites.set"},
        headers=pw.world.ops.headers,
    ).json()["items"]
    assert len(events) == 2
    last = events[-1]
    assert last["target_id"] == "support" and last["tenant_id"] == acme
    assert last["actor"] == pw.acme.client_id

    def ref(s: dict[str, object]) -> dict[str, object]:
        return {"id": s["id"], "name": s["name"], "version": s["version"]}

    assert last["details"] == {"before": [ref(one)], "after": [ref(two), ref(one)]}


def test_scopes(pw: PinWorld) -> None:
    insert_suite(pw.world, "golden", tenant_id=pw.acme.tenant_id)
    read_only = pw.world.bearer(pw.acme.client_id, pw.acme.secret, "adapters:read")
    url = PINS.format(slug="acme")
    assert pw.http.get(url, headers=read_only).status_code == 200
    resp = pw.http.put(url, json={"suites": [{"name": "golden"}]}, headers=read_only)
    assert resp.status_code == 403 and "adapters:write" in resp.json()["detail"]
    assert pw.http.get(url, headers=pw.world.auditor.headers).status_code == 200
    assert (
        pw.http.put(url, json={"suites": []}, headers=pw.world.auditor.headers).status_code == 403
    )
