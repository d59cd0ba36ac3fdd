"""The check kinds of an eval suite row, as pure functions of (check, generated text, row loss).

Checks were validated when the suite was uploaded; they are read defensively here all the same
(a suite stored by an older registry, a hand-edited object): a check this worker does not know
raises ValueError rather than counting as passed or failed.

Regexes run on RE2 (linear time) and JSON Schemas through the upload's own `ToolSchemas`
(step budget per row, RE2 patterns, local refs only), so a suite can no more stall a worker
than a dataset can stall the registry. Compiled forms are cached in a `CheckCache` that lives
for one scoring run, not in process-wide state.
"""

from __future__ import annotations

import json
import math
from typing import Any

import re2

from registry.datasets.tool_schemas import ToolSchemas
from workers.training import toolcalls
from workers.training.toolcalls import ToolCall

CHECK_KINDS = ("exact", "contains", "not_contains", "regex", "json_schema", "tool_call", "loss")
GENERATION_KINDS = frozenset(CHECK_KINDS) - {"loss"}  # the kinds that read generated text

_REGEX_MAX_MEM = 1 << 20  # as for tool-schema patterns: a huge automaton fails fast


class CheckCache:
    """Compiled regexes and JSON Schemas for one scoring run (a suite repeats a few of them)."""

    def __init__(self, *, schema_steps: int) -> None:
        self.schemas = ToolSchemas(max_steps=schema_steps)
        self._regexes: dict[str, Any] = {}

    def regex(self, pattern: str) -> Any:
        compiled = self._regexes.get(pattern)
        if compiled is None:
            options = re2.Options()
            options.max_mem = _REGEX_MAX_MEM
            options.log_errors = False
            try:
                compiled = re2.compile(pattern, options)
            except re2.error as e:
                raise ValueError(f"regex check: RE2 cannot compile {pattern!r} ({e!r})") from e
            self._regexes[pattern] = compiled
        return compiled


def _field(check: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = check.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{check.get('type')} check: '{name}' is missing or of the wrong type")
    return value


def _ignore_case(check: dict[str, Any]) -> bool:
    value = check.get("ignore_case", False)
    if not isinstance(value, bool):
        raise ValueError(f"{check.get('type')} check: 'ignore_case' must be a boolean")
    return value


def exact(value: str, text: str) -> bool:
    """The generated text, stripped, equals the value, stripped."""
    return text.strip() == value.strip()


def contains(value: str, text: str, *, ignore_case: bool = False) -> bool:
    """The value occurs in the text (case-folded on both sides with `ignore_case`)."""
    if ignore_case:
        return value.casefold() in text.casefold()
    return value in text


def regex(pattern: str, text: str, cache: CheckCache) -> bool:
    """RE2 finds a match anywhere in the text (search, not fullmatch: anchor with ^ and $)."""
    return cache.regex(pattern).search(text) is not None


def json_schema(schema: dict[str, Any], text: str, cache: CheckCache) -> bool:
    """The text is one JSON value (surrounding whitespace allowed) that validates against the
    schema within the step budget; a schema that cannot be checked in it never passes."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False
    with cache.schemas.row():
        validator = cache.schemas.compile(schema)
        if isinstance(validator, str):
            return False
        return cache.schemas.check_arguments(validator, value) is None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def tool_call(calls: list[dict[str, Any]], text: str) -> bool:
    """The answer's tool calls, read as vLLM's hermes parser reads them, equal `calls` (names and
    arguments as JSON values, in any order); `[]` means the model answers in text only."""
    expected = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError("tool_call check: each call needs a string 'name'")
        arguments = call.get("arguments")
        if not isinstance(arguments, dict):
            raise ValueError("tool_call check: each call's 'arguments' must be a JSON object")
        expected.append(ToolCall(call["name"], json.dumps(arguments, ensure_ascii=False)))
    return toolcalls.calls_equal(toolcalls.parse(text).calls, expected)


def loss_within(max_loss: float, loss: float | None) -> bool:
    """The reference answer's mean token NLL is known, finite and at most `max_loss`."""
    return loss is not None and math.isfinite(loss) and loss <= max_loss


def passes(check: dict[str, Any], text: str, loss: float | None, cache: CheckCache) -> bool:
    """Whether one check of a suite row passes for the generated `text` and the row's `loss`."""
    kind = check.get("type") if isinstance(check, dict) else None
    if kind == "exact":
        return exact(_field(check, "value", str), text)
    if kind in ("contains", "not_contains"):
        found = contains(_field(check, "value", str), text, ignore_case=_ignore_case(check))
        return found if kind == "contains" else not found
    if kind == "regex":
        return regex(_field(check, "pattern", str), text, cache)
    if kind == "json_schema":
        return json_schema(_field(check, "schema", dict), text, cache)
    if kind == "tool_call":
        return tool_call(_field(check, "calls", list), text)
    if kind == "loss":
        return loss_within(float(_field(check, "max_loss", (int, float))), loss)
    raise ValueError(f"unknown check type {kind!r}; expected one of {', '.join(CHECK_KINDS)}")
