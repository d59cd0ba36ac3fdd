"""One full trace (plus its feedback) -> one dataset row, or the reason it is none.

The row teaches what the tenant wants the adapter to answer: the served answer, or the
correction that replaces it. Chat: `{"messages": request messages + the answer, "tools": ...}`
(earlier tool calls and tool results in the request stay as they were); completions:
`{"prompt", "completion"}`. A row must pass the same checks an uploaded row passes; one that
would not is skipped here (with its reason) rather than failing the whole dataset.
"""

from __future__ import annotations

from typing import Any

import orjson

from registry.datasets.chat_rows import ChatRows
from registry.datasets.validation import _check_prompt_completion

CHAT = "chat.completions"
COMPLETIONS = "completions"
# Request keys that belong in a chat fine-tuning row.
_ROW_KEYS = ("tools", "parallel_tool_calls")
_MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")


class RowBuilder:
    """Turns traces into rows, checking each like an upload's line (size, format, tools)."""

    def __init__(self, *, max_line_bytes: int, max_tools: int, schema_steps: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.chat = ChatRows(max_tools=max_tools, schema_steps=schema_steps)

    def build(
        self, trace: dict[str, Any], correction: list[dict[str, Any]] | None, rating: int | None
    ) -> tuple[dict[str, Any] | None, str]:
        """(row, "") or (None, skip reason)."""
        endpoint = trace.get("endpoint", CHAT)
        request = trace.get("request") or {}
        response = trace.get("response") or {}
        if correction is None and rating != 1 and trace.get("finish_reason") == "length":
            # cut at max_tokens: it would teach stopping mid-sentence, unless approved as is
            return None, "truncated"
        if endpoint == COMPLETIONS:
            row = _completion_row(request, response, correction)
            reason = _check_prompt_completion(row) if row is not None else "invalid"
        else:
            row = _chat_row(request, response, correction)
            reason = self.chat.check(row).reason if row is not None else "invalid"
        if row is None or reason is not None:
            return None, "invalid"
        if len(orjson.dumps(row)) > self.max_line_bytes:
            return None, "too_long"
        return row, ""


def _message(msg: dict[str, Any]) -> dict[str, Any]:
    """A message as a fine-tuning row holds it: its chat keys, no nulls or empty call lists."""
    out = {k: msg[k] for k in _MESSAGE_KEYS if msg.get(k) is not None}
    if "tool_calls" in out:
        if out["tool_calls"]:
            out["tool_calls"] = [_call(c) for c in out["tool_calls"]]
        else:
            del out["tool_calls"]
    return out


def _call(call: Any) -> Any:
    """A served tool call without streaming leftovers (`index`)."""
    if not isinstance(call, dict):
        return call
    fn = call.get("function") or {}
    return {
        "id": call.get("id"),
        "type": call.get("type", "function"),
        "function": {"name": fn.get("name"), "arguments": fn.get("arguments")},
    }


def _chat_row(
    request: dict[str, Any], response: dict[str, Any], correction: list[dict[str, Any]] | None
) -> dict[str, Any] | None:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return None
    answer = correction if correction is not None else [{"role": "assistant", **response}]
    if not all(isinstance(m, dict) for m in [*messages, *answer]):
        return None
    row: dict[str, Any] = {"messages": [_message(m) for m in [*messages, *answer]]}
    row |= {k: request[k] for k in _ROW_KEYS if request.get(k) is not None}
    return row


def _completion_row(
    request: dict[str, Any], response: dict[str, Any], correction: list[dict[str, Any]] | None
) -> dict[str, Any] | None:
    if correction is not None:
        texts = [m.get("content") for m in correction if isinstance(m, dict)]
        completion = texts[-1] if texts else None
    else:
        completion = response.get("text")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        return None
    return {"prompt": prompt, "completion": completion}
