"""Feedback through the registry: ratings and corrections by request id, replaced by later
feedback, redacted with the adapter's capture settings, invisible across tenants, refused with a
reason when malformed, listed newest first; and upserts that race on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from registry.app import create_app
from registry.db import run_unit_of_work
from registry.migrate import upgrade
from registry.models import (
    Adapter,
    AdapterVersion,
    Feedback,
    Tenant,
    TrafficCapture,
    TrafficSample,
    UsageRecord,
)
from registry.settings import Settings
from tests.conftest import RecordingQueue, Stack, World, create_database, pg_settings
from tests.lora_files import make_adapter, make_base_model

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {}}}]


class Traffic:
    """Tenants acme and globex, each with adapter 'support' v1 on base model 'tiny'."""

    def __init__(self, world: World, base_dir: Path) -> None:
        self.world, self.http = world, world.http
        make_base_model(base_dir)
        resp = self.http.post(
            "/v1/base-models",
            json={"name": "tiny", "uri": str(base_dir)},
            headers=world.ops.headers,
        )
        assert resp.status_code == 201, resp.text
        self.headers: dict[str, dict[str, str]] = {}
        self.clients: dict[str, str] = {}
        for slug in ("acme", "globex"):
            caller = world.tenant(slug)
            self.headers[slug], self.clients[slug] = caller.headers, caller.client_id
            url = f"/v1/tenants/{slug}/adapters"
            body = {"name": "support", "base_model": "tiny"}
            assert self.http.post(url, json=body, headers=self.headers[slug]).status_code == 201
            config, weights = make_adapter("tiny")
            files = {
                "adapter_config.json": ("adapter_config.json", config),
                "adapter_model.safetensors": ("adapter_model.safetensors", weights),
            }
            resp = self.http.post(
                f"{url}/support/versions", files=files, headers=self.headers[slug]
            )
            assert resp.status_code == 201, resp.text

    def request(
        self,
        slug: str,
        *,
        endpoint: str = "chat.completions",
        record: dict[str, Any] | None = None,
        captured: str = "full",
    ) -> str:
        """A request answered by support v1, as the gateway records it: a usage row and, with
        `record`, a traffic sample. Returns its request id."""
        return seed_request(self.world.stack, slug, endpoint=endpoint, record=record,
                            captured=captured)  # fmt: skip

    def post(self, slug: str, body: dict[str, Any], as_: str | None = None) -> Any:
        return self.http.post(
            f"/v1/tenants/{slug}/feedback", json=body, headers=self.headers[as_ or slug]
        )

    def rows(self) -> list[Feedback]:
        with self.world.stack.session() as s:
            return list(s.scalars(select(Feedback).order_by(Feedback.id)))


def seed_request(
    stack: Stack,
    slug: str,
    *,
    endpoint: str = "chat.completions",
    record: dict[str, Any] | None = None,
    captured: str = "full",
) -> str:
    """A usage row (and a traffic sample with `record`) of `slug`'s support v1."""
    request_id = f"req-{uuid.uuid4().hex[:16]}"
    for s in run_unit_of_work(stack.app.state.sessionmaker):
        tenant = s.scalars(select(Tenant).where(Tenant.slug == slug)).one()
        adapter = s.scalars(
            select(Adapter).where(Adapter.tenant_id == tenant.id, Adapter.name == "support")
        ).one()
        version = s.scalars(
            select(AdapterVersion).where(
                AdapterVersion.adapter_id == adapter.id, AdapterVersion.version == 1
            )
        ).one()
        s.add(
            UsageRecord(
                tenant_id=tenant.id,
                adapter_id=adapter.id,
                version_id=version.id,
                request_id=request_id,
                client_id="seed",
                model="support",
                endpoint=endpoint,
                stream=False,
                status_code=200,
                prompt_tokens=5,
                completion_tokens=4,
                latency_ms=1.0,
                started_at=dt.datetime.now(dt.UTC),
            )
        )
        if record is not None:
            s.add(
                TrafficSample(
                    tenant_id=tenant.id,
                    adapter_id=adapter.id,
                    version_id=version.id,
                    source="gateway",
                    record=record,
                    request_id=request_id,
                    captured=captured,
                    object_key=f"k/{request_id}.jsonl" if captured == "full" else None,
                    object_line=0 if captured == "full" else None,
                    redactions={},
                )
            )
    return request_id


@pytest.fixture
def traffic(world: World, tmp_path: Path) -> Traffic:
    return Traffic(world, tmp_path / "tiny-base")


CHAT = {"messages": [{"role": "user", "content": "where is my order?"}], "tools": TOOLS}
ANSWER = {"role": "assistant", "content": "It ships tomorrow."}


def test_a_rating_then_a_correction_replaces_it(traffic: Traffic) -> None:
    rid = traffic.request("acme", record=CHAT)
    r = traffic.post("acme", {"request_id": rid, "rating": -1})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["object"] == "feedback" and first["request_id"] == rid
    assert (first["adapter"], first["version"], first["rating"]) == ("support", 1, -1)
    assert first["corrected"] is False and first["correction"] is None
    assert first["replaced"] is False and first["captured"] == "full"

    r = traffic.post("acme", {"request_id": rid, "rating": 0, "correction": ANSWER,
                              "comment": "too vague"})  # fmt: skip
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["replaced"] is True and second["corrected"] is True
    assert second["correction"] == [ANSWER] and second["comment"] == "too vague"
    assert second["created_at"] == first["created_at"]
    assert _when(second["updated_at"]) > _when(first["updated_at"])
    rows = traffic.rows()
    assert len(rows) == 1 and rows[0].rating == 0 and rows[0].correction == [ANSWER]

    r = traffic.post("acme", {"request_id": rid, "rating": 1})  # replaces everything
    assert r.status_code == 200 and r.json()["correction"] is None
    assert [(f.rating, f.correction, f.comment) for f in traffic.rows()] == [(1, None, "")]


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_tool_calling_correction_is_stored_with_ids(traffic: Traffic) -> None:
    rid = traffic.request("acme", record=CHAT)
    call = {"type": "function", "function": {"name": "lookup_order", "arguments": '{"id": 7}'}}
    correction = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", **call}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "tool_calls": [call]},  # the last message's call needs no id
    ]
    r = traffic.post("acme", {"request_id": rid, "rating": 1, "correction": correction})
    assert r.status_code == 201, r.text
    stored = r.json()["correction"]
    assert stored[:2] == correction[:2]
    generated = stored[2]["tool_calls"][0]
    assert generated["id"].startswith("call_") and generated["function"] == call["function"]


def test_the_correction_is_redacted_with_the_adapters_capture_settings(
    traffic: Traffic,
) -> None:
    rid = traffic.request("acme", record=CHAT)
    text = "Mail jane.doe@example.com about ORD-123456."
    body = {"request_id": rid, "rating": 1, "correction": {"role": "assistant", "content": text},
            "comment": "cc ops@example.com"}  # fmt: skip
    r = traffic.post("acme", body)  # no capture row: built-ins on
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["correction"][0]["content"] == "Mail [REDACTED:EMAIL] about ORD-123456."
    assert out["comment"] == "cc [REDACTED:EMAIL]" and out["redactions"] == {"email": 2}

    _capture(traffic, redact=True, patterns=[{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}])
    out = traffic.post("acme", body).json()
    assert out["correction"][0]["content"] == "Mail [REDACTED:EMAIL] about [REDACTED:ORDER_ID]."
    assert out["redactions"] == {"email": 2, "ORDER_ID": 1}
    stored = traffic.rows()[0]
    assert "jane.doe" not in str(stored.correction) and "ORD-1" not in str(stored.correction)

    _capture(traffic, redact=False, patterns=[])
    out = traffic.post("acme", body).json()
    assert out["correction"][0]["content"] == text and out["redactions"] == {}


def _capture(traffic: Traffic, *, redact: bool, patterns: list[dict[str, str]]) -> None:
    for s in run_unit_of_work(traffic.world.stack.app.state.sessionmaker):
        tenant = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        adapter = s.scalars(select(Adapter).where(Adapter.tenant_id == tenant.id)).one()
        row = s.get(TrafficCapture, adapter.id) or TrafficCapture(
            adapter_id=adapter.id, tenant_id=tenant.id, mode="full", retention_seconds=86400,
            updated_by="test",
        )  # fmt: skip
        row.redact, row.redact_patterns = redact, patterns
        s.add(row)


def test_another_tenants_request_is_as_unknown_as_a_made_up_one(traffic: Traffic) -> None:
    theirs = traffic.request("globex", record=CHAT)
    r = traffic.post("acme", {"request_id": theirs, "rating": 1})
    made_up = traffic.post("acme", {"request_id": "req-never-sent", "rating": 1})
    assert r.status_code == made_up.status_code == 404
    assert r.json()["error"] == made_up.json()["error"] == "NotFound"
    assert r.json()["detail"].replace(theirs, "X") == made_up.json()["detail"].replace(
        "req-never-sent", "X"
    )
    assert "x-request-id" in r.json()["detail"]
    # globex's own post works, and acme's path cannot reach globex's feedback either
    assert traffic.post("globex", {"request_id": theirs, "rating": 1}).status_code == 201
    r = traffic.post("globex", {"request_id": theirs, "rating": 1}, as_="acme")
    assert r.status_code == 404 and "tenant 'globex'" in r.json()["detail"]
    listed = traffic.http.get("/v1/tenants/acme/feedback", headers=traffic.headers["acme"])
    assert listed.status_code == 200 and listed.json()["items"] == []


LONG = "x" * (64 * 1024)


def _fix(correction: object) -> dict[str, Any]:
    return {"request_id": "r", "rating": 1, "correction": correction}


def _calling(name: str = "f", arguments: object = "{}", **call: Any) -> dict[str, Any]:
    fn = {"name": name, "arguments": arguments}
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": fn, **call}]}


BAD = [
    ({"rating": 1}, "request_id: Field required"),
    ({"request_id": "r"}, "rating: Field required"),
    ({"request_id": "r", "rating": 2}, "rating: must be -1 (bad), 0 (neutral) or 1 (good), got 2"),
    ({"request_id": "r", "rating": True}, "got true"),
    ({"request_id": "r", "rating": "1"}, 'got "1"'),
    ({"request_id": "r" * 65, "rating": 1}, "at most 64 printable characters"),
    ({"request_id": "r", "rating": 1, "comment": "c" * 2001}, "at most 2000"),
    ({"request_id": "r", "rating": 1, "verdict": "ok"}, "verdict: Extra inputs"),
    (_fix("better text"), "got a string"),
    (_fix([]), "empty list"),
    (_fix({"role": "user", "content": "hi"}), 'correction: message 1: role "user" cannot'),
    (_fix({"role": "assistant", "content": "  "}), "content is empty"),
    (_fix({"role": "assistant", "content": [{"type": "text", "text": "a"}]}), "join the text"),
    (_fix({"role": "assistant", "content": "a", "weight": 1}), 'unknown key "weight"'),
    (_fix(_calling(arguments={"a": 1})), '"arguments" must be a string holding a JSON object'),
    (_fix(_calling(arguments="{oops")), '"arguments" is not valid JSON'),
    (_fix(_calling(arguments="[1]")), '"arguments" must be a JSON object, got a list'),
    (_fix(_calling(type="tool")), '"type" must be "function"'),
    (_fix(_calling(name="no spaces")), "function name must be"),
    (_fix([_calling(id="c1"), {"role": "assistant", "content": "done"}]),
     'call "c1" (f) of message 1 has no tool result'),
    (_fix([ANSWER, {"role": "tool", "tool_call_id": "c9", "content": "x"}]),
     '"tool_call_id" "c9" answers no call'),
    (_fix([{"role": "tool", "tool_call_id": "c", "content": "x"}]), "starts with an assistant"),
    (_fix([_calling(id="c1"), {"role": "tool", "tool_call_id": "c1", "content": "x"}]),
     "a correction ends with the assistant message"),
    (_fix({"role": "assistant", "content": LONG}), "correction: is 65,569 bytes; at most 64 KiB"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "needle"), BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_bad_bodies_are_422_with_a_reason_and_store_nothing(
    traffic: Traffic, body: dict[str, Any], needle: str
) -> None:
    if body.get("request_id") == "r":
        body = {**body, "request_id": traffic.request("acme", record=CHAT)}
    r = traffic.post("acme", body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"], r.json()["detail"]
    assert traffic.rows() == []


def test_a_correction_must_answer_what_was_asked(traffic: Traffic) -> None:
    call = {"type": "function", "function": {"name": "refund", "arguments": "{}"}}
    chat = traffic.request("acme", record=CHAT)
    calling = {"role": "assistant", "tool_calls": [call]}
    r = traffic.post("acme", {"request_id": chat, "rating": -1, "correction": calling})
    assert r.status_code == 422
    assert "'refund', which is not among the tools the request offered" in r.json()["detail"]
    assert "lookup_order" in r.json()["detail"]

    completion = traffic.request("acme", endpoint="completions", record={"prompt": "Hi"},
                                 captured="prompts")  # fmt: skip
    two = [ANSWER, ANSWER]
    r = traffic.post("acme", {"request_id": completion, "rating": -1, "correction": two})
    assert r.status_code == 422 and "was a completions request" in r.json()["detail"]
    assert traffic.rows() == []
    r = traffic.post("acme", {"request_id": completion, "rating": -1, "correction": ANSWER})
    assert r.status_code == 201 and r.json()["captured"] == "prompts"

    unsampled = traffic.request("acme")  # not in the traffic log: tools unknown, call accepted
    r = traffic.post("acme", {"request_id": unsampled, "rating": 0, "correction": calling})
    assert r.status_code == 201 and r.json()["captured"] is None


def test_list_newest_first_by_adapter_and_rating(traffic: Traffic) -> None:
    ids = [traffic.request("acme", record=CHAT) for _ in range(3)]
    for rid, rating in zip(ids, (1, -1, 1), strict=True):
        assert traffic.post("acme", {"request_id": rid, "rating": rating}).status_code == 201
    theirs = traffic.request("globex")
    assert traffic.post("globex", {"request_id": theirs, "rating": 1}).status_code == 201
    url = "/v1/tenants/acme/feedback"
    headers = traffic.headers["acme"]
    page = traffic.http.get(url, headers=headers).json()
    assert [f["request_id"] for f in page["items"]] == ids[::-1]
    assert (page["limit"], page["offset"]) == (100, 0)
    good = traffic.http.get(url, params={"rating": 1, "adapter": "support"}, headers=headers)
    assert [f["request_id"] for f in good.json()["items"]] == [ids[2], ids[0]]
    second = traffic.http.get(url, params={"limit": 1, "offset": 1}, headers=headers).json()
    assert [f["request_id"] for f in second["items"]] == [ids[1]]
    assert traffic.http.get(url, params={"adapter": "nope"}, headers=headers).status_code == 404
    assert traffic.http.get(url, params={"rating": 5}, headers=headers).status_code == 422
    ops = traffic.http.get(url, headers=traffic.world.ops.headers).json()
    assert len(ops["items"]) == 3
    auditor = traffic.http.get(url, headers=traffic.world.auditor.headers)  # reads everything
    assert auditor.status_code == 200 and len(auditor.json()["items"]) == 3
    r = traffic.post("acme", {"request_id": ids[0], "rating": 0}, as_="globex")
    assert r.status_code == 404


@pytest.fixture(params=["postgres", "sqlite"])
def own_stack(
    request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str, s3_endpoint: str
) -> Iterator[Stack]:
    """A registry whose commits are real (no outer transaction), so that threads race."""
    if request.param == "sqlite":
        settings = Settings(home=tmp_path / "home", log_json=True)
        settings.home_dir.mkdir()
    else:
        url = create_database(pg_admin_url, f"loraplex_feedback_{os.getpid()}")
        settings = pg_settings(url, s3_endpoint, tmp_path / "home", "feedback-race")
    upgrade(settings.resolved_database_url)
    app = create_app(settings, queue=RecordingQueue())
    yield Stack(request.param, app, app.state.engine)
    app.state.engine.dispose()


def test_concurrent_posts_on_one_request_leave_one_row(own_stack: Stack, tmp_path: Path) -> None:
    traffic = Traffic(World(own_stack), tmp_path / "tiny-base")
    rid = traffic.request("acme")
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def post(rating: int) -> None:
        barrier.wait()
        r = traffic.http.post("/v1/tenants/acme/feedback",
                              json={"request_id": rid, "rating": rating},
                              headers=traffic.headers["acme"])  # fmt: skip
        statuses.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i % 3 - 1,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] * 5 + [201], statuses
    with own_stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 1
