"""Curated datasets from traffic (POST /v1/tenants/{tenant}/datasets/from-traffic) and
derived datasets (registry/datasets/derived.py: store_rows).

Traces are seeded without the gateway (tests/registry/traffic/seed.py), feedback rows directly.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registry.auth.principal import Principal
from registry.datasets.derived import store_rows
from registry.errors import Unprocessable
from registry.models import Adapter, AdapterVersion, AuditEvent, Dataset, Feedback, Tenant
from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld
from tests.registry.traffic.seed import SeededTrace, seed_traces

URL = "/v1/tenants/{tenant}/datasets/from-traffic"
HOUR = dt.timedelta(hours=1)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_order", "arguments": '{"id": "7"}'},
}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


# An agent's trace: it called a tool, got the result, and answered (wrongly: corrected below).
AGENT_REQUEST: dict[str, Any] = {
    "messages": [
        user("where is order 7?"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
    ],
    "tools": TOOLS,
    "tool_choice": "auto",
}


class CurationWorld(AdapterWorld):
    """acme's adapter 'support' with versions 1 and 2 and a mix of traces and feedback."""

    def __init__(self, world: World, base_dir: Path) -> None:
        # per world, not at import: the suite may run this an hour after collecting it
        self.now = now = dt.datetime.now(dt.UTC)
        super().__init__(world, base_dir)
        for _ in range(2):
            assert self.upload().status_code == 201
        store = world.stack.store
        v1: list[dict[str, Any]] = [
            {  # 0: approved; its prompt had an e-mail address, redacted at capture
                "request": {"messages": [user("mail [REDACTED:EMAIL] the invoice")]},
                "response": assistant("Sent."),
                "redactions": {"email": 1},
            },
            {"request": {"messages": [user("q zero")]}, "response": assistant("a zero")},
            {"request": {"messages": [user("q unrated")]}, "response": assistant("a unrated")},
            {"request": {"messages": [user("q bad")]}, "response": assistant("a bad")},
            {"request": AGENT_REQUEST, "response": assistant("It is lost.")},  # 4: corrected
            {  # 5: the served answer is a tool call (streamed: `index` in the call)
                "request": {"messages": [user("find order 8")], "tools": TOOLS},
                "response": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**CALL, "index": 0}],
                },
            },
            {  # 6: cut at max_tokens
                "request": {"messages": [user("q long")]},
                "response": assistant("a lo"),
                "finish_reason": "length",
            },
        ]
        self.v1 = seed_traces(world, store, "acme", "support", 1, v1, now - dt.timedelta(hours=3))
        self.v2 = seed_traces(
            world,
            store,
            "acme",
            "support",
            2,
            [{"request": {"messages": [user("q v2")]}, "response": assistant("a v2")}],
            now - dt.timedelta(hours=2),
        )
        self.old = seed_traces(
            world,
            store,
            "acme",
            "support",
            1,
            [{"request": {"messages": [user("q old")]}, "response": assistant("a old")}],
            now - dt.timedelta(days=10),
        )
        self.prompts = seed_traces(
            world,
            store,
            "acme",
            "support",
            1,
            [{}],
            now - dt.timedelta(hours=1),
            captured="prompts",
        )
        self.correction = [
            {"role": "assistant", "content": "Order 7 shipped; mail [REDACTED:EMAIL] for help."}
        ]
        self.feedback(self.v1[0], 1)
        self.feedback(self.v1[1], 0)
        self.feedback(self.v1[3], -1)
        self.feedback(self.v1[4], -1, correction=self.correction, redactions={"email": 1})
        self.feedback(self.v1[5], 1)

    def feedback(
        self,
        trace: SeededTrace,
        rating: int,
        correction: list[dict[str, Any]] | None = None,
        redactions: dict[str, int] | None = None,
    ) -> None:
        with self.world.stack.session() as s:
            tenant = s.execute(select(Tenant).where(Tenant.slug == "acme")).scalar_one()
            adapter = s.execute(
                select(Adapter).where(
                    Adapter.tenant_id == tenant.id, Adapter.name == trace.trace["adapter"]
                )
            ).scalar_one()
            version = s.execute(
                select(AdapterVersion).where(AdapterVersion.adapter_id == adapter.id)
            ).scalars()
            s.add(
                Feedback(
                    tenant_id=tenant.id,
                    adapter_id=adapter.id,
                    version_id=next(iter(version)).id,
                    request_id=trace.request_id,
                    rating=rating,
                    correction=correction,
                    redactions=redactions or {},
                    created_by="test",
                )
            )
            s.commit()

    def add_adapter(self, name: str) -> None:
        resp = self.http.post(
            "/v1/tenants/acme/adapters",
            headers=self.acme.headers,
            json={"name": name, "base_model": "tiny", "training": {"rank": 4}},
        )
        assert resp.status_code == 201, resp.text

    def curate(self, headers: dict[str, str] | None = None, tenant: str = "acme", **body: Any):  # type: ignore[no-untyped-def]
        payload = {"name": "curated", "adapter": "support", **body}
        return self.http.post(
            URL.format(tenant=tenant), json=payload, headers=headers or self.acme.headers
        )

    def content(self, dataset_id: str) -> list[dict[str, Any]]:
        resp = self.http.get(
            f"/v1/tenants/acme/datasets/{dataset_id}/content", headers=self.acme.headers
        )
        assert resp.status_code == 200, resp.text
        return [json.loads(line) for line in resp.text.splitlines()]

    def datasets(self) -> list[dict[str, Any]]:
        resp = self.http.get("/v1/tenants/acme/datasets", headers=self.acme.headers)
        return list(resp.json()["items"])


@pytest.fixture
def cw(world: World, tmp_path: Path) -> CurationWorld:
    return CurationWorld(world, tmp_path / "tiny-base")


APPROVED = {"messages": [user("mail [REDACTED:EMAIL] the invoice"), assistant("Sent.")]}
ZERO = {"messages": [user("q zero"), assistant("a zero")]}
UNRATED = {"messages": [user("q unrated"), assistant("a unrated")]}
CORRECTED: dict[str, Any] = {
    "messages": [
        *AGENT_REQUEST["messages"],
        {"role": "assistant", "content": "Order 7 shipped; mail [REDACTED:EMAIL] for help."},
    ],
    "tools": TOOLS,
}
CORRECTED["messages"][1] = {"role": "assistant", "tool_calls": [CALL]}  # no null content
TOOL_ANSWER: dict[str, Any] = {
    "messages": [user("find order 8"), {"role": "assistant", "tool_calls": [CALL]}]
}
TOOL_ANSWER["tools"] = TOOLS
V2 = {"messages": [user("q v2"), assistant("a v2")]}


@pytest.mark.smoke  # PostgreSQL and SQLite (the embedded default)
def test_the_window_becomes_exactly_the_expected_rows(cw: CurationWorld) -> None:
    resp = cw.curate()
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # Oldest first; rated -1 without a correction, the cut answer, the 10-day-old trace and
    # the prompt-only sample are not rows; the correction replaced the served answer.
    assert cw.content(body["id"]) == [APPROVED, ZERO, UNRATED, CORRECTED, TOOL_ANSWER, V2]
    t = body["traffic"]
    assert {k: t[k] for k in ("matched", "rows", "corrected", "redacted", "redactions")} == {
        "matched": 8,
        "rows": 6,
        "corrected": 1,
        "redacted": 2,
        "redactions": {"email": 2},
    }
    assert t["skipped"] == {"rejected": 1, "truncated": 1}
    assert t["filters"] == {
        "adapter": "support",
        "version": None,
        "ratings": None,
        "corrected_only": False,
    }
    since = dt.datetime.fromisoformat(t["window"]["since"])
    until = dt.datetime.fromisoformat(t["window"]["until"])
    assert until - since == dt.timedelta(days=7)
    assert body["rows"] == 6 and body["tool_rows"] == 2 and body["format"] == "chat"
    assert body["origin"] == {"kind": "traffic", **t}
    got = cw.http.get(f"/v1/tenants/acme/datasets/{body['id']}", headers=cw.acme.headers)
    assert got.json()["origin"]["kind"] == "traffic"
    with cw.world.stack.session() as s:
        event = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "dataset.create", AuditEvent.target_id == body["id"]
            )
        ).scalar_one()
        assert event.details["origin"] == "traffic" and event.details["rows"] == 6


@pytest.mark.parametrize(
    ("filters", "rows", "skipped"),
    [
        (
            {"ratings": [1]},
            [APPROVED, CORRECTED, TOOL_ANSWER],
            {"rejected": 1, "rating": 1, "unrated": 3},
        ),
        ({"ratings": [0, 1]}, [APPROVED, ZERO, CORRECTED, TOOL_ANSWER], None),
        ({"corrected_only": True}, [CORRECTED], {"rejected": 1, "uncorrected": 6}),
        ({"version": 2}, [V2], {}),
        ({"version": 1, "ratings": [0]}, [ZERO, CORRECTED], None),
    ],
)
def test_filters(
    cw: CurationWorld,
    filters: dict[str, Any],
    rows: list[dict[str, Any]],
    skipped: dict[str, int] | None,
) -> None:
    resp = cw.curate(**filters)
    assert resp.status_code == 201, resp.text
    t = resp.json()["traffic"]
    assert cw.content(resp.json()["id"]) == rows
    assert t["rows"] == len(rows)
    assert t["rows"] + sum(t["skipped"].values()) == t["matched"]
    if skipped is not None:
        assert t["skipped"] == skipped


def test_explicit_window_and_window_length(cw: CurationWorld) -> None:
    since = (cw.now - dt.timedelta(days=11)).isoformat()
    until = (cw.now - dt.timedelta(days=9)).isoformat()
    resp = cw.curate(since=since, until=until)
    assert resp.status_code == 201, resp.text
    assert cw.content(resp.json()["id"]) == [{"messages": [user("q old"), assistant("a old")]}]
    resp = cw.curate(name="recent", window="150m", ratings=[0, 1])  # v2 only, and unrated
    assert resp.status_code == 422, resp.text  # min_count 1 and no row
    resp = cw.curate(name="recent", window="150m")
    assert cw.content(resp.json()["id"]) == [V2]


def test_bad_requests_store_nothing(cw: CurationWorld) -> None:
    since = (cw.now - dt.timedelta(days=11)).isoformat()
    until = (cw.now - dt.timedelta(days=9)).isoformat()
    bad: list[dict[str, Any]] = [
        {"window": "7d", "since": since},
        {"since": until, "until": since},
        {"since": "2026-01-01T00:00:00"},  # no zone
        {"ratings": [2]},
        {"min_count": 0},
        {"name": "no spaces"},
    ]
    for body in bad:
        assert cw.curate(**body).status_code == 422, body
    assert cw.datasets() == []


def test_too_few_rows_stores_nothing(cw: CurationWorld) -> None:
    resp = cw.curate(min_count=7)
    assert resp.status_code == 422, resp.text
    assert "6 rows" in resp.json()["detail"] and "fewer than the 7" in resp.json()["detail"]
    assert resp.json()["traffic"]["rows"] == 6
    assert cw.datasets() == []
    prefix = f"tenants/{cw.acme.tenant_id}/datasets/"
    assert list(cw.world.stack.store.list_keys(prefix)) == []


def test_same_content_twice_is_the_same_version(cw: CurationWorld) -> None:
    first = cw.curate()
    assert first.status_code == 201, first.text
    again = cw.curate()
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["version"]) == (first.json()["id"], 1)
    other = cw.curate(corrected_only=True)
    assert other.status_code == 201 and other.json()["version"] == 2


def test_more_traces_than_the_limit_asks_for_a_narrower_window(
    cw: CurationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cw.world.stack.app.state.settings, "curation_max_traces", 5)
    resp = cw.curate()  # 7 traces to read (the cut answer is found out when read)
    assert resp.status_code == 422
    assert "narrow the window" in resp.json()["detail"]
    assert cw.curate(ratings=[1]).status_code == 201  # 3 to read


def test_a_trace_whose_object_is_gone_is_skipped(cw: CurationWorld) -> None:
    cw.world.stack.store.delete(str(cw.v2[0].object_key))
    resp = cw.curate()
    assert resp.status_code == 201, resp.text
    t = resp.json()["traffic"]
    assert t["skipped"] == {"missing": 1, "rejected": 1, "truncated": 1} and t["rows"] == 5


def test_completions_traces_and_cut_answers(cw: CurationWorld) -> None:
    cw.add_adapter("writer")
    assert cw.upload(adapter="writer").status_code == 201
    cut = {"finish_reason": "length"}
    traces = seed_traces(
        cw.world,
        cw.world.stack.store,
        "acme",
        "writer",
        1,
        [
            {"request": {"prompt": "2+2="}},
            {"request": {"prompt": "3+3="}, **cut},  # approved as is: kept
            {"request": {"prompt": "4+4="}, **cut},  # unrated: skipped
            {"request": {"prompt": "5+5="}, **cut},  # corrected: the correction
        ],
    )
    assert traces[0].trace["response"] == {"text": "hi there 0"}
    cw.feedback(traces[1], 1)
    cw.feedback(traces[3], 0, correction=[assistant("10")])
    resp = cw.curate(adapter="writer")
    assert resp.status_code == 201, resp.text
    assert cw.content(resp.json()["id"]) == [
        {"prompt": "2+2=", "completion": "hi there 0"},
        {"prompt": "3+3=", "completion": "hi there 1"},
        {"prompt": "5+5=", "completion": "10"},
    ]
    assert resp.json()["format"] == "prompt_completion"
    assert resp.json()["traffic"]["skipped"] == {"truncated": 1}


def test_other_tenants_and_scopes(cw: CurationWorld) -> None:
    globex = cw.world.tenant("globex")
    assert cw.curate(headers=globex.headers).status_code == 404  # no adapter 'support'
    assert cw.curate(headers=globex.headers, tenant="acme").status_code == 404
    resp = cw.http.post(
        "/v1/tenants/globex/adapters",
        headers=globex.headers,
        json={"name": "support", "base_model": "tiny", "training": {"rank": 4}},
    )
    assert resp.status_code == 201, resp.text
    resp = cw.curate(headers=globex.headers, tenant="globex")  # acme's traces are not its
    assert resp.status_code == 422 and resp.json()["traffic"]["matched"] == 0
    assert cw.curate(adapter="nope").status_code == 404
    assert cw.curate(version=9).status_code == 404
    assert cw.curate(headers=cw.world.auditor.headers).status_code == 403
    scoped = cw.world.bearer(cw.acme.client_id, cw.acme.secret, "datasets:write")
    resp = cw.curate(headers=scoped)
    assert resp.status_code == 403 and "traffic:read" in resp.json()["detail"]
    assert cw.curate(headers=cw.world.ops.headers).status_code == 201  # ops may, for acme


# --- store_rows ------------------------------------------------------------------------------


def _store(
    world: World,
    rows: list[dict[str, Any]],
    name: str = "derived",
    origin: dict[str, Any] | None = None,
) -> Dataset:
    with world.stack.session() as s:
        tenant = s.execute(select(Tenant).where(Tenant.slug == "acme")).scalar_one()
        done = store_rows(
            s,
            actor=Principal.local_operator("worker"),
            tenant=tenant,
            name=name,
            rows=rows,
            origin=origin or {"kind": "teacher", "teacher": "big", "kept": len(rows)},
            store=world.stack.store,
            settings=world.stack.app.state.settings,
        )
        s.commit()
    return done.row


def test_store_rows_validates_and_dedupes_like_an_upload(world: World) -> None:
    acme = world.tenant("acme")
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": "b"}]
    row = _store(world, rows)
    assert (row.rows, row.duplicates_dropped, row.version) == (1, 1, 1)
    assert row.origin == {"kind": "teacher", "teacher": "big", "kept": 2}
    assert row.object_key.startswith(f"tenants/{acme.tenant_id}/datasets/uploads/")
    assert _store(world, rows).id == row.id  # same content: the same version
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{"prompt": "a"}], 'missing "completion"'),
        ([], "no rows"),
        ([{"messages": [user("hi")]}], "line 1"),
    ]
    for bad, words in cases:
        with pytest.raises(Unprocessable, match=words):
            _store(world, bad, name="bad")
    resp = world.http.get("/v1/tenants/acme/datasets?name=bad", headers=acme.headers)
    assert resp.json()["items"] == []
    keys = list(world.stack.store.list_keys(f"tenants/{acme.tenant_id}/datasets/"))
    assert keys == [row.object_key]


def test_store_rows_counts_against_the_quota(world: World) -> None:
    world.tenant("acme", quota_dataset_bytes=100)
    with pytest.raises(Exception, match="quota") as caught:
        _store(world, [{"prompt": "p" * 200, "completion": "c"}])
    assert getattr(caught.value, "status_code", None) == 413
