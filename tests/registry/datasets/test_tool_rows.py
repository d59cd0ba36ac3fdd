"""OpenAI tool-use fine-tuning rows: every check passes a good row and refuses a bad one with
its line number and reason, in the validator and through the upload API (nothing stored).

Each bad case is line 2 of a file whose line 1 is a good agent row (an order desk)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from registry.datasets.tool_schemas import ToolSchemas
from registry.datasets.validation import CHAT, DatasetValidator, LineError
from registry.models import Dataset
from tests.conftest import World
from tests.registry.datasets.test_datasets_api import assert_nothing_stored, upload

Row = dict[str, Any]


def tool(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    params = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "parameters": params}}


TOOLS = [
    tool("lookup_order", {"order_id": {"type": "string"}}, ["order_id"]),
    tool("issue_refund", {"order_id": {"type": "string"}, "amount": {"type": "number"}},
         ["order_id", "amount"]),
    tool("escalate", {"reason": {"type": "string"}}, ["reason"]),
]  # fmt: skip
TOOLS[0]["function"]["description"] = "Find an order by its id"


def call(cid: str, name: str, args: object) -> dict[str, Any]:
    raw = args if isinstance(args, str) else orjson.dumps(args).decode()
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": raw}}


def agent_row() -> Row:
    """User asks, the assistant looks the order up, the tool answers, the assistant replies."""
    return {
        "tools": copy.deepcopy(TOOLS),
        "messages": [
            {"role": "system", "content": "You are the order desk."},
            {"role": "user", "content": "Where is order A17?"},
            {"role": "assistant", "tool_calls": [call("c1", "lookup_order", {"order_id": "A17"})]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "Order A17 has shipped."},
        ],
    }


def edit(fn: Callable[[Row], object]) -> Row:
    row = agent_row()
    fn(row)
    return row


def msgs(row: Row) -> list[dict[str, Any]]:
    return row["messages"]  # type: ignore[no-any-return]


def refund_twice(row: Row) -> None:  # parallel calls, both answered, then a text answer
    msgs(row)[2]["tool_calls"] = [
        call("r1", "issue_refund", {"order_id": "A17", "amount": 5}),
        call("r2", "issue_refund", {"order_id": "B2", "amount": 2.5}),
    ]
    msgs(row)[3:4] = [
        {"role": "tool", "tool_call_id": "r2", "content": "ok"},
        {"role": "tool", "tool_call_id": "r1", "content": ""},
    ]


def set_params(i: int, params: object) -> Callable[[Row], None]:
    def apply(row: Row) -> None:
        row["tools"][i]["function"]["parameters"] = params

    return apply


ORDER_ID = {"type": "object", "properties": {"order_id": {"type": "string"}}}

GOOD: dict[str, Row] = {
    "agent row": agent_row(),
    "parallel calls answered in any order": edit(refund_twice),
    "content null beside calls": edit(lambda r: msgs(r)[2].update(content=None)),
    "content empty beside calls": edit(lambda r: msgs(r)[2].update(content="")),
    "content text beside calls": edit(lambda r: msgs(r)[2].update(content="Checking.")),
    "developer role": edit(lambda r: msgs(r)[0].update(role="developer")),
    "weight 0 on an earlier turn": edit(lambda r: msgs(r)[2].update(weight=0)),
    "weight 1": edit(lambda r: msgs(r)[4].update(weight=1)),
    "ends with a call (learned, nothing follows)": edit(lambda r: r.update(messages=msgs(r)[:3])),
    "tools without a call": edit(lambda r: r.update(messages=[msgs(r)[1], msgs(r)[4]])),
    "parallel_tool_calls false, one call each": edit(lambda r: r.update(parallel_tool_calls=False)),
    "tool_calls null is no call": edit(lambda r: msgs(r)[4].update(tool_calls=None)),
    "function without parameters": edit(lambda r: r["tools"][2]["function"].pop("parameters")),
    "pattern RE2 runs": edit(set_params(0, {**ORDER_ID, "properties": {
        "order_id": {"type": "string", "pattern": "^[A-Z][0-9]+$"}}})),
    "local $ref into $defs, $schema at the top": edit(set_params(0, {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"id": {"type": "string", "minLength": 2}},
        "type": "object", "properties": {"order_id": {"$ref": "#/$defs/id"}}})),
}  # fmt: skip


@pytest.mark.parametrize("row", GOOD.values(), ids=GOOD.keys())
def test_good_rows(row: Row) -> None:
    v = DatasetValidator()
    assert v.feed(orjson.dumps(row) + b"\n") == [orjson.dumps(row) + b"\n"]
    v.finish()
    assert v.ok, v.report.errors
    assert (v.report.format, v.report.rows, v.report.tool_rows) == (CHAT, 1, 1)


def no_tools(row: Row) -> None:
    del row["tools"]


def answer_c1_twice(row: Row) -> None:
    msgs(row).insert(4, {"role": "tool", "tool_call_id": "c1", "content": "again"})


def reuse_id(row: Row) -> None:
    msgs(row)[2]["tool_calls"].append(call("c1", "escalate", {"reason": "x"}))


def unanswered(row: Row) -> None:
    msgs(row)[2]["tool_calls"].append(call("c2", "escalate", {"reason": "angry"}))


def bad_args(args: object, name: str = "issue_refund") -> Callable[[Row], None]:
    def apply(row: Row) -> None:
        msgs(row)[2]["tool_calls"] = [call("c1", name, args)]

    return apply


def refund_twice_not_parallel(row: Row) -> None:
    refund_twice(row)
    row["parallel_tool_calls"] = False


def legacy_call(row: Row) -> None:
    msgs(row)[2] = {"role": "assistant", "content": None, "function_call": {"name": "x"}}


CALL_OF_MSG3 = (
    'message 5: call "c2" (escalate) of message 3 has no tool result before this assistant '
    'message; add a tool message with "tool_call_id": "c2" after message 3'
)
BAD: dict[str, tuple[Row, str]] = {
    "call to a tool not in tools": (edit(bad_args({}, "cancel")),
        "message 3: call 1: calls 'cancel', which is not in \"tools\" "
        "(tools: lookup_order, issue_refund, escalate)"),
    "call without tools": (edit(no_tools),
        "message 3: call 1: calls 'lookup_order' but the row has no \"tools\"; add \"tools\": "
        '[{"type": "function", "function": {"name": ..., "parameters": ...}}] defining it'),
    "arguments an object, not a string": (edit(lambda r: msgs(r)[2]["tool_calls"][0][
        "function"].update(arguments={"order_id": "A17"})),
        'message 3: call 1: lookup_order: "arguments" must be a string holding a JSON object, '
        "got an object; encode the arguments as a JSON string"),
    "arguments not JSON": (edit(bad_args("{order_id: A17}")),
        'message 3: call 1: issue_refund: "arguments" is not valid JSON '
        "(unexpected character, expected a string key at column 2)"),
    "arguments not an object": (edit(bad_args("[1, 2]")),
        'message 3: call 1: issue_refund: "arguments" must decode to a JSON object, '
        "got an array"),
    "arguments of the wrong type": (edit(bad_args({"order_id": "A17", "amount": "5"})),
        'message 3: call 1: issue_refund: arguments field "amount" do not match the '
        "tool's parameters: '5' is not of type 'number'"),
    "arguments missing a required field": (edit(bad_args({"order_id": "A17"})),
        "message 3: call 1: issue_refund: arguments do not match the tool's parameters: "
        "'amount' is a required property"),
    "tool result for no call": (edit(lambda r: msgs(r)[3].update(tool_call_id="zz")),
        'message 4: "tool_call_id" "zz" answers no earlier call; use the id of a call above'),
    "tool result answering twice": (edit(answer_c1_twice),
        'message 5: call "c1" was already answered by message 4'),
    "tool result without an id": (edit(lambda r: msgs(r)[3].pop("tool_call_id")),
        'message 4: "tool_call_id" is required: the id of the call this message answers'),
    "call never answered": (edit(unanswered), CALL_OF_MSG3),
    "tool_calls on a user message": (
        edit(lambda r: msgs(r)[1].update(tool_calls=msgs(r)[2]["tool_calls"])),
        'message 2: "tool_calls" is only allowed on assistant messages, not on user ones',
    ),
    "duplicate call id": (edit(reuse_id),
        'message 3: call 2: id "c1" is already used by message 3'),
    "empty tool_calls": (edit(lambda r: msgs(r)[2].update(tool_calls=[])),
        'message 3: "tool_calls" must be a non-empty list of calls {"id": ..., "type": '
        '"function", "function": {"name": ..., "arguments": "{...}"}}'),
    "parallel calls when parallel_tool_calls is false": (
        edit(refund_twice_not_parallel),
        'message 3: makes 2 calls but the row sets "parallel_tool_calls": false; '
        "make one call per assistant message or drop parallel_tool_calls"),
    "parallel_tool_calls not a boolean": (edit(lambda r: r.update(parallel_tool_calls="no")),
        '"parallel_tool_calls" must be true or false, got a string'),
    "weight 0.5": (edit(lambda r: msgs(r)[4].update(weight=0.5)),
        'message 5: "weight" must be 0 or 1, got 0.5'),
    "weight true": (edit(lambda r: msgs(r)[4].update(weight=True)),
        'message 5: "weight" must be 0 or 1, got true'),
    "weight as a string": (edit(lambda r: msgs(r)[4].update(weight="1")),
        "message 5: \"weight\" must be 0 or 1, got '1'"),
    "weight on a user message": (edit(lambda r: msgs(r)[1].update(weight=1)),
        'message 2: "weight" is only allowed on assistant messages, not on user messages'),
    "nothing trained": (edit(lambda r: [m.update(weight=0) for m in msgs(r)[2::2]]),
        'every assistant message has "weight": 0, so nothing would be trained; '
        "set weight 1 (or leave weight out) on the messages to learn"),
    "legacy functions": (edit(lambda r: r.update(functions=[{"name": "x"}])),
        '"functions" is the legacy format; list them in "tools" as '
        '{"type": "function", "function": {"name": ..., "parameters": ...}}'),
    "legacy function_call": (edit(legacy_call),
        'message 3: "function_call" is the legacy format; write "tool_calls": [{"id": ..., '
        '"type": "function", "function": {"name": ..., "arguments": "{...}"}}] instead'),
    "legacy role function": (edit(lambda r: msgs(r)[3].update(role="function")),
        'message 4: role "function" is the legacy format; use role "tool" with the '
        '"tool_call_id" of the call it answers'),
    "duplicate tool names": (edit(lambda r: r["tools"].append(copy.deepcopy(TOOLS[2]))),
        "tool 4 (escalate): another tool has the same name; tool names must be unique"),
    "tool type not function": (edit(lambda r: r["tools"][1].update(type="retrieval")),
        "tool 2: \"type\" must be \"function\", got 'retrieval'"),
    "bad tool name": (edit(lambda r: r["tools"][0]["function"].update(name="look up")),
        "tool 1: function name 'look up' is not valid; use 1-64 letters, digits, '_' or '-'"),
    "parameters not a JSON Schema": (edit(set_params(2, {"type": "strnig"})),
        'tool 3 (escalate): parameters is not a valid JSON Schema: at "type" '
        "'strnig' is not valid under any of the given schemas"),
    "parameters not an object": (edit(set_params(2, "string")),
        "tool 3 (escalate): parameters must be a JSON Schema object, got a string"),
    "remote $ref": (edit(set_params(0, {"$ref": "https://example.com/order.json"})),
        "tool 1 (lookup_order): parameters \"$ref\" 'https://example.com/order.json' is not "
        'a local reference; only "#..." references into the same schema are resolved '
        "(put shared parts in $defs)"),
    "pattern RE2 cannot run": (edit(set_params(0, {"properties": {"order_id": {
        "pattern": "^(?!X)[A-Z]+$"}}})),
        'tool 1 (lookup_order): parameters is not a valid JSON Schema: at '
        "\"properties.order_id.pattern\" '^(?!X)[A-Z]+$' is not a 'regex'"),
    "patternProperties": (edit(set_params(0, {"patternProperties": {"^a": {}}})),
        'tool 1 (lookup_order): parameters uses "patternProperties", which tool schemas do '
        "not support; use properties, or additionalProperties with one schema"),
    "nested $schema": (edit(set_params(0, {"properties": {"order_id": {
        "$schema": "https://json-schema.org/draft/2020-12/schema"}}})),
        'tool 1 (lookup_order): parameters "$schema" may appear only at the top of '
        "parameters; remove it here"),
}  # fmt: skip


def validate(line: bytes, **kwargs: int) -> DatasetValidator:
    """Line 1 is the good agent row; `line` is line 2."""
    v = DatasetValidator(**kwargs)
    v.feed(orjson.dumps(agent_row()) + b"\n" + line + b"\n")
    v.finish()
    return v


@pytest.mark.parametrize(("row", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_rows(row: Row, reason: str) -> None:
    v = validate(orjson.dumps(row))
    assert v.report.errors == [LineError(2, reason)]
    assert not v.ok and v.report.rows == 1 and v.report.tool_rows == 1


def test_too_many_tools() -> None:
    v = validate(orjson.dumps(agent_row()), max_tools=2)
    assert v.report.errors[0] == LineError(
        1,
        '"tools" lists 3 tools, over the limit of 2 a row (LORAPLEX_DATASET_MAX_TOOLS); '
        "keep the tools this conversation needs",
    )
    assert v.report.invalid == 2


def test_tool_rows_counts_kept_rows_with_tools_or_calls() -> None:
    plain = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    lines = [agent_row(), agent_row(), plain, GOOD["tools without a call"], edit(no_tools_no_call)]
    v = DatasetValidator()
    v.feed(b"\n".join(orjson.dumps(r) for r in lines) + b"\n")
    v.finish()
    assert v.ok, v.report.errors
    assert (v.report.rows, v.report.duplicates, v.report.tool_rows) == (4, 1, 2)
    assert v.report.to_dict()["tool_rows"] == 2


def no_tools_no_call(row: Row) -> None:
    del row["tools"]
    del msgs(row)[2:4]


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # Python's re backtracks 2^n times on this pattern; RE2 does not.
    slow = {"properties": {"order_id": {"type": "string", "pattern": "^(a+)+$"}}}
    row = edit(set_params(0, slow))
    msgs(row)[2]["tool_calls"] = [call("c1", "lookup_order", {"order_id": "a" * 40 + "!"})]
    start = time.monotonic()
    v = validate(orjson.dumps(row))
    assert time.monotonic() - start < 5
    assert "does not match '^(a+)+$'" in v.report.errors[0].reason


def test_exponential_schema_is_cut_off_by_the_step_budget() -> None:
    # each level tries its two branches: 2^40 evaluations without a budget
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    row = edit(set_params(1, {"$defs": defs, "$ref": "#/$defs/d0"}))
    msgs(row)[2]["tool_calls"] = [call("c1", "issue_refund", {"amount": 1})]
    start = time.monotonic()
    v = validate(orjson.dumps(row), schema_steps=20_000)
    assert time.monotonic() - start < 10
    assert v.report.errors == [
        LineError(
            2,
            "message 3: call 1: issue_refund: checking the arguments takes more than the "
            "20,000 steps a row may use (LORAPLEX_DATASET_SCHEMA_STEPS); simplify the tool's "
            "parameters",
        )
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"$ref": "#"},  # refers to itself endlessly
        # a pattern RE2 cannot run, where the metaschema check does not look
        {"x-part": {"properties": {"order_id": {"pattern": "(?!A)"}}}, "$ref": "#/x-part"},
    ],
)
def test_schemas_that_fail_while_checking_are_refused_not_a_crash(params: object) -> None:
    row = edit(set_params(0, params))
    reason = validate(orjson.dumps(row)).report.errors[0].reason
    assert reason.startswith("message 3: call 1: lookup_order: arguments cannot be checked")


# --- through the API, on real PostgreSQL and S3 ---------------------------------------------


def test_upload_stores_tool_rows(world: World) -> None:
    acme = world.tenant("acme")
    body = b"".join(orjson.dumps(r) + b"\n" for r in GOOD.values())
    resp = upload(world, acme, body, name="agent")
    assert resp.status_code == 201, resp.text
    ds = resp.json()
    assert (ds["rows"], ds["tool_rows"], ds["format"]) == (len(GOOD), len(GOOD), "chat")
    shown = world.http.get(f"/v1/tenants/acme/datasets/{ds['id']}", headers=acme.headers)
    assert shown.json()["tool_rows"] == len(GOOD)
    with world.stack.session() as session:
        stored = session.execute(select(Dataset)).scalar_one()
        assert stored.tool_rows == len(GOOD)


@pytest.mark.parametrize(("row", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_rows_are_422_with_line_and_reason_and_nothing_stored(
    world: World, row: Row, reason: str
) -> None:
    acme = world.tenant("acme")
    body = orjson.dumps(agent_row()) + b"\n" + orjson.dumps(row) + b"\n"
    resp = upload(world, acme, body, name="agent")
    assert resp.status_code == 422, resp.text
    report = resp.json()["report"]
    assert report["errors"] == [{"line": 2, "reason": reason}]
    assert resp.json()["detail"].endswith(f"First: line 2: {reason}")
    assert_nothing_stored(world)


def test_limits_come_from_settings(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = world.stack.app.state.settings
    monkeypatch.setattr(settings, "dataset_max_tools", 2)
    acme = world.tenant("acme")
    resp = upload(world, acme, orjson.dumps(agent_row()) + b"\n", name="agent")
    assert resp.status_code == 422
    assert "LORAPLEX_DATASET_MAX_TOOLS" in resp.json()["report"]["errors"][0]["reason"]
    monkeypatch.setattr(settings, "dataset_max_tools", 128)
    monkeypatch.setattr(settings, "dataset_schema_steps", 1000)
    big = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200)}}
    resp = upload(world, acme, orjson.dumps(edit(set_params(2, big))) + b"\n", name="agent")
    assert resp.status_code == 422
    reason = resp.json()["report"]["errors"][0]["reason"]
    assert reason.startswith("tool 3 (escalate): parameters is too complex to check within the")
    assert_nothing_stored(world)


def test_a_schema_repeated_across_rows_is_compiled_once() -> None:
    schemas = ToolSchemas(max_steps=1000)
    with schemas.row():
        first = schemas.compile(ORDER_ID)
    with schemas.row():  # same schema, keys in another order: the same compiled validator
        again = schemas.compile(dict(reversed(list(ORDER_ID.items()))))
    assert first is again and not isinstance(first, str)
