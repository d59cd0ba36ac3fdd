"""GET /v1/tenants/{tenant}/traces (listing, with the trace read from the store and its
feedback) and DELETE /v1/tenants/{tenant}/traffic (erasure)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select

from registry.models import Feedback, TrafficSample
from registry.traffic.traces import tenant_trace_prefix
from tests.registry.traffic.seed import SeedWorld, sw

__all__ = ["sw"]

NOW = dt.datetime.now(dt.UTC)
HOUR = dt.timedelta(hours=1)
TRACES = "/v1/tenants/acme/traces"
TOOL_TRACE = {
    "request": {
        "messages": [{"role": "user", "content": "where is ORD-123456?"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    },
    "response": {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"order": "[REDACTED:ORDER_ID]"}'},
            }
        ],
    },
    "finish_reason": "tool_calls",
    "redactions": {"ORDER_ID": 1},
}


def get(sw: SeedWorld, headers: dict[str, str] | None = None, **params: Any) -> Any:
    resp = sw.http.get(TRACES, params=params, headers=headers or sw.acme.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counts(sw: SeedWorld, tenant_id: str | None) -> tuple[int, int]:
    with sw.world.stack.session() as session:
        rows = session.execute(
            select(func.count()).where(TrafficSample.tenant_id == tenant_id)
        ).scalar_one()
        feedback = session.execute(
            select(func.count()).where(Feedback.tenant_id == tenant_id)
        ).scalar_one()
    return rows, feedback


def test_listing_newest_first_with_traces_and_feedback(sw: SeedWorld) -> None:
    old = sw.seed(traces=[{}, TOOL_TRACE], created_at=NOW - 3 * HOUR)
    new = sw.seed(version=2, traces=[{"request": {"prompt": "say hi"}}], created_at=NOW - HOUR)
    prompts = sw.seed(created_at=NOW - 2 * HOUR, captured="prompts")
    billing = sw.seed(adapter="billing", version=None, created_at=NOW)
    sw.seed(tenant="globex", created_at=NOW)
    correction = [{"role": "assistant", "content": "It ships tomorrow."}]
    sw.feedback(old[1], -1, correction=correction, comment="wrong tool")
    sw.feedback(new[0], 1)

    items = get(sw, adapter="support")["items"]
    assert [i["request_id"] for i in items] == [
        new[0].request_id,
        prompts[0].request_id,
        old[1].request_id,
        old[0].request_id,
    ]
    first = items[0]
    assert (first["adapter"], first["version"], first["captured"]) == ("support", 2, "full")
    assert first["record"] == {"prompt": "say hi"}
    assert first["trace"] == new[0].trace and first["trace"]["response"] == {"text": "hi there 0"}
    assert first["feedback"]["rating"] == 1 and first["feedback"]["corrected"] is False
    assert items[1]["captured"] == "prompts" and items[1]["trace"] is None
    tool = items[2]
    assert tool["trace"]["response"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert tool["redactions"] == {"ORDER_ID": 1}
    assert tool["feedback"]["correction"] == correction and tool["feedback"]["corrected"] is True
    assert tool["feedback"]["comment"] == "wrong tool"
    assert items[3]["feedback"] is None

    # every adapter of the tenant, never another tenant's
    everything = get(sw)["items"]
    assert [i["request_id"] for i in everything][:1] == [billing[0].request_id]
    assert len(everything) == 5
    # filters
    assert [i["request_id"] for i in get(sw, rating=-1)["items"]] == [old[1].request_id]
    both = get(sw, rating=[1, -1])["items"]
    assert [i["request_id"] for i in both] == [new[0].request_id, old[1].request_id]
    window = get(sw, adapter="support", since=(NOW - 2.5 * HOUR).isoformat(), until=NOW.isoformat())
    assert [i["request_id"] for i in window["items"]] == [new[0].request_id, prompts[0].request_id]
    full = get(sw, adapter="support", captured="prompts")["items"]
    assert [i["request_id"] for i in full] == [prompts[0].request_id]


def test_pages_follow_the_cursor(sw: SeedWorld) -> None:
    for hours in range(5):  # two traces per batch, same time: the id breaks the tie
        sw.seed(traces=[{}, {}], created_at=NOW - hours * HOUR)
    expected = [i["request_id"] for i in get(sw, limit=200)["items"]]
    assert len(expected) == 10
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = get(sw, **params)
        seen += [i["request_id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == expected
    for bad in ["nope", "bm9wZQ==", "MjAyNi0wMS0wMXwx"]:  # junk, "nope", a naive time
        resp = sw.http.get(TRACES, params={"cursor": bad}, headers=sw.acme.headers)
        assert resp.status_code == 422 and "cursor" in resp.json()["detail"], resp.text
    bad_queries: list[dict[str, Any]] = [
        {"limit": 0},
        {"limit": 201},
        {"rating": 2},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no zone
    ]
    for bad_params in bad_queries:
        resp = sw.http.get(TRACES, params=bad_params, headers=sw.acme.headers)
        assert resp.status_code == 422, (bad_params, resp.text)


def test_a_trace_whose_object_is_gone_lists_without_it(sw: SeedWorld) -> None:
    seeded = sw.seed()
    assert seeded[0].object_key is not None
    sw.store.delete(seeded[0].object_key)
    item = get(sw)["items"][0]
    assert item["request_id"] == seeded[0].request_id and item["trace"] is None


def test_listing_is_the_tenants_own(sw: SeedWorld) -> None:
    sw.seed(tenant="globex")
    assert get(sw)["items"] == []
    assert sw.http.get(TRACES, headers=sw.globex.headers).status_code == 404
    resp = sw.http.get(TRACES, params={"adapter": "nope"}, headers=sw.acme.headers)
    assert resp.status_code == 404 and "adapter 'nope'" in resp.json()["detail"]
    assert len(get(sw, headers=sw.world.auditor.headers)["items"]) == 0
    assert len(get(sw, headers=sw.world.ops.headers)["items"]) == 0
    globex = sw.http.get("/v1/tenants/globex/traces", headers=sw.world.ops.headers).json()
    assert len(globex["items"]) == 1
    no_scope = sw.world.bearer(sw.acme.client_id, sw.acme.secret, "adapters:read")
    assert sw.http.get(TRACES, headers=no_scope).status_code == 403


def test_erase_one_adapter_then_the_tenant(sw: SeedWorld) -> None:
    support = sw.seed(traces=[{}, {}], created_at=NOW - HOUR)
    sw.seed(created_at=NOW, captured="prompts")
    billing = sw.seed(adapter="billing", version=None)
    globex = sw.seed(tenant="globex")
    sw.feedback(support[0], 1)
    sw.feedback(globex[0], -1)
    # an object no row points at any more (its rows were deleted by hand) goes too
    orphan = f"{tenant_trace_prefix(uuid.UUID(sw.acme.tenant_id))}stray/2026-01-01/x.jsonl"
    sw.store.put_bytes(orphan, b"{}\n")
    assert len(sw.trace_keys()) == 4

    resp = sw.http.delete("/v1/tenants/acme/traffic", params={"adapter": "billing"},
                          headers=sw.acme.headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "tenant": "acme", "adapter": "billing", "rows": 1, "feedback": 0, "objects": 1
    }  # fmt: skip
    assert billing[0].object_key not in sw.trace_keys()
    assert counts(sw, sw.acme.tenant_id) == (3, 1)

    resp = sw.http.delete("/v1/tenants/acme/traffic", headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "tenant": "acme",
        "adapter": None,
        "rows": 3,
        "feedback": 1,
        "objects": 2,
    }
    assert counts(sw, sw.acme.tenant_id) == (0, 0)
    assert sw.trace_keys() == [globex[0].object_key]  # globex keeps everything
    assert counts(sw, sw.globex.tenant_id) == (1, 1)
    assert get(sw)["items"] == []

    events = sw.http.get(
        "/v1/audit/events", params={"action": "traffic.erase"}, headers=sw.world.ops.headers
    ).json()["items"]
    assert [(e["target_type"], e["details"]["rows"], e["details"]["objects"]) for e in events] == [
        ("adapter", 1, 1),
        ("tenant", 3, 2),
    ]
    # erasing nothing is fine, and says so
    resp = sw.http.delete("/v1/tenants/acme/traffic", headers=sw.world.ops.headers)
    assert resp.json() == {
        "tenant": "acme", "adapter": None, "rows": 0, "feedback": 0, "objects": 0
    }  # fmt: skip


def test_erase_is_refused_to_others(sw: SeedWorld) -> None:
    seeded = sw.seed()
    url = "/v1/tenants/acme/traffic"
    assert sw.http.delete(url, headers=sw.globex.headers).status_code == 404
    assert sw.http.delete(url, headers=sw.world.auditor.headers).status_code == 403
    read_only = sw.world.bearer(sw.acme.client_id, sw.acme.secret, "traffic:read")
    assert sw.http.delete(url, headers=read_only).status_code == 403
    resp = sw.http.delete(url, params={"adapter": "nope"}, headers=sw.acme.headers)
    assert resp.status_code == 404
    # globex's adapter of the same name is not acme's to erase
    resp = sw.http.delete("/v1/tenants/globex/traffic", params={"adapter": "support"},
                          headers=sw.acme.headers)  # fmt: skip
    assert resp.status_code == 404
    assert sw.trace_keys() == [seeded[0].object_key]
    assert counts(sw, sw.acme.tenant_id) == (1, 0)


def test_a_disabled_tenant_can_still_be_erased(sw: SeedWorld) -> None:
    sw.seed()
    resp = sw.http.post("/v1/tenants/acme/disable", headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    resp = sw.http.delete("/v1/tenants/acme/traffic", headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rows"] == 1 and sw.trace_keys() == []
