"""OpenAI chat fine-tuning rows: messages, `tools`, assistant `tool_calls` and `tool` results.

The format is OpenAI's, checked as its fine-tuning API documents it:

* roles system, developer (a system message), user, assistant, tool;
* an assistant message carries non-empty text, or `tool_calls` (text optional), each call
  `{"id", "type": "function", "function": {"name", "arguments": "<a JSON object, as a string>"}}`;
  several calls in one message are parallel calls (refused if `parallel_tool_calls` is false);
* a `tool` message answers a call of an earlier assistant message by its `tool_call_id`, once;
  every call is answered before the next assistant message (a call in the last message, the one
  being learned, needs no answer);
* `weight` (0 or 1) only on assistant messages, and at least one assistant message is trained;
* the legacy `functions` / `function_call` / role `function` are refused with their rewrite.

With `final_assistant=False` (eval-suite rows) the conversation is the prompt the model answers:
it ends with a user or tool message, every call made in it is answered, and nothing is trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from registry.datasets.tool_schemas import ToolSchemas, json_type, show

_ROLES = ("system", "developer", "user", "assistant", "tool")
_ROLE_LIST = "system, developer, user, assistant or tool"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
_CALL_SHAPE = '{"id": ..., "type": "function", "function": {"name": ..., "arguments": "{...}"}}'


class ChatCheck(NamedTuple):
    reason: str | None  # None: the row is valid
    uses_tools: bool  # the row has a `tools` list or a tool call
    tools: dict[str, Any] | None = None  # a valid row's tools: name -> compiled parameters


@dataclass
class _Call:
    name: str
    message: int  # the assistant message that made it
    answered_by: int = 0  # the tool message that answered it


class ChatRows:
    """Checks chat rows; holds the compiled tool schemas shared by the rows of one upload."""

    def __init__(self, *, max_tools: int, schema_steps: int, final_assistant: bool = True) -> None:
        if max_tools < 1:
            raise ValueError("max_tools must be at least 1")
        self.max_tools = max_tools
        self.final_assistant = final_assistant  # False: the row is a prompt, not a lesson
        self.schemas = ToolSchemas(max_steps=schema_steps)

    def check(self, obj: dict[str, Any]) -> ChatCheck:
        tools = obj.get("tools")
        uses_tools = (isinstance(tools, list) and bool(tools)) or any(
            isinstance(m, dict) and bool(m.get("tool_calls"))
            for m in (obj["messages"] if isinstance(obj["messages"], list) else ())
        )
        with self.schemas.row():
            reason, tools = self._check(obj)
        return ChatCheck(reason, uses_tools, tools if reason is None else None)

    def _check(self, obj: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        if "functions" in obj:
            return (
                '"functions" is the legacy format; list them in "tools" as '
                '{"type": "function", "function": {"name": ..., "parameters": ...}}'
            ), None
        parallel = obj.get("parallel_tool_calls", True)
        if not isinstance(parallel, bool):
            return f'"parallel_tool_calls" must be true or false, got {json_type(parallel)}', None
        tools: dict[str, Any] | None = None
        if "tools" in obj:
            tools_or_reason = self._tools(obj["tools"])
            if isinstance(tools_or_reason, str):
                return tools_or_reason, None
            tools = tools_or_reason
        return self._messages(obj["messages"], tools, parallel), tools

    def _tools(self, tools: object) -> dict[str, Any] | str:
        """Tool name -> compiled parameters (None: no parameters), or why `tools` is invalid."""
        if not isinstance(tools, list):
            return f'"tools" must be a list of tools, got {json_type(tools)}'
        if len(tools) > self.max_tools:
            return (
                f'"tools" lists {len(tools)} tools, over the limit of {self.max_tools} a row '
                "(LORAPLEX_DATASET_MAX_TOOLS); keep the tools this conversation needs"
            )
        out: dict[str, Any] = {}
        for i, tool in enumerate(tools, 1):
            where = f"tool {i}"
            if not isinstance(tool, dict):
                return f"{where}: expected an object, got {json_type(tool)}"
            if tool.get("type") != "function":
                return f'{where}: "type" must be "function", got {show(tool.get("type"))}'
            fn = tool.get("function")
            if not isinstance(fn, dict):
                return f'{where}: "function" must be an object {{"name": ..., "parameters": ...}}'
            name = fn.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return (
                    f"{where}: function name {show(name)} is not valid; use 1-64 letters, "
                    "digits, '_' or '-'"
                )
            where = f"tool {i} ({name})"
            if name in out:
                return f"{where}: another tool has the same name; tool names must be unique"
            if not isinstance(fn.get("description", ""), str):
                return f'{where}: "description" must be a string'
            compiled = None
            if "parameters" in fn:
                compiled = self.schemas.compile(fn["parameters"])
                if isinstance(compiled, str):
                    return f"{where}: parameters {compiled}"
            out[name] = compiled
        return out

    def _messages(
        self, messages: object, tools: dict[str, Any] | None, parallel: bool
    ) -> str | None:
        if not isinstance(messages, list):
            return f'"messages" must be a list of messages, got {json_type(messages)}'
        if not messages:
            if not self.final_assistant:
                return '"messages" is empty; add at least the user message to answer'
            return '"messages" is empty; add at least a user and an assistant message'
        calls: dict[str, _Call] = {}  # every call of the row, by id
        pending: dict[str, _Call] = {}  # the calls not answered yet, oldest first
        trained = False
        has_assistant = False
        role: object = None
        for i, msg in enumerate(messages, 1):
            if not isinstance(msg, dict):
                return f"message {i}: expected an object, got {json_type(msg)}"
            role = msg.get("role")
            reason = _role(msg, role)
            if reason is None and "weight" in msg:
                reason = _weight(msg["weight"], role)
            if reason is None and role == "assistant":
                if pending:
                    cid, call = next(iter(pending.items()))
                    reason = (
                        f'call "{cid}" ({call.name}) of message {call.message} has no tool '
                        "result before this assistant message; add a tool message with "
                        f'"tool_call_id": "{cid}" after message {call.message}'
                    )
                else:
                    reason = self._assistant(msg, i, calls, pending, tools, parallel)
                has_assistant = True
                trained = trained or msg.get("weight", 1) == 1
            elif reason is None and "tool_calls" in msg:
                reason = f'"tool_calls" is only allowed on assistant messages, not on {role} ones'
            elif reason is None and role == "tool":
                reason = _tool(msg, i, calls, pending)
            elif reason is None:
                reason = _text(msg)
            if reason is not None:
                return f"message {i}: {reason}"
        if not self.final_assistant:
            return _prompt_end(role, len(messages), pending)
        if not has_assistant:
            return "no assistant message; add the assistant reply the adapter should learn"
        if role != "assistant":
            return (
                f"the last message (message {len(messages)}) is from {role}, not assistant; "
                "end the conversation with the assistant reply to train on"
            )
        if not trained:
            return (
                'every assistant message has "weight": 0, so nothing would be trained; '
                "set weight 1 (or leave weight out) on the messages to learn"
            )
        return None

    def _assistant(
        self,
        msg: dict[str, Any],
        index: int,
        calls: dict[str, _Call],
        pending: dict[str, _Call],
        tools: dict[str, Any] | None,
        parallel: bool,
    ) -> str | None:
        if "function_call" in msg:
            return (
                f'"function_call" is the legacy format; write "tool_calls": [{_CALL_SHAPE}] instead'
            )
        made = msg.get("tool_calls")
        if made is None:
            return _text(msg)
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            return f"content must be a string or null, got {json_type(content)}"
        if not isinstance(made, list) or not made:
            return f'"tool_calls" must be a non-empty list of calls {_CALL_SHAPE}'
        if len(made) > 1 and not parallel:
            return (
                f'makes {len(made)} calls but the row sets "parallel_tool_calls": false; '
                "make one call per assistant message or drop parallel_tool_calls"
            )
        for n, call in enumerate(made, 1):
            reason = self._call(call, tools)
            if reason is not None:
                return f"call {n}: {reason}"
            cid = call["id"]
            if cid in calls:
                return f'call {n}: id "{cid}" is already used by message {calls[cid].message}'
            calls[cid] = pending[cid] = _Call(call["function"]["name"], index)
        return None

    def _call(self, call: object, tools: dict[str, Any] | None) -> str | None:
        if not isinstance(call, dict):
            return f"expected an object {_CALL_SHAPE}, got {json_type(call)}"
        cid = call.get("id")
        if not isinstance(cid, str) or not cid:
            return '"id" must be a non-empty string (the tool message answers it by this id)'
        if call.get("type") != "function":
            return f'"type" must be "function", got {show(call.get("type"))}'
        fn = call.get("function")
        if not isinstance(fn, dict):
            return '"function" must be an object {"name": ..., "arguments": "{...}"}'
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            return '"function" needs a "name", the name of one of the row\'s tools'
        if tools is None:
            return (
                f'calls {show(name)} but the row has no "tools"; add "tools": '
                '[{"type": "function", "function": {"name": ..., "parameters": ...}}] '
                "defining it"
            )
        if name not in tools:
            known = ", ".join(list(tools)[:10]) or "none"
            return f'calls {show(name)}, which is not in "tools" (tools: {known})'
        raw = fn.get("arguments")
        if not isinstance(raw, str):
            return (
                f'{name}: "arguments" must be a string holding a JSON object, got '
                f"{json_type(raw)}; encode the arguments as a JSON string"
            )
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return f'{name}: "arguments" is not valid JSON ({e.msg} at column {e.colno})'
        if not isinstance(args, dict):
            return f'{name}: "arguments" must decode to a JSON object, got {json_type(args)}'
        compiled = tools[name]
        if compiled is not None:
            reason = self.schemas.check_arguments(compiled, args)
            if reason is not None:
                return f"{name}: {reason}"
        return None


def _prompt_end(role: object, count: int, pending: dict[str, _Call]) -> str | None:
    """A prompt ends where the model takes over: after the user, or after the tool results."""
    if role not in ("user", "tool"):
        return (
            f"the last message (message {count}) is from {role}; end with the user (or tool) "
            "message the model answers, and put the expected answer in the checks"
        )
    if pending:
        cid, call = next(iter(pending.items()))
        return (
            f'call "{cid}" ({call.name}) of message {call.message} has no tool result before '
            f'the answer; add a tool message with "tool_call_id": "{cid}" after message '
            f"{call.message}"
        )
    return None


def _role(msg: dict[str, Any], role: object) -> str | None:
    if isinstance(role, str) and role in _ROLES:
        return None
    if "role" not in msg:
        return f'missing "role"; use {_ROLE_LIST}'
    if role == "function":
        return (
            'role "function" is the legacy format; use role "tool" with the "tool_call_id" '
            "of the call it answers"
        )
    return f"role {show(role)} is not supported; use {_ROLE_LIST}"


def _weight(weight: object, role: object) -> str | None:
    if role != "assistant":
        return f'"weight" is only allowed on assistant messages, not on {role} messages'
    if type(weight) is not int or weight not in (0, 1):
        return f'"weight" must be 0 or 1, got {show(weight)}'
    return None


def _text(msg: dict[str, Any]) -> str | None:
    """A system, developer, user, or plain assistant message: non-empty text."""
    content = msg.get("content")
    if not isinstance(content, str):
        if "content" not in msg:
            return 'missing "content"'
        return f"content must be a string, got {json_type(content)}"
    if not content or content.isspace():
        return "content is empty or only whitespace"
    return None


def _tool(
    msg: dict[str, Any], index: int, calls: dict[str, _Call], pending: dict[str, _Call]
) -> str | None:
    cid = msg.get("tool_call_id")
    if not isinstance(cid, str) or not cid:
        return '"tool_call_id" is required: the id of the call this message answers'
    call = calls.get(cid)
    if call is None:
        return f'"tool_call_id" "{cid}" answers no earlier call; use the id of a call above'
    if call.answered_by:
        return f'call "{cid}" was already answered by message {call.answered_by}'
    content = msg.get("content")
    if not isinstance(content, str):
        if "content" not in msg:
            return 'missing "content" (the tool result, as a string)'
        return f"content must be a string (the tool result), got {json_type(content)}"
    call.answered_by = index
    del pending[cid]
    return None
