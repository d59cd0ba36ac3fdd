"""The `checks` of an eval-suite row, validated at upload so that scoring never meets a check it
cannot run: every field typed, unknown fields refused, RE2 patterns and JSON Schemas compiled.

The worker (workers/evals/checks.py) reads the same fields; the kinds are named exactly as the
metrics they become. Regexes run on RE2 (linear time) with the memory cap tool-schema patterns
have; JSON Schemas go through the dataset upload's `ToolSchemas` (2020-12, RE2 patterns, local
refs only, a step budget per row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import re2

from registry.datasets.tool_schemas import ToolSchemas, json_type, show

CHECK_KINDS = ("exact", "contains", "not_contains", "regex", "json_schema", "tool_call", "loss")
MAX_CHECKS = 16
_KIND_LIST = ", ".join(CHECK_KINDS)
_REGEX_MAX_MEM = 1 << 20  # a huge automaton fails fast instead of compiling for seconds
_EXAMPLE = '{"type": "contains", "value": "refund"}'

# field -> (expected type, what to call it); a name ending in "?" is optional
_Types = type | tuple[type, ...]
_FIELDS: dict[str, dict[str, tuple[_Types, str]]] = {
    "exact": {"value": (str, "a string")},
    "contains": {"value": (str, "a string"), "ignore_case?": (bool, "true or false")},
    "not_contains": {"value": (str, "a string"), "ignore_case?": (bool, "true or false")},
    "regex": {"pattern": (str, "a string")},
    "json_schema": {"schema": (dict, "a JSON Schema object")},
    "tool_call": {"calls": (list, 'a list of calls {"name": ..., "arguments": {...}}')},
    "loss": {"reference": (str, "a string"), "max_loss": ((int, float), "a number")},
}


class SuiteChecks:
    """Validates the checks of one row; `schemas` is shared with the row's tools (one cache)."""

    def __init__(self, schemas: ToolSchemas) -> None:
        self.schemas = schemas
        self._run: dict[str, Callable[[dict[str, Any], _Row], str | None]] = {
            "exact": _text_value,
            "contains": _text_value,
            "not_contains": _text_value,
            "regex": _regex,
            "json_schema": self._json_schema,
            "tool_call": self._tool_call,
            "loss": _loss,
        }

    def check(
        self, checks: object, *, chat: bool, tools: dict[str, Any] | None
    ) -> tuple[str | None, frozenset[str]]:
        """(why the checks are invalid, or None; the kinds they use)."""
        if not isinstance(checks, list):
            if checks is None:
                return (
                    f'missing "checks"; add 1-{MAX_CHECKS} checks the answer must pass, '
                    f"e.g. {_EXAMPLE}"
                ), frozenset()
            return f'"checks" must be a list of checks, got {json_type(checks)}', frozenset()
        if not checks:
            return f'"checks" is empty; add 1-{MAX_CHECKS} checks, e.g. {_EXAMPLE}', frozenset()
        if len(checks) > MAX_CHECKS:
            return (
                f'"checks" has {len(checks)} checks, over the limit of {MAX_CHECKS} a row; '
                "split the row in two"
            ), frozenset()
        row = _Row(chat=chat, tools=tools)
        kinds: list[str] = []
        for i, check in enumerate(checks, 1):
            reason = self._one(check, row)
            if reason is not None:
                return f"check {i}{reason}", frozenset()
            kinds.append(check["type"])
        if kinds.count("loss") > 1:
            return "has several loss checks; a row has at most one", frozenset()
        return None, frozenset(kinds)

    def _one(self, check: object, row: _Row) -> str | None:
        if not isinstance(check, dict):
            return f": expected an object like {_EXAMPLE}, got {json_type(check)}"
        kind = check.get("type")
        if kind not in _FIELDS:
            if "type" not in check:
                return f': missing "type"; use one of {_KIND_LIST}'
            return f": type {show(kind)} is not a check kind; use one of {_KIND_LIST}"
        reason = _fields(check, _FIELDS[kind], f"{kind} checks") or self._run[kind](check, row)
        return f" ({kind}): {reason}" if reason is not None else None

    def _json_schema(self, check: dict[str, Any], row: _Row) -> str | None:
        with self.schemas.row():
            compiled = self.schemas.compile(check["schema"])
        return f'"schema" {compiled}' if isinstance(compiled, str) else None

    def _tool_call(self, check: dict[str, Any], row: _Row) -> str | None:
        if not row.chat:
            return 'tool_call checks need a chat row ("messages"); a raw-text prompt has no tools'
        for n, call in enumerate(check["calls"], 1):
            reason = self._call(call, row.tools)
            if reason is not None:
                return f"call {n}: {reason}"
        return None

    def _call(self, call: object, tools: dict[str, Any] | None) -> str | None:
        if not isinstance(call, dict):
            return (
                f'expected an object {{"name": ..., "arguments": {{...}}}}, got {json_type(call)}'
            )
        reason = _fields(call, _CALL_FIELDS, "calls")
        if reason is not None:
            return reason
        name, arguments = call["name"], call["arguments"]
        if not name:
            return '"name" is empty; name the tool the answer should call'
        if tools is None:
            return None  # the row offers no tools: the name is the suite author's to choose
        if name not in tools:
            known = ", ".join(list(tools)[:10]) or "none"
            return f'calls {show(name)}, which is not in the row\'s "tools" (tools: {known})'
        compiled = tools[name]
        if compiled is None:
            return None
        with self.schemas.row():
            reason = self.schemas.check_arguments(compiled, arguments)
        return f"{name}: {reason}" if reason is not None else None


class _Row:
    """What a row's checks may depend on: its form and its tools."""

    __slots__ = ("chat", "tools")

    def __init__(self, *, chat: bool, tools: dict[str, Any] | None) -> None:
        self.chat, self.tools = chat, tools


_CALL_FIELDS: dict[str, tuple[_Types, str]] = {
    "name": (str, "a string"),
    "arguments": (dict, "a JSON object (the arguments themselves, not a string)"),
}


def _fields(obj: dict[str, Any], spec: dict[str, tuple[_Types, str]], what: str) -> str | None:
    """Every required field present with its type, no field the spec does not name."""
    names = [k.rstrip("?") for k in spec]
    for key in obj:
        if key not in names and not (key == "type" and what != "calls"):
            return f"unknown field {show(key)}; {what} take {', '.join(names)}"
    for key, (kind, label) in spec.items():
        name = key.rstrip("?")
        if name not in obj:
            if key.endswith("?"):
                continue
            return f'missing "{name}" ({label})'
        value = obj[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            return f'"{name}" must be {label}, got {json_type(value)}'
    return None


def _text_value(check: dict[str, Any], row: _Row) -> str | None:
    value = check["value"]
    if not value or value.isspace():
        return '"value" is empty or only whitespace; give the text to look for'
    return None


def _regex(check: dict[str, Any], row: _Row) -> str | None:
    pattern = check["pattern"]
    if not pattern:
        return '"pattern" is empty; it would match every answer'
    options = re2.Options()
    options.max_mem = _REGEX_MAX_MEM
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as e:
        why = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else e
        return (
            f'"pattern" {show(pattern)} is not a regex RE2 can run ({why}); RE2 has no '
            "look-around or backreferences"
        )
    return None


def _loss(check: dict[str, Any], row: _Row) -> str | None:
    if not check["reference"] or check["reference"].isspace():
        return '"reference" is empty or only whitespace; give the answer whose loss is measured'
    max_loss = check["max_loss"]
    if not math.isfinite(max_loss) or max_loss <= 0:
        return f'"max_loss" must be a number above 0 (nats per token), got {show(max_loss)}'
    return None
