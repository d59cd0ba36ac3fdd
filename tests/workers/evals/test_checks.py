from __future__ import annotations

import json
from typing import Any

import pytest

from workers.evals.checks import CheckCache, passes

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[A-Z]"}, "age": {"type": "integer"}},
    "required": ["name"],
    "additionalProperties": False,
}


def check(
    c: dict[str, Any], text: str = "", loss: float | None = None, steps: int = 10_000
) -> bool:
    return passes(c, text, loss, CheckCache(schema_steps=steps))


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def test_exact_strips_both_sides() -> None:
    assert check({"type": "exact", "value": " Paris\n"}, "\nParis  ")
    assert not check({"type": "exact", "value": "Paris"}, "Paris.")
    assert not check({"type": "exact", "value": "Paris"}, "paris")


@pytest.mark.parametrize(
    ("value", "text", "ignore_case", "found"),
    [
        ("refund", "We issued a refund today.", False, True),
        ("Refund", "We issued a refund today.", False, False),
        ("Refund", "We issued a REFUND today.", True, True),
        ("straße", "STRASSE", True, True),  # case folding, not just lower()
        ("credit", "We issued a refund today.", True, False),
    ],
)
def test_contains_and_not_contains(value: str, text: str, ignore_case: bool, found: bool) -> None:
    assert check({"type": "contains", "value": value, "ignore_case": ignore_case}, text) is found
    negated = {"type": "not_contains", "value": value, "ignore_case": ignore_case}
    assert check(negated, text) is (not found)


def test_contains_defaults_to_case_sensitive() -> None:
    assert not check({"type": "contains", "value": "ABC"}, "abc")
    assert check({"type": "not_contains", "value": "ABC"}, "abc")


def test_regex_searches_anywhere_unless_anchored() -> None:
    assert check({"type": "regex", "pattern": r"order #\d{4}"}, "Your order #1234 shipped.")
    assert not check({"type": "regex", "pattern": r"^order #\d{4}$"}, "Your order #1234 shipped.")
    assert check({"type": "regex", "pattern": r"^order #\d{4}$"}, "order #1234")
    assert not check({"type": "regex", "pattern": r"order #\d{5}"}, "Your order #1234 shipped.")


def test_regex_rejects_what_re2_cannot_run() -> None:
    with pytest.raises(ValueError, match="RE2 cannot compile"):
        check({"type": "regex", "pattern": r"(a)\1"}, "aa")


def test_json_schema_valid_document() -> None:
    assert check({"type": "json_schema", "schema": PERSON}, ' {"name": "Ada", "age": 36}\n')


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "ada"}',  # pattern (RE2) fails
        '{"age": 36}',  # required
        '{"name": "Ada", "extra": 1}',  # additionalProperties
        '{"name": "Ada", "age": "36"}',  # type
        "[1, 2]",
    ],
)
def test_json_schema_validation_failures(text: str) -> None:
    assert not check({"type": "json_schema", "schema": PERSON}, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        'Sure! {"name": "Ada"}',
        '{"name": "Ada"',
        '{"name": "Ada"} {}',
        "NaN",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_json_schema_needs_one_json_value(text: str) -> None:
    assert not check({"type": "json_schema", "schema": {}}, text)


def test_json_schema_out_of_steps_fails() -> None:
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    text = json.dumps(list(range(200)))
    assert check({"type": "json_schema", "schema": schema}, text, steps=10_000)
    assert not check({"type": "json_schema", "schema": schema}, text, steps=100)


def test_json_schema_refused_schema_never_passes() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {"type": "string"}}}
    assert not check({"type": "json_schema", "schema": schema}, "{}")


def test_tool_call_equal_calls_any_order() -> None:
    c = {
        "type": "tool_call",
        "calls": [
            {"name": "refund", "arguments": {"order": 7, "reason": "late"}},
            {"name": "notify", "arguments": {}},
        ],
    }
    text = call("notify") + "\n" + call("refund", reason="late", order=7.0)
    assert check(c, text)
    assert not check(c, call("refund", reason="late", order=7))  # one call missing
    assert not check(c, text + call("notify"))  # one call too many


def test_tool_call_wrong_arguments_or_name() -> None:
    c = {"type": "tool_call", "calls": [{"name": "refund", "arguments": {"order": 7}}]}
    assert check(c, call("refund", order=7))
    assert not check(c, call("refund", order=8))
    assert not check(c, call("refund", order="7"))
    assert not check(c, call("cancel", order=7))
    assert not check(c, "I will refund order 7.")
    assert not check(c, '<tool_call>{"name": "refund", "arguments": </tool_call>')  # unparsable


def test_tool_call_empty_means_text_only() -> None:
    c = {"type": "tool_call", "calls": []}
    assert check(c, "Your order is on its way.")
    assert not check(c, call("refund", order=7))


def test_loss_threshold() -> None:
    c = {"type": "loss", "reference": "Paris", "max_loss": 1.5}
    assert check(c, loss=1.2)
    assert check(c, loss=1.5)
    assert not check(c, loss=1.6)
    assert not check(c, loss=None)
    assert not check(c, loss=float("nan"))


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "fuzzy", "value": "x"},
        {"value": "x"},
        {"type": "exact"},
        {"type": "contains", "value": "x", "ignore_case": "yes"},
        {"type": "regex", "pattern": 3},
        {"type": "json_schema", "schema": "{}"},
        {"type": "tool_call", "calls": [{"name": "f", "arguments": "{}"}]},
        {"type": "tool_call", "calls": [{"arguments": {}}]},
        {"type": "loss", "reference": "x", "max_loss": True},
    ],
)
def test_malformed_checks_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        check(bad, "x", 1.0)
