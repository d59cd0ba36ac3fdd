"""Tool calls in generated text, read the way vLLM's `hermes` tool parser reads them, and the
checks the held-out evals make on them.

`parse` mirrors `vllm/tool_parsers/hermes_tool_parser.py` (`extract_tool_calls`) without
importing vLLM: what the evals score is what a tenant's `openai` client would get back.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from registry.datasets.tool_schemas import ToolSchemas

START = "<tool_call>"
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as the OpenAI API carries it


@dataclass(frozen=True)
class Answer:
    """One assistant turn: its text and/or its tool calls (several = parallel calls)."""

    content: str | None
    calls: tuple[ToolCall, ...] = ()

    @property
    def text(self) -> str:
        return self.content or ""


def parse(text: str) -> Answer:
    """Calls as vLLM's hermes parser extracts them: every `<tool_call>{json}</tool_call>` (or an
    unclosed last one), each `{"name": str, "arguments": any}`, arguments re-dumped with
    `ensure_ascii=False`; content is the text before the first `<tool_call>` (None if empty).
    Any block that fails to parse means no calls at all and the whole text as content."""
    if START not in text:
        return Answer(text)
    try:
        calls = []
        for closed, unclosed in _CALL.findall(text):
            call = json.loads(closed or unclosed)
            name = call["name"]
            if not isinstance(name, str):
                raise TypeError("a tool name must be a string")
            calls.append(ToolCall(name, json.dumps(call["arguments"], ensure_ascii=False)))
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return Answer(text)
    content = text[: text.find(START)]
    return Answer(content or None, tuple(calls))


def _canonical(value: Any) -> Hashable:
    """A hashable form equal for equal JSON values (key order ignored; 1 == 1.0; true != 1)."""
    if isinstance(value, dict):
        return ("o", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("a", tuple(_canonical(v) for v in value))
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    return ("n", value)  # 1 and 1.0 are equal and hash alike


def _arguments(call: ToolCall) -> Any:
    """The parsed arguments, or a sentinel that equals nothing a reference holds."""
    try:
        return json.loads(call.arguments)
    except ValueError:
        return _Unparsable(call.arguments)


@dataclass(frozen=True)
class _Unparsable:
    raw: str


def names_match(generated: Sequence[ToolCall], reference: Sequence[ToolCall]) -> bool:
    """The same multiset of function names (parallel calls in any order)."""
    return Counter(c.name for c in generated) == Counter(c.name for c in reference)


def calls_equal(generated: Sequence[ToolCall], reference: Sequence[ToolCall]) -> bool:
    """Names and arguments equal as JSON values, in any order."""

    def key(call: ToolCall) -> Hashable:
        args = _arguments(call)
        return (call.name, args if isinstance(args, _Unparsable) else _canonical(args))

    return Counter(map(key, generated)) == Counter(map(key, reference))


def args_valid(
    generated: Sequence[ToolCall], tools: Sequence[dict[str, Any]] | None, schemas: ToolSchemas
) -> bool:
    """At least one call, and every call names an offered tool and passes an object that
    validates against that tool's `parameters` (none: any object), checked by the upload's own
    validator within its per-row budget (RE2 patterns, local refs only)."""
    parameters: dict[str, Any] = {}
    for tool in tools or ():
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters[function["name"]] = function.get("parameters") or {}
    if not generated:
        return False
    with schemas.row():
        for call in generated:
            args = _arguments(call)
            if call.name not in parameters or not isinstance(args, dict):
                return False
            validator = schemas.compile(parameters[call.name])
            if isinstance(validator, str) or schemas.check_arguments(validator, args) is not None:
                return False  # a schema the upload refuses never counts as valid
    return True
