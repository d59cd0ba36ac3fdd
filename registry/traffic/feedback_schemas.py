"""Feedback on one response: a rating, corrected assistant message(s), a comment.

A correction replaces what the adapter answered, so it holds what an answer can hold, in
OpenAI's chat shape: assistant messages (text and/or `tool_calls`), with `tool` results between
them when the corrected answer calls tools and goes on; it ends with an assistant message. A call
without an `id` gets one (a tool message cannot answer it, so only the last message's calls may
lack one). The registry and the gateway validate the same way; each message names the message,
the call and the field to fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_CORRECTION_BYTES = 64 * 1024  # the correction as sent, encoded as JSON
MAX_COMMENT_CHARS = 2000
MAX_REQUEST_ID = 64  # what the gateway records (x-request-id, cut at 64)
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
_CALL_SHAPE = '{"id": ..., "type": "function", "function": {"name": ..., "arguments": "{...}"}}'
_ASSISTANT_KEYS = ("role", "content", "tool_calls", "name")
_TOOL_KEYS = ("role", "content", "tool_call_id", "name")
_CALL_KEYS = ("id", "type", "function")
_FUNCTION_KEYS = ("name", "arguments")


def _bad(reason: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_feedback", "{reason}", {"reason": reason})


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def check_rating(value: object) -> int:
    if type(value) is not int or value not in (-1, 0, 1):
        shown = orjson.dumps(value).decode()[:40] if _plain(value) else _kind(value)
        raise _bad(f"must be -1 (bad), 0 (neutral) or 1 (good), got {shown}")
    return value


def check_request_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _bad("must be the x-request-id of the response (a non-empty string)")
    if len(value) > MAX_REQUEST_ID or not value.isprintable():
        raise _bad(
            f"must be at most {MAX_REQUEST_ID} printable characters: the "
            "x-request-id header of the response, as it came back"
        )
    return value


def check_comment(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"must be a string, got {_kind(value)}")
    if len(value) > MAX_COMMENT_CHARS:
        raise _bad(f"is {len(value)} characters; at most {MAX_COMMENT_CHARS}")
    if "\x00" in value:
        raise _bad("contains a NUL character (U+0000); remove it")
    return value


def _plain(value: object) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def check_correction(value: object) -> list[dict[str, Any]] | None:
    """The correction as a list of messages (one message is a list of one), normalized: every
    call has an id, assistant `content` is a string or null. Raises with what to fix."""
    if value is None:
        return None
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:  # e.g. an integer beyond 64 bits
        raise _bad(f"is not plain JSON ({exc}); send numbers as text") from exc
    if size > MAX_CORRECTION_BYTES:
        raise _bad(f"is {size:,} bytes; at most {MAX_CORRECTION_BYTES // 1024} KiB of JSON")
    messages = [value] if isinstance(value, dict) else value
    if not isinstance(messages, list):
        raise _bad(
            'must be the corrected assistant message {"role": "assistant", '
            f'"content": "..."}} or a list of messages, got {_kind(value)}'
        )
    if not messages:
        raise _bad("is an empty list; send the corrected assistant message, or leave it out")
    return _Checker().messages(messages)


class _Checker:
    def __init__(self) -> None:
        self.calls: dict[str, tuple[str, int]] = {}  # id -> (function name, message)
        self.pending: dict[str, tuple[str, int]] = {}  # made, not yet answered

    def messages(self, messages: list[Any]) -> list[dict[str, Any]]:
        out = []
        for i, msg in enumerate(messages, 1):
            try:
                out.append(self._message(msg, i, first=i == 1))
            except _Reason as exc:
                raise _bad(f"message {i}: {exc}") from None
        last = out[-1]["role"]
        if last != "assistant":
            raise _bad(
                f"message {len(out)} is a {last} message; a correction ends with the "
                "assistant message that answers (the tool results go before it)"
            )
        return out

    def _message(self, msg: object, i: int, *, first: bool) -> dict[str, Any]:
        if not isinstance(msg, dict):
            raise _Reason(f"expected a message object, got {_kind(msg)}")
        role = msg.get("role")
        if role not in ("assistant", "tool"):
            if role in ("user", "system", "developer"):
                raise _Reason(
                    f'role "{role}" cannot be corrected: a correction replaces the answer, so '
                    "it holds assistant messages (and tool results between them); the prompt "
                    "stays as it was sent"
                )
            raise _Reason('"role" must be "assistant" (or "tool" between assistant messages)')
        if first and role == "tool":
            raise _Reason("a correction starts with an assistant message, not a tool result")
        if role == "tool":
            return self._tool(msg)
        return self._assistant(msg, i)

    def _assistant(self, msg: dict[str, Any], i: int) -> dict[str, Any]:
        _known_keys(msg, _ASSISTANT_KEYS, "an assistant message")
        if self.pending:
            cid, (name, made) = next(iter(self.pending.items()))
            raise _Reason(
                f'call "{cid}" ({name}) of message {made} has no tool result before this '
                f'assistant message; add a tool message with "tool_call_id": "{cid}" after '
                f"message {made}, or end the correction at message {made}"
            )
        content = msg.get("content")
        if isinstance(content, list):
            raise _Reason("content must be a string; join the text parts into one string")
        if content is not None and not isinstance(content, str):
            raise _Reason(f"content must be a string, got {_kind(content)}")
        out: dict[str, Any] = {"role": "assistant", "content": content}
        _name(msg, out)
        calls = msg.get("tool_calls")
        if calls is None:
            if not content or content.isspace():
                raise _Reason("content is empty; write the corrected answer, or make tool_calls")
            return out
        if not isinstance(calls, list) or not calls:
            raise _Reason(f'"tool_calls" must be a non-empty list of calls {_CALL_SHAPE}')
        out["tool_calls"] = [self._call(c, i, n) for n, c in enumerate(calls, 1)]
        return out

    def _call(self, call: object, i: int, n: int) -> dict[str, Any]:
        where = f"call {n}"
        if not isinstance(call, dict):
            raise _Reason(f"{where}: expected an object {_CALL_SHAPE}, got {_kind(call)}")
        _known_keys(call, _CALL_KEYS, f"{where}")
        if call.get("type") != "function":
            raise _Reason(f'{where}: "type" must be "function"')
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise _Reason(f'{where}: "function" must be an object {{"name", "arguments"}}')
        _known_keys(fn, _FUNCTION_KEYS, f"{where}: function")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _Reason(f"{where}: function name must be 1-64 letters, digits, '_' or '-'")
        raw = fn.get("arguments")
        if not isinstance(raw, str):
            raise _Reason(
                f'{where} ({name}): "arguments" must be a string holding a JSON object, got '
                f"{_kind(raw)}; encode the arguments as a JSON string"
            )
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Reason(f'{where} ({name}): "arguments" is not valid JSON ({exc})') from None
        if not isinstance(args, dict):
            raise _Reason(f'{where} ({name}): "arguments" must be a JSON object, got {_kind(args)}')
        cid = call.get("id")
        if cid is None:
            digest = hashlib.sha256(f"{i}:{n}:{name}:{raw}".encode()).hexdigest()
            cid = f"call_{digest[:24]}"
        elif not isinstance(cid, str) or not cid or len(cid) > 64:
            raise _Reason(f'{where} ({name}): "id" must be a string of 1-64 characters')
        if cid in self.calls:
            raise _Reason(f'{where}: id "{cid}" is already used by message {self.calls[cid][1]}')
        self.calls[cid] = self.pending[cid] = (name, i)
        return {"id": cid, "type": "function", "function": {"name": name, "arguments": raw}}

    def _tool(self, msg: dict[str, Any]) -> dict[str, Any]:
        _known_keys(msg, _TOOL_KEYS, "a tool message")
        cid = msg.get("tool_call_id")
        if not isinstance(cid, str) or not cid:
            raise _Reason('"tool_call_id" is required: the id of the call this result answers')
        if cid not in self.calls:
            raise _Reason(f'"tool_call_id" "{cid}" answers no call of an earlier message')
        if cid not in self.pending:
            raise _Reason(f'call "{cid}" was already answered')
        content = msg.get("content")
        if not isinstance(content, str):
            raise _Reason(f"content must be the tool result as a string, got {_kind(content)}")
        del self.pending[cid]
        out = {"role": "tool", "tool_call_id": cid, "content": content}
        _name(msg, out)
        return out


class _Reason(Exception):
    pass


def _known_keys(obj: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    for key in obj:
        if key not in known:
            raise _Reason(f'unknown key "{str(key)[:40]}" in {what}; use {", ".join(known)}')


def _name(msg: dict[str, Any], out: dict[str, Any]) -> None:
    if "name" in msg:
        if not isinstance(msg["name"], str) or not 0 < len(msg["name"]) <= 64:
            raise _Reason('"name" must be a string of 1-64 characters')
        out["name"] = msg["name"]


# The declared schemas hold everything the checks accept (one message or a list; null comment).
Rating = Annotated[
    int,
    BeforeValidator(check_rating),
    WithJsonSchema({"type": "integer", "minimum": -1, "maximum": 1}),
]
RequestId = Annotated[
    str,
    BeforeValidator(check_request_id),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID}),
]
Comment = Annotated[
    str,
    BeforeValidator(check_comment),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "maxLength": MAX_COMMENT_CHARS}, {"type": "null"}]}
    ),
]
CORRECTION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "object"},
        {"type": "array", "minItems": 1, "items": {"type": "object"}},
        {"type": "null"},
    ]
}
Correction = Annotated[
    list[dict[str, Any]] | None,
    BeforeValidator(check_correction),
    WithJsonSchema(CORRECTION_SCHEMA),
]


class FeedbackIn(BaseModel):
    """What a tenant says about one response (the request id is in `FeedbackPost`)."""

    model_config = ConfigDict(extra="forbid")

    rating: Rating = Field(description="-1 bad, 0 neutral, 1 good")
    correction: Correction = Field(
        default=None,
        description="the answer it should have given: an assistant message, or a list of "
        "assistant messages with tool results between them (at most 64 KiB)",
    )
    comment: Comment = Field(default="", description=f"at most {MAX_COMMENT_CHARS} characters")


class FeedbackPost(FeedbackIn):
    request_id: RequestId = Field(description="the x-request-id header of the response")


class FeedbackOut(BaseModel):
    object: Literal["feedback"] = "feedback"
    request_id: str
    adapter: str
    version: int
    rating: int
    corrected: bool
    correction: list[dict[str, Any]] | None = Field(description="as stored, redacted")
    comment: str
    redactions: dict[str, int] = Field(description="what redaction replaced, by kind")
    captured: Literal["full", "prompts"] | None = Field(
        description="what the traffic log holds of the request: the full trace, its prompt, "
        "or nothing (not sampled)"
    )
    replaced: bool = Field(description="true when this feedback replaced earlier feedback")
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class FeedbackList(BaseModel):
    items: list[FeedbackOut]
    limit: int
    offset: int
