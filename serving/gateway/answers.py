"""The first choice of an engine answer, as a full trace keeps it: whole, or assembled from a
stream's deltas as they pass (the caller's bytes are never changed).

Chat: `{"role": "assistant", "content": str | None, "tool_calls": [...]}` (tool_calls only when
the model called tools; a streamed call's `arguments` fragments are joined in order).
Completions: `{"text": str}`. `finish_reason` stays None until the answer is complete, so an
answer cut short (the caller hung up mid-stream) is never kept as a trace.
"""

from __future__ import annotations

from typing import Any


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _first(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    for choice in _dicts(doc.get("choices")):
        if choice.get("index", 0) == 0:
            return choice
    return None


class Answer:
    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.finish_reason: str | None = None
        self._parts: list[str] = []
        self._content_seen = False
        self._calls: dict[int, dict[str, Any]] = {}
        self._args: dict[int, list[str]] = {}
        self._whole: dict[str, Any] | None = None

    def take_whole(self, doc: Any) -> None:
        """A whole (non-streamed) answer."""
        choice = _first(doc)
        if choice is None:
            return
        self.finish_reason = _reason(choice.get("finish_reason"))
        if not self.chat:
            self._whole = {"text": str(choice.get("text") or "")}
            return
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        content = message.get("content")
        out: dict[str, Any] = {"role": "assistant", "content": content}
        calls = _dicts(message.get("tool_calls"))
        if calls:
            out["tool_calls"] = calls
        self._whole = out

    def feed(self, chunk: Any) -> None:
        """One streamed event (already parsed)."""
        choice = _first(chunk)
        if choice is None:
            return
        reason = _reason(choice.get("finish_reason"))
        if reason is not None:
            self.finish_reason = reason
        if not self.chat:
            text = choice.get("text")
            if isinstance(text, str):
                self._parts.append(text)
            return
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        content = delta.get("content")
        if isinstance(content, str):
            self._content_seen = True
            self._parts.append(content)
        for call in _dicts(delta.get("tool_calls")):
            i = call.get("index")
            i = i if isinstance(i, int) else 0
            known = self._calls.setdefault(i, {"id": None, "type": "function", "function": {}})
            if call.get("id"):
                known["id"] = call["id"]
            if call.get("type"):
                known["type"] = call["type"]
            fn = call.get("function")
            if isinstance(fn, dict):
                if fn.get("name"):
                    known["function"]["name"] = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    self._args.setdefault(i, []).append(fn["arguments"])

    def response(self) -> dict[str, Any] | None:
        """The assembled first choice; None while incomplete."""
        if self.finish_reason is None:
            return None
        if self._whole is not None:
            return self._whole
        if not self.chat:
            return {"text": "".join(self._parts)}
        out: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self._parts) if self._content_seen else None,
        }
        if self._calls:
            calls = []
            for i in sorted(self._calls):
                call = self._calls[i]
                fn = {"name": call["function"].get("name", ""), "arguments": ""}
                fn["arguments"] = "".join(self._args.get(i, []))
                calls.append({"id": call["id"], "type": call["type"], "function": fn})
            out["tool_calls"] = calls
        return out


def _reason(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
