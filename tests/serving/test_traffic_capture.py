"""Traffic capture in the gateway: per-adapter settings (set through the registry API), redaction
before anything is stored, full traces as JSONL batch objects, prompts mode, the tenant's
opt-out, and a store that is down. The first tests need no services (answer assembly, batching);
the rest run on the serving stack (sample rate 1.0, flush every 0.2 s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, Tenant, TrafficSample, UsageRecord
from registry.models.enums import CaptureMode
from registry.storage import ObjectStore, StoredObject, open_store
from registry.traffic.redaction import Redactor
from registry.traffic.traces import decode_batch, read_traces, trace_prefix
from serving.gateway import usage as usage_mod
from serving.gateway.answers import Answer
from serving.gateway.capture import CaptureSettings, Sampled, prepare
from serving.gateway.proxy import Outcome, _usage_event
from serving.gateway.usage import Usage, UsageWriter
from tests.serving.stack import ServingStack

PII = (
    "Reach me at jane.doe@example.com or +44 20 7946 0958, card 4111 1111 1111 1111, "
    "about ORD-123456. Where is it?"
)
PATTERNS = [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}]
EXPECTED = {"email": 1, "phone": 1, "card": 1, "ORDER_ID": 1}
FULL = CaptureSettings(mode=CaptureMode.FULL, rate=1.0, patterns=(("ORDER_ID", "ORD-[0-9]{6}"),))


# --- no services --------------------------------------------------------------------------


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data)


def test_a_stream_is_assembled_from_its_deltas_content_and_tool_calls() -> None:
    out = Outcome(answer=Answer(chat=True))
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Let me "}}]},
        {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {"choices": [{"index": 0, "delta": {"content": "check."}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"id": '},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"A17"}'}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}},
    ]
    assert out.answer is not None
    for chunk in chunks[:-1]:
        assert out.answer.response() is None  # incomplete until a finish_reason
        assert _usage_event(_event(chunk), out, strip=True) is False
    assert _usage_event(_event(chunks[-1]), out, strip=True) is True  # still taken out
    assert out.answer.response() == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"id": "A17"}'},
            }
        ],
    }
    assert out.answer.finish_reason == "tool_calls" and out.tool_calls == 1
    assert (out.prompt_tokens, out.completion_tokens) == (5, 7)


def test_whole_answers_and_completions_keep_the_first_choice() -> None:
    chat = Answer(chat=True)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "Hi",
        "refusal": None,
        "tool_calls": [],
    }
    chat.take_whole({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    assert chat.response() == {"role": "assistant", "content": "Hi"}
    text = Answer(chat=False)
    for piece in ("a", "b"):
        text.feed({"choices": [{"index": 0, "text": piece, "finish_reason": None}]})
    assert text.response() is None
    text.feed({"choices": [{"index": 0, "text": "c", "finish_reason": "length"}]})
    assert text.response() == {"text": "abc"}


def _sampled(**fields: Any) -> Sampled:
    base: dict[str, Any] = {
        "tenant_id": uuid.UUID(int=1),
        "tenant": "acme",
        "adapter_id": uuid.UUID(int=2),
        "adapter": "orders",
        "version_id": uuid.UUID(int=3),
        "version": 1,
        "request_id": "r1",
        "endpoint": "chat.completions",
        "body": {"messages": [{"role": "user", "content": PII}], "temperature": 0},
        "settings": FULL,
        "created_at": dt.datetime(2026, 12, 5, tzinfo=dt.UTC),
        "status": 200,
        "response": {"role": "assistant", "content": "Mail x@y.io"},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    return Sampled(**{**base, **fields})


def test_prepare_redacts_and_batches_per_tenant_and_adapter() -> None:
    other = uuid.UUID(int=9)
    rows, batches = prepare(
        [
            _sampled(request_id="a"),
            _sampled(request_id="b", adapter_id=other),
            _sampled(request_id="c"),
            _sampled(request_id="d", status=500, response=None),  # no answer: the prompt only
            _sampled(request_id="e", finish_reason=None, response=None),  # cut short
            _sampled(request_id="f", endpoint="completions", body={"prompt": ["x@y.io", "b"]}),
            _sampled(request_id="g", settings=CaptureSettings(rate=1.0, redact=False)),
        ],
        dt.datetime.now(dt.UTC),
    )
    assert [(b.adapter_id, [r["request_id"] for r in b.rows]) for b in batches] == [
        (uuid.UUID(int=2), ["a", "c"]),
        (other, ["b"]),
    ]
    first = batches[0]
    assert first.key.startswith(trace_prefix(uuid.UUID(int=1), uuid.UUID(int=2)))
    lines = decode_batch(first.data)
    assert [t["request_id"] for t in lines] == ["a", "c"]
    assert [r["object_line"] for r in first.rows] == [0, 1]
    assert {r["object_key"] for r in first.rows} == {first.key}
    assert lines[0]["response"] == {"role": "assistant", "content": "Mail [REDACTED:EMAIL]"}
    assert lines[0]["redactions"] == {**EXPECTED, "email": 2}
    assert first.rows[0]["captured"] == CaptureMode.FULL
    assert first.rows[0]["record"] == lines[0]["request"]
    assert "jane.doe" not in first.data.decode()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == ["d", "e", "f", "g"]
    assert all(r["captured"] == CaptureMode.PROMPTS and r["object_key"] is None for r in rows)
    assert by_id["d"][0]["redactions"] == EXPECTED
    assert [r["record"] for r in by_id["f"]] == [{"prompt": "[REDACTED:EMAIL]"}, {"prompt": "b"}]
    assert by_id["g"][0]["record"]["messages"][0]["content"] == PII  # redaction off
    assert by_id["g"][0]["redactions"] == {}


# --- on the serving stack -------------------------------------------------------------------


def _db(serving: ServingStack) -> Session:
    return Session(create_engine(serving.live.env["LORAPLEX_DATABASE_URL"]))


def _store(serving: ServingStack) -> ObjectStore:
    env = serving.live.env
    return open_store(env["LORAPLEX_OBJECT_STORE"], s3_endpoint_url=env["LORAPLEX_S3_ENDPOINT_URL"])


def _eventually(check: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def _rows(serving: ServingStack, *request_ids: str) -> list[TrafficSample]:
    with _db(serving) as s:
        return list(
            s.scalars(
                select(TrafficSample)
                .where(TrafficSample.request_id.in_(request_ids))
                .order_by(TrafficSample.id)
            ).all()
        )


def _capture(serving: ServingStack, tenant: str, adapter: str, **body: Any) -> None:
    url = f"/v1/tenants/{tenant}/adapters/{adapter}/traffic-capture"
    out = serving.ok(serving.http.put(url, json=body, headers=serving.tokens[tenant]))
    assert out["mode"] == body.get("mode", "prompts")
    time.sleep(0.8)  # the gateway reads capture settings with the route (cached 0.5 s)


@pytest.fixture
def orders_capture(serving: ServingStack) -> Iterator[Callable[..., None]]:
    yield lambda **body: _capture(serving, "acme", "orders", **body)
    url = "/v1/tenants/acme/adapters/orders/traffic-capture"
    serving.http.delete(url, headers=serving.tokens["acme"])
    time.sleep(0.8)


def _metric(text: str, name: str, **labels: str) -> float:
    lines = [x for x in text.splitlines() if x.startswith(name + "{")]
    return sum(
        float(x.rsplit(" ", 1)[1])
        for x in lines
        if all(f'{k}="{v}"' in x for k, v in labels.items())
    )


def _keys(store: ObjectStore, prefix: str) -> set[str]:
    return set(store.list_keys(prefix))


def test_full_capture_stores_redacted_traces_whole_and_streamed(
    serving: ServingStack, orders_capture: Callable[..., None]
) -> None:
    orders_capture(mode="full", sample_rate=1.0, redact_patterns=PATTERNS)
    client = serving.openai("acme")
    messages = [{"role": "user", "content": PII}]
    raw = client.chat.completions.with_raw_response.create(
        model="orders", messages=messages, max_tokens=12, temperature=0
    )
    whole_id = raw.headers["x-request-id"]  # the gateway chose it
    whole = raw.parse()
    stream_id = f"cap-stream-{uuid.uuid4().hex[:8]}"
    parts: list[str] = []
    for chunk in client.chat.completions.create(
        model="orders",
        messages=messages,
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_headers={"x-request-id": stream_id},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    received = {whole_id: whole.choices[0].message.content or "", stream_id: "".join(parts)}

    rows = _eventually(
        lambda: (r := _rows(serving, whole_id, stream_id)) and len(r) == 2 and r or None
    )
    assert rows, f"no trace rows within 8 s\n{serving.gateway_log()[-3000:]}"
    red = Redactor.build(PATTERNS)
    store = _store(serving)
    traces = dict(read_traces(store, [(r.object_key, r.object_line) for r in rows]))
    for row in rows:
        assert row.captured == CaptureMode.FULL and row.source == "gateway"
        assert row.object_key and row.object_key.startswith(
            trace_prefix(row.tenant_id, row.adapter_id)
        )
        answer, answer_counts = red.redact(received[row.request_id])
        expected = dict(EXPECTED)
        for kind, n in answer_counts.items():
            expected[kind] = expected.get(kind, 0) + n
        assert row.redactions == expected
        assert row.record == {"messages": [{"role": "user", "content": red.redact(PII)[0]}]}
        trace = traces[(row.object_key, row.object_line)]
        assert trace is not None
        assert trace["request_id"] == row.request_id
        assert (trace["adapter"], trace["version"]) == ("orders", 1)
        assert trace["endpoint"] == "chat.completions"
        assert trace["request"] == row.record and trace["redactions"] == expected
        assert trace["response"]["role"] == "assistant"
        assert trace["response"]["content"] == answer
        assert trace["finish_reason"] in ("stop", "length")
        assert trace["usage"]["completion_tokens"] > 0
        data = store.get_bytes(row.object_key)
        assert b"jane.doe@example.com" not in data and b"ORD-123456" not in data
        assert b"4111 1111" not in data and b"7946 0958" not in data
        assert "jane.doe" not in orjson.dumps(row.record).decode()
    metrics = httpx.get(f"{serving.gateway_metrics_url}/metrics", trust_env=False).text
    assert _metric(metrics, "loraplex_gateway_traces_captured_total", tenant="acme") >= 2
    for kind in EXPECTED:
        assert _metric(metrics, "loraplex_gateway_redactions_total", tenant="acme", kind=kind) >= 2
    (first,) = [r for r in rows if r.request_id == whole_id]
    whole_trace = traces[(first.object_key, first.object_line)]
    assert (
        whole.usage
        and whole_trace
        and whole_trace["usage"]
        == {
            "prompt_tokens": whole.usage.prompt_tokens,
            "completion_tokens": whole.usage.completion_tokens,
        }
    )


def test_prompts_mode_and_the_default_store_redacted_prompts_and_no_object(
    serving: ServingStack, orders_capture: Callable[..., None]
) -> None:
    orders_capture(mode="prompts", sample_rate=1.0, redact_patterns=PATTERNS)
    store = _store(serving)
    with _db(serving) as s:
        ids = s.execute(
            select(Adapter.tenant_id, Adapter.id)
            .join(Tenant)
            .where(Tenant.slug == "acme", Adapter.name == "orders")
        ).one()
    before = _keys(store, trace_prefix(*ids))
    raw = serving.openai("acme").chat.completions.with_raw_response.create(
        model="orders", messages=[{"role": "user", "content": PII}], max_tokens=4
    )
    rid = raw.headers["x-request-id"]
    rows = _eventually(lambda: _rows(serving, rid))
    assert rows and len(rows) == 1
    row = rows[0]
    assert (row.captured, row.object_key, row.object_line) == (CaptureMode.PROMPTS, None, None)
    assert row.redactions == EXPECTED
    assert "[REDACTED:ORDER_ID]" in row.record["messages"][0]["content"]
    assert _keys(store, trace_prefix(*ids)) == before
    # no capture row (globex support): prompts at the platform rate, built-ins redacted
    raw = serving.openai("globex").chat.completions.with_raw_response.create(
        model="support", messages=[{"role": "user", "content": PII}], max_tokens=4
    )
    rid = raw.headers["x-request-id"]
    rows = _eventually(lambda: _rows(serving, rid))
    assert rows and rows[0].captured == CaptureMode.PROMPTS and rows[0].object_key is None
    assert rows[0].redactions == {"email": 1, "phone": 1, "card": 1}  # ORD-... is acme's


def test_a_tenant_that_opted_out_has_nothing_captured(serving: ServingStack) -> None:
    store = _store(serving)
    _capture(serving, "globex", "support", mode="full", sample_rate=1.0)
    headers = serving.tokens["globex"]
    serving.ok(
        serving.http.put(
            "/v1/tenants/globex/traffic-logging", json={"enabled": False}, headers=headers
        )
    )
    try:
        time.sleep(1.2)  # the gateway's auth cache (1 s in this stack)
        rid = f"optout-{uuid.uuid4().hex[:8]}"
        serving.openai("globex").chat.completions.create(
            model="support",
            messages=[{"role": "user", "content": PII}],
            max_tokens=4,
            extra_headers={"x-request-id": rid},
        )
        with _db(serving) as s:
            usage = _eventually(
                lambda: s.scalar(select(UsageRecord).where(UsageRecord.request_id == rid))
            )
            assert usage is not None  # the request was served and its usage flushed
            time.sleep(0.5)
        assert _rows(serving, rid) == []
        prefix = trace_prefix(usage.tenant_id, usage.adapter_id)
        assert all(rid.encode() not in store.get_bytes(k) for k in _keys(store, prefix))
    finally:
        serving.http.put(
            "/v1/tenants/globex/traffic-logging", json={"enabled": True}, headers=headers
        )
        serving.http.delete("/v1/tenants/globex/adapters/support/traffic-capture", headers=headers)
        time.sleep(0.8)


class FlakyStore:
    """The real store, down until `up` is set."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.up = False
        self.puts: list[str] = []

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        self.puts.append(key)
        if not self.up:
            raise ConnectionError("store down")
        return self.store.put_bytes(key, data)


def test_a_store_that_is_down_holds_traces_back_but_not_usage(
    serving: ServingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(serving.live.env["LORAPLEX_DATABASE_URL"])
    from sqlalchemy.orm import sessionmaker

    with Session(engine) as s:
        tenant = s.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        adapter = s.scalars(
            select(Adapter).where(Adapter.tenant_id == tenant.id, Adapter.name == "orders")
        ).one()
        version = s.scalars(
            select(AdapterVersion).where(
                AdapterVersion.adapter_id == adapter.id, AdapterVersion.version == 1
            )
        ).one()
    flaky = FlakyStore(_store(serving))
    writer = UsageWriter(sessionmaker(engine), flush_seconds=60, store=flaky)  # type: ignore[arg-type]
    rid = f"flaky-{uuid.uuid4().hex[:8]}"
    ids = {"tenant_id": tenant.id, "adapter_id": adapter.id, "version_id": version.id}
    now = dt.datetime.now(dt.UTC)
    writer.record(
        Usage(
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            version_id=version.id,
            request_id=rid,
            client_id="c",
            model="orders",
            endpoint="chat.completions",
            stream=False,
            status_code=200,
            prompt_tokens=3,
            completion_tokens=4,
            latency_ms=1.0,
            started_at=now,
        )
    )
    writer.capture(_sampled(**ids, request_id=rid, created_at=now))
    assert asyncio.run(writer.flush()) == 1  # usage written while the store is down
    assert _rows(serving, rid) == [] and len(writer._batches) == 1
    held_key = writer._batches[0].key
    flaky.up = True
    asyncio.run(writer.flush())
    assert flaky.puts == [held_key, held_key] and writer._batches == []
    (row,) = _rows(serving, rid)
    assert (row.object_key, row.object_line, row.captured) == (held_key, 0, CaptureMode.FULL)
    (trace,) = decode_batch(flaky.store.get_bytes(held_key))
    assert trace["request_id"] == rid and trace["redactions"] == {**EXPECTED, "email": 2}

    # bounded: while the store stays down, the oldest batches beyond the limit are dropped
    flaky.up = False
    monkeypatch.setattr(usage_mod, "MAX_HELD_TRACE_BYTES", 1)
    writer.capture(_sampled(**ids, request_id=f"{rid}-2", created_at=now))
    asyncio.run(writer.flush())
    assert writer._batches == [] and _rows(serving, f"{rid}-2") == []
    engine.dispose()
