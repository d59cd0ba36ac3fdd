"""Streaming validation of eval-suite JSONL uploads.

A suite row is a prompt and the checks a good answer passes:

    {"id": "refund-01", "messages": [...], "tools": [...], "checks": [...]}   chat form
    {"id": "wiki-17", "prompt": "raw text", "checks": [...]}                   raw-text form

Line handling, limits, de-duplication and the report are the dataset validator's
(`DatasetValidator`); only what a row must hold differs:

* chat `messages` follow the dataset rules (roles, tool calls answered by tool messages, the
  legacy formats refused) but end with the user or tool message the model answers: the answer
  is what the checks judge, so an assistant turn at the end would never be looked at;
* `tools` are validated as datasets' are, and a `tool_call` check may only name one of them;
* unknown top-level keys are refused (a typo in "checks" would otherwise score nothing);
* the report also counts, per check kind, the kept rows that have it (`check_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from registry.datasets.tool_schemas import json_type, show
from registry.datasets.validation import CHAT, DatasetValidator, ValidationReport, keys
from registry.suites.checks import CHECK_KINDS, SuiteChecks

PROMPT = "prompt"  # SuiteFormat.PROMPT: raw text, no chat template
MAX_ID_CHARS = 100

_KEYS = {
    CHAT: ("id", "messages", "tools", "parallel_tool_calls", "checks"),
    PROMPT: ("id", "prompt", "checks"),
}
_HINTS = {
    "completion": (
        "suite rows have no completion; put the expected answer in a check "
        '({"type": "exact", ...}, or the "reference" of a "loss" check)'
    ),
    "functions": "",  # left to the chat rules, which name the rewrite
}


@dataclass
class SuiteReport(ValidationReport):
    check_counts: dict[str, int] = field(default_factory=dict)  # kind -> kept rows having it

    def ordered_counts(self) -> dict[str, int]:
        """`check_counts` in the order of `CHECK_KINDS` (as stored and shown)."""
        return {k: self.check_counts[k] for k in CHECK_KINDS if k in self.check_counts}

    def to_dict(self) -> dict[str, object]:
        return super().to_dict() | {"check_counts": self.ordered_counts()}


class SuiteValidator(DatasetValidator):
    """Validates one suite upload: call `feed` per chunk, then `finish` once."""

    FORMAT_LABELS: ClassVar[dict[str, str]] = {CHAT: "chat", PROMPT: "raw-text prompt"}
    FINAL_ASSISTANT: ClassVar[bool] = False
    report: SuiteReport

    def __init__(
        self,
        *,
        max_line_bytes: int = 1 << 20,
        max_errors: int = 20,
        max_tools: int = 128,
        schema_steps: int = 50_000,
    ) -> None:
        super().__init__(
            max_line_bytes=max_line_bytes,
            max_errors=max_errors,
            max_tools=max_tools,
            schema_steps=schema_steps,
        )
        self.report = SuiteReport()
        self._checks = SuiteChecks(self._chat.schemas)
        self._kinds: frozenset[str] = frozenset()  # the check kinds of the row just checked

    def _row_format(self, obj: dict[str, Any]) -> tuple[str, None] | tuple[None, str]:
        if "messages" in obj and "prompt" in obj:
            return None, 'a row has "messages" (chat) or "prompt" (raw text), not both'
        if "messages" in obj:
            return CHAT, None
        if "prompt" in obj:
            return PROMPT, None
        return None, (
            'expected "messages" (a chat prompt) or "prompt" (raw text), with "checks"; '
            f"found {keys(obj)}"
        )

    def _check_format(self, kind: str, obj: dict[str, Any]) -> str | None:
        self._uses_tools, self._kinds = False, frozenset()
        reason = _unknown_key(kind, obj) or _id(obj)
        if reason is not None:
            return reason
        tools: dict[str, Any] | None = None
        if kind == CHAT:
            reason, self._uses_tools, tools = self._chat.check(obj)
        else:
            reason = _prompt(obj["prompt"])
        if reason is not None:
            return reason
        reason, self._kinds = self._checks.check(obj.get("checks"), chat=kind == CHAT, tools=tools)
        return reason

    def _kept(self) -> None:
        super()._kept()
        counts = self.report.check_counts
        for kind in self._kinds:
            counts[kind] = counts.get(kind, 0) + 1


def _unknown_key(kind: str, obj: dict[str, Any]) -> str | None:
    allowed = _KEYS[kind]
    for key in obj:
        if key in allowed or _HINTS.get(key) == "":
            continue
        hint = _HINTS.get(key) or f"a {kind} suite row has {', '.join(allowed)}"
        return f"unknown key {show(key, 30)}; {hint}"
    return None


def _id(obj: dict[str, Any]) -> str | None:
    if "id" not in obj:
        return None
    value = obj["id"]
    if not isinstance(value, str):
        return f'"id" must be a string, got {json_type(value)}'
    if not value.strip():
        return '"id" is empty or only whitespace; leave it out or name the row'
    if len(value) > MAX_ID_CHARS:
        return f'"id" is {len(value)} characters, over the limit of {MAX_ID_CHARS}'
    return None


def _prompt(value: object) -> str | None:
    if not isinstance(value, str):
        return f'"prompt" must be a string (the raw text to continue), got {json_type(value)}'
    if not value or value.isspace():
        return '"prompt" is empty or only whitespace'
    return None
