"""Tool-use rows: rendered like vLLM renders a request, loss on exactly the assistant's text,
tool calls and end markers, references that are calls."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast

from tests.workers.training.test_data import target_runs
from workers.devmodel.build import render_chat
from workers.training.data import IGNORE, prompt_and_answer, prompt_ids, render_row, row_tools
from workers.training.toolcalls import Answer, ToolCall

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its id",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["order_id", "amount"],
            },
        },
    },
]
LOOKUP = '{"order_id": "A-40213"}'
REFUND = '{"order_id":"A-40213","amount":5}'  # compact on purpose: rendered as an object
ROW: dict[str, Any] = {
    "tools": TOOLS,
    "parallel_tool_calls": True,
    "messages": [
        {"role": "system", "content": "Order desk."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! What is your order id?", "weight": 0},
        {"role": "user", "content": "Check A-40213 and refund $5 on it."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": LOOKUP},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "issue_refund", "arguments": REFUND},
                },
            ],
        },  # fmt: skip
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"refund_id": "R-1"}'},
        {"role": "assistant", "content": "The refund is on its way.", "weight": 1},
    ],
}
CALLS = (
    '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-40213"}}</tool_call>'
    '<tool_call>{"name": "issue_refund", "arguments": {"order_id": "A-40213", "amount": 5}}'
    "</tool_call><|end|>"
)
FINAL = "The refund is on its way.<|end|>"


def _as_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arguments as objects, no weights: what the template gets."""
    out = []
    for m in copy.deepcopy(messages):
        m.pop("weight", None)
        for call in m.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        out.append(m)
    return out


def test_labels_cover_exactly_the_assistant_calls_text_and_ends(
    real_tokenizer: PreTrainedTokenizerFast,
) -> None:
    example = render_row(ROW, real_tokenizer, 2048)
    assert example is not None
    text = render_chat(_as_template(ROW["messages"]), row_tools(ROW))  # as vLLM dumps them
    assert real_tokenizer.decode(example.input_ids) == text
    assert target_runs(real_tokenizer, example) == [CALLS, FINAL]
    # token by token: a token is trained iff its characters lie inside one of the two answers
    spans = [(text.index(CALLS), text.index(CALLS) + len(CALLS))]
    spans.append((text.index(FINAL), text.index(FINAL) + len(FINAL)))
    pos = 0
    for token, label in zip(example.input_ids, example.labels, strict=True):
        piece = str(real_tokenizer.decode([token]))
        assert text[pos : pos + len(piece)] == piece
        end = pos + len(piece)
        inside = any(a <= pos and end <= b for a, b in spans)
        assert inside or not any(a < end and pos < b for a, b in spans), "token straddles a span"
        assert label == (token if inside else IGNORE), (piece, label)
        pos = end
    assert pos == len(text)
    # what carries no loss: system (with the tools), user, the weight-0 turn, the tool results
    ignored = "".join(
        str(real_tokenizer.decode([t]))
        for t, label in zip(example.input_ids, example.labels, strict=True)
        if label == IGNORE
    )
    for unseen in (
        "Order desk.", '"name": "issue_refund"', "Check A-40213", "Hello! What is your order id?",
        '{"status": "shipped"}', '{"refund_id": "R-1"}',
    ):  # fmt: skip
        assert unseen in ignored
    assert "<|tool|>" in ignored and "<|user|>" in ignored


def test_rendering_is_what_vllm_renders(real_tokenizer: PreTrainedTokenizerFast) -> None:
    """vLLM dumps each tool through its request model and parses call arguments into objects
    before the template runs; a row renders to the same text."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionToolsParam
    from vllm.renderers.chat_utils import _postprocess_messages

    prompt, _ = prompt_and_answer(ROW)
    assert isinstance(prompt, list)
    conversation: Any = copy.deepcopy(prompt)
    for m in conversation:
        if m["content"] is None:
            m["content"] = ""  # vLLM's string content format
    _postprocess_messages(conversation)  # type: ignore[arg-type]
    tools: Any = [ChatCompletionToolsParam.model_validate(t).model_dump() for t in TOOLS]
    assert row_tools(ROW) == tools
    vllm_text = real_tokenizer.apply_chat_template(
        conversation, tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert real_tokenizer.decode(prompt_ids(ROW, real_tokenizer)) == vllm_text


def test_a_reference_that_calls_tools(real_tokenizer: PreTrainedTokenizerFast) -> None:
    row = {"tools": TOOLS, "messages": ROW["messages"][:5]}
    prompt, answer = prompt_and_answer(row)
    assert prompt == [
        {"role": "system", "content": "Order desk."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! What is your order id?"},  # no weight
        {"role": "user", "content": "Check A-40213 and refund $5 on it."},
    ]
    calls = (ToolCall("lookup_order", LOOKUP), ToolCall("issue_refund", REFUND))
    assert answer == Answer(None, calls)
    ids = prompt_ids(row, real_tokenizer)
    example = render_row(row, real_tokenizer, 2048)
    assert example is not None
    assert example.input_ids[: len(ids)] == ids
    assert real_tokenizer.decode(example.input_ids[len(ids) :]) == CALLS
    assert str(real_tokenizer.decode(ids)).endswith("<|assistant|>\n")


def test_a_row_without_a_trained_turn_trains_nothing(
    real_tokenizer: PreTrainedTokenizerFast,
) -> None:
    row = {"messages": [{"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello", "weight": 0}]}  # fmt: skip
    assert render_row(row, real_tokenizer, 256) is None
    assert prompt_and_answer(row)[1] == Answer("Hello")


def test_developer_renders_as_system(real_tokenizer: PreTrainedTokenizerFast) -> None:
    row = {"messages": [{"role": "developer", "content": "Be brief."},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}]}  # fmt: skip
    ids = prompt_ids(row, real_tokenizer)
    expected = "<|system|>\nBe brief.<|end|><|user|>\nHi<|end|><|assistant|>\n"
    assert real_tokenizer.decode(ids) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["messages"][2].update(weight=2), "weight"),
        (lambda r: r["messages"][1].update(weight=0), "weight"),
        (lambda r: r["messages"][4]["tool_calls"][0]["function"].update(arguments="[1]"), "object"),
        (lambda r: r["messages"][4]["tool_calls"][0]["function"].update(arguments="{x"), "JSON"),
        (lambda r: r["messages"][5].update(content=None), "content"),
        (lambda r: r["messages"][1].update(role="function"), "role"),
        (lambda r: r.update(tools=[{"type": "function"}]), "name"),
    ],
)
def test_bad_tool_rows_are_refused(
    real_tokenizer: PreTrainedTokenizerFast, change: Any, message: str
) -> None:
    row = copy.deepcopy(ROW)
    change(row)
    with pytest.raises(ValueError, match=message):
        render_row(row, real_tokenizer, 2048)


def test_a_template_that_ignores_tools_is_refused(tokenizer: PreTrainedTokenizerFast) -> None:
    """The toy template renders neither `tools` nor `tool_calls`: the backstop says which."""
    text_answer = {"tools": TOOLS, "messages": ROW["messages"][:3]}
    text_answer["messages"][2] = {"role": "assistant", "content": "Hello"}
    with pytest.raises(ValueError, match=r"does not render 'tools': \['lookup_order', 'issue_"):
        render_row(text_answer, tokenizer, 2048)
    with pytest.raises(ValueError, match="does not render assistant tool_calls"):
        render_row(ROW, tokenizer, 2048)
