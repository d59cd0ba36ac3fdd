"""The traffic split API: set, read, clear, history; validation with messages a person can act
on; tenant isolation and scopes; audit events and lineage."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from registry.models import AdapterVersion
from tests.registry.splits.conftest import SPLIT, SplitWorld

TENTH = {"production": 90, "candidate": 10}


@pytest.mark.smoke
def test_set_read_clear_and_history(sw: SplitWorld) -> None:
    resp = sw.put(TENTH)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["active"] is True and out["stale"] is False
    assert [(a["key"], a["version"], a["weight"]) for a in out["arms"]] == [
        ("production", 1, 90),
        ("candidate", 2, 10),
    ]
    assert out["rollback"] == {
        "min_requests": 50,
        "max_error_rate_increase": 0.05,
        "max_latency_ratio": 1.5,
    }
    assert out["set_by"] == sw.acme.client_id and out["reason"] == "try v2 on a tenth"
    assert sw.get() == out
    assert sw.put(TENTH).status_code == 200  # the same split again: no new event
    # keys in any order, versions by number; production's version comes first
    again = sw.put({"v3": 25, "production": 75}, rollback=None).json()
    assert [(a["key"], a["version"]) for a in again["arms"]] == [("production", 1), ("v3", 3)]
    assert again["rollback"] is None
    resp = sw.http.delete(SPLIT, params={"reason": "enough"}, headers=sw.acme.headers)
    assert resp.status_code == 204
    cleared = sw.get()
    assert cleared["active"] is False and cleared["arms"] == [
        {"key": "production", "version": 1, "weight": 100}
    ]
    assert sw.http.delete(SPLIT, headers=sw.acme.headers).status_code == 204  # nothing to clear
    history = sw.get("/history")
    assert [(len(h["arms"]), h["reason"], h["automatic"]) for h in history] == [
        (2, "try v2 on a tenth", False),
        (2, "try v2 on a tenth", False),
        (0, "enough", False),
    ]
    assert history[1]["previous"] == [
        {"key": "production", "version": 1, "weight": 90},
        {"key": "candidate", "version": 2, "weight": 10},
    ]
    assert {h["actor"] for h in history} == {sw.acme.client_id}
    events = sw.http.get(
        "/v1/audit/events", params={"tenant": "acme"}, headers=sw.world.auditor.headers
    ).json()["items"]
    events = [e for e in events if e["target_type"] == "traffic_split"]
    actions = [(e["action"], e["details"]["reason"]) for e in events]
    assert ("split.set", "try v2 on a tenth") in actions and ("split.clear", "enough") in actions
    assert next(e for e in events if e["action"] == "split.clear")["details"]["from"] == (
        "v1 75% / v3 25%"
    )


@pytest.mark.parametrize(
    ("weights", "needle"),
    [
        ({"production": 90, "candidate": 20},
         "must sum to 100; production 90 + candidate 20 = 110"),
        ({"production": 100}, "a split names 2 to 5 versions"),
        ({"production": 90, "nightly": 10},
         "no alias 'nightly' (its aliases: candidate, production)"),
        ({"production": 90, "v9": 10}, "has no version 9"),
        ({"production": 90, "v1": 10}, "'production' and 'v1' are both v1"),
        ({"candidate": 50, "v3": 50}, "must include production's version (v1)"),
        ({"production": 90, "Bad Key": 10}, "a key is an alias"),
        ({"production": 110, "candidate": -10}, "whole percent from 0 to 100"),
    ],
)  # fmt: skip
def test_bad_splits_are_422_saying_what_to_change(
    sw: SplitWorld, weights: dict[str, int], needle: str
) -> None:
    resp = sw.put(weights)
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["detail"], resp.json()["detail"]
    assert sw.get()["active"] is False and sw.get("/history") == []


def test_a_version_that_is_not_ready_takes_no_traffic(sw: SplitWorld) -> None:
    with sw.world.stack.session() as s:
        s.execute(
            update(AdapterVersion).where(AdapterVersion.version == 3).values(status="archived")
        )
        s.commit()
    resp = sw.put({"production": 90, "v3": 10})
    assert resp.status_code == 422
    assert "v3, which is 'archived'; only a ready version" in resp.json()["detail"]


def test_no_production_no_split(sw: SplitWorld) -> None:
    resp = sw.http.delete(
        "/v1/tenants/acme/adapters/support/aliases/production", headers=sw.acme.headers
    )
    assert resp.status_code == 204
    resp = sw.put({"v1": 90, "candidate": 10})
    assert resp.status_code == 422 and "promote a version first" in resp.json()["detail"]


def test_bad_rollback_policy_is_422(sw: SplitWorld) -> None:
    resp = sw.put(TENTH, rollback={"min_requests": 0, "max_latency_ratio": 0.5})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "rollback.min_requests" in detail and "rollback.max_latency_ratio" in detail


def test_another_tenant_gets_404_and_an_auditor_reads_only(sw: SplitWorld) -> None:
    assert sw.put(TENTH).status_code == 200
    globex = sw.world.tenant("globex")
    for method in ("GET", "PUT", "DELETE"):
        body = {"weights": TENTH} if method == "PUT" else None
        resp = sw.http.request(method, SPLIT, json=body, headers=globex.headers)
        assert resp.status_code == 404, (method, resp.text)
    assert sw.http.get(SPLIT + "/history", headers=globex.headers).status_code == 404
    auditor = sw.world.auditor.headers
    assert sw.http.get(SPLIT, headers=auditor).json()["active"] is True
    assert len(sw.http.get(SPLIT + "/history", headers=auditor).json()) == 1
    resp = sw.http.put(SPLIT, json={"weights": TENTH}, headers=auditor)
    assert resp.status_code == 403
    assert sw.http.delete(SPLIT, headers=auditor).status_code == 403
    assert sw.get()["active"] is True


def test_lineage_shows_the_split_events(sw: SplitWorld) -> None:
    assert sw.put(TENTH).status_code == 200
    assert sw.http.delete(SPLIT, headers=sw.acme.headers).status_code == 204
    url = "/v1/tenants/acme/adapters/support/versions/2/lineage"
    graph = sw.http.get(url, headers=sw.acme.headers).json()
    nodes = [n for n in graph["nodes"] if n["type"] == "split_event"]
    assert [n["label"] for n in nodes] == [
        "split: production -> v1 90% / v2 10%",
        "split: v1 90% / v2 10% -> production",
    ]
    assert nodes[0]["attrs"]["actor"] == sw.acme.client_id
    assert nodes[0]["attrs"]["reason"] == "try v2 on a tenth"
    assert nodes[0]["attrs"]["automatic"] is False
    root = graph["root"]
    edges = {(e["source"], e["attrs"]["role"]) for e in graph["edges"] if e["target"] == root}
    assert {(nodes[0]["id"], "to"), (nodes[1]["id"], "from")} <= edges
    prov = sw.http.get(url, params={"format": "prov"}, headers=sw.acme.headers).json()
    kinds = {a["prov:type"]["$"] for a in prov["activity"].values()}
    assert "loraplex:TrafficSplitChange" in kinds
    # v3 took no part: no split event points at it (its lineage shows its ancestors' events)
    v3 = sw.http.get(url.replace("/2/", "/3/"), headers=sw.acme.headers).json()
    assert not [e for e in v3["edges"] if e["target"] == v3["root"] and "split" in e["source"]]
