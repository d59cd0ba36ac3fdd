"""Which eval checks a teacher's answer must pass before it becomes a training row.

From each eval suite pinned to the adapter: the suite-wide rules, i.e. the text checks
(contains, not_contains, regex, json_schema) that every row of the suite carries identically
(a house voice, an output schema; a suite of one row has none); and every generation check
of a suite row whose prompt is this very prompt. Loss checks need a model, so they never apply here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workers.evals.checks import GENERATION_KINDS, CheckCache, passes
from workers.training import toolcalls
from workers.training.toolcalls import ToolCall

SUITE_WIDE_KINDS = frozenset({"contains", "not_contains", "regex", "json_schema"})


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prompt_key(record: dict[str, Any]) -> str | None:
    """What makes two prompts the same prompt: the chat messages, or the raw prompt."""
    if isinstance(record.get("messages"), list):
        return _canon({"messages": record["messages"]})
    if isinstance(record.get("prompt"), str):
        return _canon({"prompt": record["prompt"]})
    return None


def _generation_checks(row: dict[str, Any]) -> list[dict[str, Any]]:
    checks = row.get("checks")
    if not isinstance(checks, list):
        return []
    return [c for c in checks if isinstance(c, dict) and c.get("type") in GENERATION_KINDS]


@dataclass
class Rules:
    suite_wide: list[dict[str, Any]] = field(default_factory=list)
    by_prompt: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_suites(cls, suites: Iterable[list[dict[str, Any]]]) -> Rules:
        """`suites`: the rows of each pinned suite."""
        rules = cls()
        wide: dict[str, dict[str, Any]] = {}
        for rows in suites:
            common: dict[str, dict[str, Any]] | None = None
            for row in rows:
                checks = _generation_checks(row)
                mine = {_canon(c): c for c in checks if c.get("type") in SUITE_WIDE_KINDS}
                common = mine if common is None else {k: common[k] for k in common if k in mine}
                key = prompt_key(row)
                if key is not None and checks:
                    rules.by_prompt.setdefault(key, []).extend(checks)
            if len(rows) >= 2:  # one row's checks are that row's, not a suite's rule
                wide.update(common or {})
        rules.suite_wide = list(wide.values())
        return rules

    def applicable(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        key = prompt_key(record)
        own = self.by_prompt.get(key, []) if key is not None else []
        seen = {_canon(c) for c in self.suite_wide}
        return self.suite_wide + [c for c in own if _canon(c) not in seen]


def _openai_calls(calls: list[dict[str, Any]]) -> list[ToolCall]:
    out = []
    for call in calls:
        function = call.get("function")
        if not isinstance(function, dict):
            continue
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str):
            out.append(ToolCall(name, arguments if isinstance(arguments, str) else "{}"))
    return out


def _tool_call(check: dict[str, Any], calls: list[dict[str, Any]]) -> bool:
    expected = []
    for call in check.get("calls") or []:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError("tool_call check: each call needs a string 'name'")
        arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
        expected.append(ToolCall(call["name"], arguments))
    return toolcalls.calls_equal(_openai_calls(calls), expected)


def failed_check(
    checks: list[dict[str, Any]], text: str, calls: list[dict[str, Any]], cache: CheckCache
) -> str | None:
    """The kind of the first check the answer fails, or None when it passes them all.

    Text checks read the answer's content; a tool_call check reads its tool calls."""
    for check in checks:
        if check.get("type") == "tool_call":
            ok = _tool_call(check, calls)
        else:
            ok = passes(check, text, None, cache)
        if not ok:
            return str(check.get("type"))
    return None
