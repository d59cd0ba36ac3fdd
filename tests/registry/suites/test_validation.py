"""Eval-suite rows: every check kind passes when well formed and is refused, with its line and a
reason naming the field, when not; the chat and raw-text forms; the report's check counts.

Each bad case is line 2 of a file whose line 1 is a good row of the same form."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from registry.suites.validation import SuiteValidator

Row = dict[str, Any]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^[A-Z][0-9]+$"}},
                "required": ["order_id"],
            },
        },
    },
    {"type": "function", "function": {"name": "escalate"}},
]


def chat_row(*checks: Row, **extra: Any) -> Row:
    row: Row = {
        "id": "refund-01",
        "messages": [
            {"role": "system", "content": "You are the order desk."},
            {"role": "user", "content": "Where is order A17?"},
        ],
        "checks": list(checks) or [{"type": "contains", "value": "A17"}],
    }
    return row | extra


def prompt_row(*checks: Row, **extra: Any) -> Row:
    row: Row = {"prompt": "The capital of France is", "checks": list(checks)}
    return row | extra


def run(*rows: object) -> SuiteValidator:
    v = SuiteValidator()
    body = b"".join((orjson.dumps(r) if not isinstance(r, bytes) else r) + b"\n" for r in rows)
    v.feed(body)
    v.finish()
    return v


def errors(*rows: object) -> list[tuple[int, str]]:
    return [(e.line, e.reason) for e in run(*rows).report.errors]


def tool_agent_row(*checks: Row) -> Row:
    """A conversation that called a tool and got its result: the model answers next."""
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "A17"}'},
    }
    return {
        "tools": copy.deepcopy(TOOLS),
        "messages": [
            {"role": "user", "content": "Where is order A17?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        ],
        "checks": list(checks),
    }


GOOD_CHECKS: list[Row] = [
    {"type": "exact", "value": "Order A17 has shipped."},
    {"type": "contains", "value": "shipped"},
    {"type": "contains", "value": "SHIPPED", "ignore_case": True},
    {"type": "not_contains", "value": "refund", "ignore_case": False},
    {"type": "regex", "pattern": r"^Order [A-Z]\d+\b"},
    {"type": "json_schema", "schema": {"type": "object", "required": ["status"]}},
    {"type": "tool_call", "calls": [{"name": "lookup_order", "arguments": {"order_id": "B2"}}]},
    {"type": "tool_call", "calls": []},
    {"type": "loss", "reference": "Order A17 has shipped.", "max_loss": 2.5},
    {"type": "loss", "reference": "Shipped.", "max_loss": 1},
]


@pytest.mark.parametrize("check", GOOD_CHECKS, ids=lambda c: c["type"])
def test_every_check_kind_accepts_a_good_check(check: Row) -> None:
    v = run(tool_agent_row(check))
    assert v.ok, v.report.errors
    assert v.report.check_counts == {check["type"]: 1}


def test_a_good_chat_file_and_its_report() -> None:
    rows = [
        chat_row(
            {"type": "contains", "value": "A17"}, {"type": "loss", "reference": "x", "max_loss": 3}
        ),
        chat_row({"type": "contains", "value": "shipped"}, {"type": "contains", "value": "A"}),
        tool_agent_row({"type": "tool_call", "calls": []}),
    ]
    v = run(*rows, rows[0])  # the repeat is dropped, and not counted
    assert v.ok, v.report.errors
    rep = v.report.to_dict()
    assert rep["format"] == "chat" and rep["rows"] == 3 and rep["duplicates"] == 1
    assert rep["tool_rows"] == 1
    assert rep["check_counts"] == {"contains": 2, "tool_call": 1, "loss": 1}
    assert list(rep["check_counts"]) == ["contains", "tool_call", "loss"]  # kind order


def test_a_good_prompt_file() -> None:
    v = run(
        prompt_row({"type": "loss", "reference": " Paris.", "max_loss": 4.0}, id="geo-1"),
        prompt_row({"type": "regex", "pattern": "(?i)paris"}),
    )
    assert v.ok, v.report.errors
    assert v.report.format == "prompt"
    assert v.report.check_counts == {"regex": 1, "loss": 1}


@pytest.mark.parametrize(
    ("check", "needle"),
    [
        ({"value": "x"}, 'check 1: missing "type"; use one of exact, contains'),
        ({"type": "similar", "value": "x"}, "check 1: type 'similar' is not a check kind"),
        ({"type": "exact"}, 'check 1 (exact): missing "value" (a string)'),
        ({"type": "exact", "value": 3}, 'check 1 (exact): "value" must be a string, got a number'),
        ({"type": "exact", "value": "  "}, 'check 1 (exact): "value" is empty or only whitespace'),
        (
            {"type": "exact", "value": "x", "strip": True},
            "check 1 (exact): unknown field 'strip'; exact checks take value",
        ),
        ({"type": "contains", "value": ""}, 'check 1 (contains): "value" is empty'),
        (
            {"type": "contains", "value": "x", "ignore_case": "yes"},
            'check 1 (contains): "ignore_case" must be true or false, got a string',
        ),
        (
            {"type": "not_contains", "value": "x", "case": True},
            "check 1 (not_contains): unknown field 'case'; not_contains checks take value, "
            "ignore_case",
        ),
        ({"type": "not_contains", "value": None}, '"value" must be a string, got null'),
        ({"type": "regex", "pattern": ""}, 'check 1 (regex): "pattern" is empty'),
        (
            {"type": "regex", "pattern": "(?=x)y"},
            "check 1 (regex): \"pattern\" '(?=x)y' is not a regex RE2 can run (invalid perl "
            "operator: (?=)",
        ),
        ({"type": "regex", "pattern": r"(a)\1"}, "invalid escape sequence"),
        ({"type": "regex", "pattern": "(ab"}, "missing )"),
        (
            {"type": "json_schema", "schema": "object"},
            'check 1 (json_schema): "schema" must be a JSON Schema object, got a string',
        ),
        (
            {"type": "json_schema", "schema": {"type": "objekt"}},
            'check 1 (json_schema): "schema" is not a valid JSON Schema: at "type"',
        ),
        (
            {"type": "json_schema", "schema": {"patternProperties": {"a": {}}}},
            'check 1 (json_schema): "schema" uses "patternProperties"',
        ),
        (
            {"type": "json_schema", "schema": {"$ref": "https://example.invalid/s.json"}},
            "is not a local reference",
        ),
        (
            {"type": "tool_call", "calls": {"name": "escalate"}},
            'check 1 (tool_call): "calls" must be a list of calls',
        ),
        (
            {"type": "tool_call", "calls": [{"name": "refund", "arguments": {}}]},
            "check 1 (tool_call): call 1: calls 'refund', which is not in the row's \"tools\" "
            "(tools: lookup_order, escalate)",
        ),
        (
            {"type": "tool_call", "calls": [{"name": "escalate", "arguments": "{}"}]},
            'check 1 (tool_call): call 1: "arguments" must be a JSON object (the arguments '
            "themselves, not a string), got a string",
        ),
        (
            {"type": "tool_call", "calls": [{"name": "escalate"}]},
            'call 1: missing "arguments"',
        ),
        (
            {"type": "tool_call", "calls": [{"name": "escalate", "arguments": {}, "id": "c"}]},
            "call 1: unknown field 'id'; calls take name, arguments",
        ),
        (
            {"type": "tool_call", "calls": ["escalate"]},
            'call 1: expected an object {"name": ..., "arguments": {...}}, got a string',
        ),
        (
            {
                "type": "tool_call",
                "calls": [{"name": "lookup_order", "arguments": {"order_id": 7}}],
            },
            'call 1: lookup_order: arguments field "order_id" do not match the tool\'s parameters',
        ),
        ({"type": "loss", "reference": "x"}, 'check 1 (loss): missing "max_loss" (a number)'),
        (
            {"type": "loss", "reference": "x", "max_loss": 0},
            'check 1 (loss): "max_loss" must be a number above 0 (nats per token), got 0',
        ),
        ({"type": "loss", "reference": "x", "max_loss": -1.5}, "above 0"),
        ({"type": "loss", "reference": "x", "max_loss": True}, '"max_loss" must be a number'),
        ({"type": "loss", "reference": "", "max_loss": 1}, '"reference" is empty'),
        ({"type": "loss", "reference": ["x"], "max_loss": 1}, '"reference" must be a string'),
        ("contains", 'check 1: expected an object like {"type": "contains"'),
    ],
)
def test_every_check_kind_refuses_a_bad_check(check: object, needle: str) -> None:
    got = errors(tool_agent_row(GOOD_CHECKS[0]), tool_agent_row(check))  # type: ignore[arg-type]
    assert len(got) == 1 and got[0][0] == 2, got
    assert needle in got[0][1], got


def test_a_tool_call_needs_tools_only_to_name_them() -> None:
    no_tools = chat_row({"type": "tool_call", "calls": [{"name": "anything", "arguments": {}}]})
    assert run(no_tools).ok
    bad = prompt_row({"type": "tool_call", "calls": []})
    assert errors(prompt_row({"type": "exact", "value": "x"}), bad) == [
        (2, 'check 1 (tool_call): tool_call checks need a chat row ("messages"); a raw-text '
         "prompt has no tools"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("checks", "needle"),
    [
        (None, 'missing "checks"; add 1-16 checks the answer must pass'),
        ([], '"checks" is empty'),
        ({"type": "exact", "value": "x"}, '"checks" must be a list of checks, got an object'),
        ([{"type": "contains", "value": "x"}] * 17, '"checks" has 17 checks, over the limit of 16'),
        (
            [{"type": "loss", "reference": "a", "max_loss": 1}] * 2,
            "has several loss checks; a row has at most one",
        ),
    ],
)
def test_the_checks_list(checks: object, needle: str) -> None:
    bad = chat_row()
    if checks is None:
        del bad["checks"]
    else:
        bad["checks"] = checks
    got = errors(chat_row(), bad)
    assert len(got) == 1 and got[0][0] == 2 and needle in got[0][1], got


def test_sixteen_checks_is_the_limit() -> None:
    assert run(chat_row(*[{"type": "contains", "value": str(i)} for i in range(16)])).ok


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (chat_row(id=""), '"id" is empty or only whitespace'),
        (chat_row(id="x" * 101), '"id" is 101 characters, over the limit of 100'),
        (chat_row(id=17), '"id" must be a string, got a number'),
        (chat_row(check=[]), "unknown key 'check'; a chat suite row has id, messages, tools"),
        (
            prompt_row({"type": "exact", "value": "Paris"}, completion=" Paris"),
            "suite rows have no completion",
        ),
        (chat_row(prompt="x"), 'has "messages" (chat) or "prompt" (raw text), not both'),
        ({"checks": []}, 'expected "messages" (a chat prompt) or "prompt" (raw text)'),
        (chat_row(functions=[]), '"functions" is the legacy format'),
        (prompt_row({"type": "exact", "value": "P"}, prompt=" "), '"prompt" is empty'),
        (prompt_row({"type": "exact", "value": "P"}, prompt=["a"]), '"prompt" must be a string'),
    ],
)
def test_row_keys_and_ids(row: Row, needle: str) -> None:
    first = prompt_row({"type": "exact", "value": "P"}) if "prompt" in row else chat_row()
    if "messages" in row and "prompt" in row:
        first = chat_row()
    got = errors(first, row)
    assert len(got) == 1 and got[0][0] == 2 and needle in got[0][1], got


def with_messages(*messages: Row) -> Row:
    return chat_row(messages=list(messages))


USER = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (
            with_messages(USER, {"role": "assistant", "content": "Hello"}),
            "the last message (message 2) is from assistant; end with the user (or tool) message "
            "the model answers, and put the expected answer in the checks",
        ),
        (with_messages({"role": "system", "content": "Be brief."}), "is from system"),
        (with_messages(), '"messages" is empty; add at least the user message to answer'),
        (with_messages({"role": "user", "content": ""}), "message 1: content is empty"),
        (with_messages({"role": "robot", "content": "x"}), "message 1: role 'robot'"),
        (
            with_messages(
                USER,
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "escalate", "arguments": "{}"}}]},
                {"role": "user", "content": "Well?"},
            ) | {"tools": TOOLS},
            'call "c1" (escalate) of message 2 has no tool result before the answer',
        ),
        (
            with_messages(
                USER,
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "escalate", "arguments": "{}"}}]},
            ),
            'calls \'escalate\' but the row has no "tools"',
        ),
        (chat_row(tools=[{"type": "function", "function": {"name": "bad name"}}]), "tool 1"),
    ],
)  # fmt: skip
def test_chat_messages_follow_the_dataset_rules_but_end_before_the_answer(
    row: Row, needle: str
) -> None:
    got = errors(chat_row(), row)
    assert len(got) == 1 and got[0][0] == 2 and needle in got[0][1], got


def test_earlier_assistant_turns_and_a_final_tool_result_are_fine() -> None:
    multi_turn = with_messages(
        USER, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}
    )
    assert run(multi_turn, tool_agent_row({"type": "contains", "value": "shipped"})).ok


def test_one_form_per_file_and_bad_lines_are_counted() -> None:
    got = errors(chat_row(), prompt_row({"type": "exact", "value": "P"}), b"[1]", b"{oops")
    assert [line for line, _ in got] == [2, 3, 4]
    assert "raw-text prompt format, but line 1 set the file's format to chat" in got[0][1]
    assert "expected a JSON object" in got[1][1] and "invalid JSON" in got[2][1]


def test_dataset_rows_are_unchanged_by_the_suite_option() -> None:
    """The chat rules' suite mode is per validator: a dataset still needs the final answer."""
    from registry.datasets.validation import DatasetValidator

    v = DatasetValidator()
    v.feed(orjson.dumps({"messages": [USER]}) + b"\n")
    v.finish()
    assert not v.ok and "no assistant message" in v.report.errors[0].reason
