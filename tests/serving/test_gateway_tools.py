"""Tool calls through the gateway, end to end: real registry, vLLM CPU engine with the hermes
tool parser, gateway, the official `openai` client.

The adapter is a LoRA over-fitted in process on order-desk tool-use rows (tool_adapter.py); the
engine's `tool_calls` must equal what PEFT + transformers generate greedily for the same chat
request, parsed the same way, streamed or not. Usage records count the calls; sampled traffic
keeps the tools. Module stack: starting vLLM takes minutes, so every test here shares it.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import orjson
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from registry.models import TrafficSample, UsageRecord
from serving.gateway.proxy import Outcome, _usage_event
from serving.gateway.usage import sample_records
from tests.serving import tool_adapter as ta
from tests.serving.stack import ServingStack
from tests.workers.platform import tiny_base_model

MAX_TOKENS = 96


def _delta(choice: int, *calls: dict[str, Any]) -> bytes:
    chunk = {"id": "c", "choices": [{"index": choice, "delta": {"tool_calls": list(calls)}}]}
    return b"data: " + orjson.dumps(chunk)


def test_tool_calls_are_counted_in_answers_and_in_stream_deltas() -> None:
    out = Outcome()
    answer = {
        "choices": [
            {"index": 0, "message": {"content": None, "tool_calls": [{"id": "a"}, {"id": "b"}]}},
            {"index": 1, "message": {"content": "no call", "tool_calls": []}},
            {"index": 2, "message": {"content": None, "tool_calls": [{"id": "c"}]}},
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    out.take_answer(answer)
    assert (out.tool_calls, out.prompt_tokens, out.completion_tokens) == (3, 9, 4)

    out = Outcome()
    name = {"function": {"name": "f"}, "id": "x", "type": "function"}
    events = [
        _delta(0, {"index": 0, **name}),
        _delta(0, {"index": 0, "function": {"arguments": '{"a": '}}),
        _delta(0, {"index": 0, "function": {"arguments": "1}"}}, {"index": 1, **name}),
        _delta(1, {"index": 0, **name}),  # another choice's first call
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x","tool_calls":[]}}]}',
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}',
    ]
    dropped = [_usage_event(e, out, strip=True) for e in events]
    assert dropped == [False] * 5 + [True]  # only the injected usage event is taken out
    assert (out.tool_calls, out.completion_tokens) == (3, 7)
    for junk in (b'data: {"tool_calls": 3}', b'data: ["tool_calls"]', b'data: {"tool_calls"'):
        assert _usage_event(junk, Outcome(), strip=True) is False


def test_sampled_chat_keeps_the_tools_next_to_the_messages() -> None:
    messages = [{"role": "user", "content": "Where is order A17?"}]
    body = {"model": "m", "messages": messages, "tools": ta.TOOLS, "temperature": 0}
    assert sample_records("chat.completions", body) == [{"messages": messages, "tools": ta.TOOLS}]
    body |= {"tool_choice": "required", "parallel_tool_calls": False}
    assert sample_records("chat.completions", body) == [
        {
            "messages": messages,
            "tools": ta.TOOLS,
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    ]
    assert sample_records("chat.completions", {"messages": messages, "tools": None}) == [
        {"messages": messages}
    ]


@pytest.fixture(scope="module")
def tiny_base() -> Path:
    """A small base model that has seen tool-calling chats (a quarter of its pre-training rows
    are the synthetic mix), so the fixture adapter learns its calls in a few hundred steps; the
    corpus-only one the other serving tests use does not get there."""
    return tiny_base_model(synthetic_share=0.25)


@pytest.fixture(scope="module")
def agent(tiny_base: Path) -> Path:
    return ta.trained(tiny_base)


@pytest.fixture(scope="module")
def stack(
    pg_admin_url: str, s3_endpoint: str, tiny_base: Path, agent: Path
) -> Iterator[ServingStack]:
    serving = ServingStack(
        pg_admin_url,
        s3_endpoint,
        tiny_base,
        base_fields={"tool_call_parser": "hermes"},
        extra_env={
            # no free whitespace in structured outputs: a tiny model would loop on it
            "LORAPLEX_ENGINE_EXTRA_ARGS": "--structured-outputs-config "
            + shlex.quote(json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})),
            "LORAPLEX_TRAFFIC_SAMPLE_RATE": "1.0",
            "LORAPLEX_USAGE_FLUSH_SECONDS": "0.2",
        },
    )
    try:
        serving.create_adapter("acme", "agent")
        serving.upload("acme", "agent", agent)
        serving.promote("acme", "agent", 1)
        yield serving
    finally:
        serving.close()


def _wire(messages: list[ta.Message]) -> list[ta.Message]:
    """Messages as a client sends them: tool-call arguments as JSON text."""
    out = []
    for m in messages:
        calls = m.get("tool_calls")
        if calls:
            m = {
                **m,
                "tool_calls": [
                    {
                        **c,
                        "function": {
                            **c["function"],
                            "arguments": json.dumps(c["function"]["arguments"]),
                        },
                    }
                    for c in calls
                ],
            }
        out.append(m)
    return out


def _chat(stack: ServingStack, messages: list[ta.Message], request_id: str, **kw: Any) -> Any:
    kw.setdefault("tools", ta.TOOLS)
    return stack.openai("acme").chat.completions.create(
        model="agent",
        messages=_wire(messages),
        max_tokens=MAX_TOKENS,
        temperature=0,
        extra_headers={"x-request-id": request_id},
        **kw,
    )


def _calls(message: Any) -> list[tuple[str, Any]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


def _reference(
    tiny_base: Path, agent: Path, messages: list[ta.Message]
) -> tuple[str | None, list[tuple[str, Any]]]:
    return ta.parse(ta.greedy_chat(tiny_base, agent, messages, MAX_TOKENS))


@pytest.mark.parametrize(
    ("messages", "calls"),
    [(ta.SINGLE, ta.SINGLE_CALLS), (ta.PARALLEL, ta.PARALLEL_CALLS)],
    ids=["single", "parallel"],
)
def test_tool_calls_equal_peft_greedy_parsed_the_same_way(
    stack: ServingStack,
    tiny_base: Path,
    agent: Path,
    messages: list[ta.Message],
    calls: list[dict[str, Any]],
) -> None:
    tag = f"tools-{len(calls)}"
    answer = _chat(stack, messages, f"{tag}-whole")
    choice = answer.choices[0]
    reference = _reference(tiny_base, agent, messages)
    assert (choice.message.content, _calls(choice.message)) == reference
    assert reference[1] == ta.expected(calls)  # the adapter learned its rows
    assert choice.finish_reason == "tool_calls"
    ids = [c.id for c in choice.message.tool_calls]
    assert all(ids) and len(set(ids)) == len(calls)

    # streamed: the deltas assemble into the same calls
    assembled: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in _chat(stack, messages, f"{tag}-stream", stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                call = assembled.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += d.id or ""
                if d.function is not None:
                    call["name"] += d.function.name or ""
                    call["arguments"] += d.function.arguments or ""
    streamed = [assembled[i] for i in sorted(assembled)]
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == reference[1]
    assert all(c["id"] for c in streamed) and finish == "tool_calls"


def test_a_tool_result_gets_a_text_answer(
    stack: ServingStack, tiny_base: Path, agent: Path
) -> None:
    answer = _chat(stack, ta.FOLLOW_UP, "tools-follow-up")
    choice = answer.choices[0]
    reference = _reference(tiny_base, agent, ta.FOLLOW_UP)
    assert reference == (ta.FOLLOW_UP_ANSWER, [])
    assert (choice.message.content, _calls(choice.message)) == reference
    assert choice.finish_reason == "stop"


def test_tool_choice_passes_through(stack: ServingStack) -> None:
    plain = _chat(stack, ta.SINGLE, "tools-none", tool_choice="none")
    assert not plain.choices[0].message.tool_calls and plain.choices[0].message.content
    named = {"type": "function", "function": {"name": "lookup_order"}}
    forced = _chat(stack, ta.SINGLE, "tools-named", tool_choice=named)
    (call,) = forced.choices[0].message.tool_calls
    assert call.function.name == "lookup_order"
    jsonschema.validate(json.loads(call.function.arguments), ta.TOOLS[0]["function"]["parameters"])


def test_response_format_json_schema_is_honoured(stack: ServingStack) -> None:
    schema = {
        "type": "object",
        "properties": {
            "status": {"enum": ["shipped", "late", "lost"]},
            "urgent": {"type": "boolean"},
        },
        "required": ["status", "urgent"],
        "additionalProperties": False,
    }
    answer = _chat(
        stack,
        ta.SINGLE,
        "tools-schema",
        tools=openai.NOT_GIVEN,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "status", "schema": schema},
        },
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), schema)


def _eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_usage_counts_tool_calls_and_samples_keep_the_tools(stack: ServingStack) -> None:
    request_id = uuid.uuid4().hex
    _chat(stack, ta.PARALLEL, request_id, parallel_tool_calls=True)
    for _chunk in _chat(stack, ta.PARALLEL, f"{request_id}-s", stream=True):
        pass
    _chat(stack, ta.FOLLOW_UP, f"{request_id}-f")
    wanted = {request_id: 2, f"{request_id}-s": 2, f"{request_id}-f": 0}
    with Session(create_engine(stack.live.env["LORAPLEX_DATABASE_URL"])) as s:
        rows = _eventually(
            lambda: (
                s.scalars(select(UsageRecord).where(UsageRecord.request_id.in_(wanted))).all()
                if len(
                    s.scalars(select(UsageRecord).where(UsageRecord.request_id.in_(wanted))).all()
                )
                == 3
                else None
            )
        )
        assert rows, "usage rows not written within 5 s"
        assert {r.request_id: r.tool_calls for r in rows} == wanted
        samples = s.scalars(select(TrafficSample)).all()
        records = [x.record for x in samples if x.record.get("parallel_tool_calls") is True]
        assert records and records[0]["tools"] == ta.TOOLS
        assert records[0]["messages"] == _wire(ta.PARALLEL)
