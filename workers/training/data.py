"""Tenant dataset rows -> token examples with a loss mask, held-out split, eval prompts.

Rows are OpenAI chat fine-tuning rows `{"messages": [...], "tools": [...]}` (roles system,
developer, user, assistant with optional `tool_calls` and `weight`, tool) or
`{"prompt", "completion"}`. A chat row is rendered by the tokenizer's chat template with
`tools=` and tool-call arguments as objects, exactly as vLLM renders a request, so training and
serving see the same text. Every rendered text segment is tokenized on its own and the ids
concatenated, so an example's ids do not depend on how a BPE merges across a prompt/answer
boundary, and the prompt ids used for generation (`prompt_ids`) are exactly the ids the model
saw before the answer in training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from transformers import PreTrainedTokenizerBase

from workers.training.toolcalls import Answer, ToolCall

IGNORE = -100
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss

    @property
    def n_target(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass(frozen=True)
class Chat:
    """A checked chat row. `api`: its messages in OpenAI form (what a client sends; no
    `weight`); `template`: as the chat template gets them (arguments as objects, content ""
    where absent, as vLLM passes them); `reference`: the index of the answer the evals score
    (the last trained assistant turn, else the last assistant turn)."""

    api: Messages
    template: Messages
    tools: list[dict[str, Any]] | None
    trained: frozenset[int]
    reference: int


def _tool(tool: Any) -> dict[str, Any]:
    """A `tools` entry as vLLM hands it to the template (its request model, dumped)."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError("each entry of 'tools' needs a 'function' with a string 'name'")
    out = {
        "name": function["name"],
        "description": function.get("description"),
        "parameters": function.get("parameters"),
    }
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    return {"type": "function", "function": out}


def _call(call: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(OpenAI form, template form) of one assistant tool call."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError("each tool call needs a 'function' with a string 'name'")
    raw = function.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise ValueError(f"tool call {function['name']!r}: arguments are not JSON ({e})") from e
    if not isinstance(args, dict):
        raise ValueError(f"tool call {function['name']!r}: arguments must be a JSON object")
    text = raw if isinstance(raw, str) else json.dumps(args, ensure_ascii=False)
    head = {"id": call["id"]} if isinstance(call.get("id"), str) else {}
    name = function["name"]
    return (
        {**head, "type": "function", "function": {"name": name, "arguments": text}},
        {**head, "type": "function", "function": {"name": name, "arguments": args}},
    )


def _message(m: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(OpenAI form, template form, trained) of one message."""
    if not isinstance(m, dict) or m.get("role") not in ROLES:
        raise ValueError(f"each message needs a role in {sorted(ROLES)}")
    role, content = m["role"], m.get("content")
    calls = m.get("tool_calls") if role == "assistant" else None
    if calls is not None and not isinstance(calls, list):
        raise ValueError("'tool_calls' must be a list")
    if not isinstance(content, str) and not (calls and content is None):
        raise ValueError("each message needs a string 'content' (or tool_calls, for assistant)")
    weight = m.get("weight", 1)
    if "weight" in m and (role != "assistant" or weight not in (0, 1) or type(weight) is bool):
        raise ValueError("'weight' is 0 or 1, on assistant messages only")
    api: dict[str, Any] = {"role": role, "content": content}
    template: dict[str, Any] = {"role": role, "content": content or ""}
    if calls:
        pairs = [_call(c) for c in calls]
        api["tool_calls"] = [a for a, _ in pairs]
        template["tool_calls"] = [t for _, t in pairs]
    if role == "tool" and isinstance(m.get("tool_call_id"), str):
        api["tool_call_id"] = template["tool_call_id"] = m["tool_call_id"]
    return api, template, role == "assistant" and weight == 1


def _chat(row: dict[str, Any]) -> Chat | None:
    """The row's checked chat, or None for a prompt/completion row."""
    if "messages" not in row:
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise ValueError("a row needs either 'messages' or string 'prompt' and 'completion'")
        return None
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    parsed = [_message(m) for m in messages]
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistants:
        raise ValueError("a chat row needs at least one assistant message")
    tools = row.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ValueError("'tools' must be a list")
    trained = frozenset(i for i, (_, _, t) in enumerate(parsed) if t)
    return Chat(
        api=[a for a, _, _ in parsed],
        template=[t for _, t, _ in parsed],
        tools=[_tool(t) for t in tools] if tools else None,
        trained=trained,
        reference=max(trained) if trained else assistants[-1],
    )


def _render(tokenizer: PreTrainedTokenizerBase, chat: Chat, upto: int, generation: bool) -> str:
    text = tokenizer.apply_chat_template(
        chat.template[:upto],
        tools=cast(Any, chat.tools),  # transformers' annotation is narrower than it accepts
        tokenize=False,
        add_generation_prompt=generation,
    )
    if not isinstance(text, str):
        raise TypeError("apply_chat_template(tokenize=False) did not return a string")
    return text


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, special: bool = False) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=special)) if text else []


def _chat_segments(tokenizer: PreTrainedTokenizerBase, chat: Chat) -> list[tuple[str, bool]]:
    """(text, trained) pieces up to the end of the reference turn.

    Trained = what the template adds for a trained assistant message after the generation
    prompt: its content, its tool calls and the end-of-turn marker(s).
    """
    segments: list[tuple[str, bool]] = []
    done = ""
    for i in range(chat.reference + 1):
        message = chat.template[i]
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, chat, i, generation=True)
        full = _render(tokenizer, chat, i + 1, generation=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError(
                "the chat template is not incremental: rendering messages[:i] with "
                "add_generation_prompt=True must be a prefix of rendering messages[:i+1] "
                f"(fails at message {i})"
            )
        answer = full[len(prompt) :]
        missing = [
            c["function"]["name"]
            for c in message.get("tool_calls", ())
            if c["function"]["name"] not in answer
        ]
        if missing:
            raise ValueError(
                f"the chat template does not render assistant tool_calls (message {i} calls "
                f"{missing}, absent from its rendering)"
            )
        segments.append((prompt[len(done) :], False))
        segments.append((answer, i in chat.trained))
        done = full
    missing = [t["function"]["name"] for t in chat.tools or () if t["function"]["name"] not in done]
    if missing:
        raise ValueError(
            f"the chat template does not render 'tools': {missing} absent from the rendered "
            "row; use a base model whose template renders tools"
        )
    return segments


def _pieces(
    row: dict[str, Any], tokenizer: PreTrainedTokenizerBase
) -> list[tuple[list[int], bool]]:
    chat = _chat(row)
    if chat is None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token to end a completion with")
        return [
            (_encode(tokenizer, row["prompt"], special=True), False),
            (_encode(tokenizer, row["completion"]) + [int(tokenizer.eos_token_id)], True),
        ]
    segments = _chat_segments(tokenizer, chat)
    return [(_encode(tokenizer, text), trained) for text, trained in segments]


def render_row(
    row: dict[str, Any], tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> Example | None:
    """Token ids and labels for one row, cut to `max_seq_length`; None if no target survives."""
    if max_seq_length < 1:
        raise ValueError("max_seq_length must be >= 1")
    input_ids: list[int] = []
    labels: list[int] = []
    for ids, trained in _pieces(row, tokenizer):
        input_ids += ids
        labels += ids if trained else [IGNORE] * len(ids)
    example = Example(input_ids=input_ids[:max_seq_length], labels=labels[:max_seq_length])
    return example if example.n_target else None


def render_rows(
    rows: Iterable[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> list[Example]:
    """Rows that keep at least one target token after truncation, in input order."""
    out = []
    for row in rows:
        example = render_row(row, tokenizer, max_seq_length)
        if example is not None:
            out.append(example)
    return out


def _row_key(seed: int, row: dict[str, Any]) -> str:
    canonical = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{seed}\n{canonical}".encode()).hexdigest()


def split_heldout(
    rows: Sequence[dict[str, Any]],
    *,
    seed: int,
    fraction: float = 0.1,
    min_heldout: int = 1,
    max_heldout: int = 512,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, heldout): rows ordered by sha256(seed, canonical JSON), the first few held out.

    The split depends only on the rows' contents and the seed, never on their order, so a
    re-upload of the same data in another order gives the same held-out set.
    """
    if len(rows) < 2:
        raise ValueError("need at least 2 rows to hold some out")
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    if min_heldout < 1 or max_heldout < min_heldout:
        raise ValueError("need 1 <= min_heldout <= max_heldout")
    ordered = [row for _, row in sorted(((_row_key(seed, r), r) for r in rows), key=lambda p: p[0])]
    n = min(max(round(fraction * len(rows)), min_heldout), max_heldout, len(rows) - 1)
    return ordered[n:], ordered[:n]


def prompt_and_answer(row: dict[str, Any]) -> tuple[Messages | str, Answer]:
    """Chat: (the messages before the reference turn in OpenAI form, that turn's content and
    tool calls). Prompt/completion: (prompt, completion as content)."""
    chat = _chat(row)
    if chat is None:
        return row["prompt"], Answer(row["completion"])
    reference = chat.api[chat.reference]
    calls = tuple(
        ToolCall(c["function"]["name"], c["function"]["arguments"])
        for c in reference.get("tool_calls", ())
    )
    return chat.api[: chat.reference], Answer(reference["content"], calls)


def row_tools(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools a chat row offers (None when it offers none)."""
    chat = _chat(row)
    return chat.tools if chat is not None else None


def prompt_ids(row: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids before the row's reference answer, tokenized exactly as `render_row` does."""
    pieces = _pieces(row, tokenizer)
    return [i for ids, _ in pieces[:-1] for i in ids]
