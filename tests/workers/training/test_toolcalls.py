"""Reading tool calls out of generated text (as vLLM's hermes parser does) and the tool evals."""

from __future__ import annotations

import copy
from typing import Any

from transformers import PreTrainedTokenizerFast

from registry.datasets.tool_schemas import ToolSchemas
from tests.workers.training.test_tool_rows import ROW, TOOLS
from tests.workers.training.toy import build_model, capital_rows
from workers.training.data import render_rows
from workers.training.evaluate import TOOL_METRICS, answer_metrics, row_kinds, score
from workers.training.toolcalls import ToolCall, args_valid, calls_equal, parse

LOOKUP = '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-40213"}}</tool_call>'
REFUND = (
    '<tool_call>{"name": "issue_refund", "arguments": {"amount": 5.0, "order_id": "A-40213"}}'
    "</tool_call>"
)
OUTPUTS = [
    "Just text.",
    "",
    LOOKUP,
    "Let me check. " + LOOKUP + REFUND,
    LOOKUP + "\n" + REFUND + " trailing words",
    '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "é"}}',  # unclosed
    '<tool_call>{"name": "lookup_order", "arguments": "x"}</tool_call>',
    '<tool_call>{"name": "lookup_order"}</tool_call>',  # no arguments: no calls
    '<tool_call>{"name": 3, "arguments": {}}</tool_call>',
    "<tool_call>[1, 2]</tool_call>",
    "<tool_call></tool_call>",
    LOOKUP + "<tool_call>{broken</tool_call>",
    "text <tool_call>",
]


def test_parse_agrees_with_vllms_hermes_parser(real_tokenizer: PreTrainedTokenizerFast) -> None:
    from vllm.tool_parsers.hermes_tool_parser import Hermes2ProToolParser

    hermes = Hermes2ProToolParser(real_tokenizer)  # type: ignore[arg-type]
    for text in OUTPUTS:
        theirs = hermes.extract_tool_calls(text, None)  # type: ignore[arg-type]
        ours = parse(text)
        assert ours.content == theirs.content, text
        assert [(c.name, c.arguments) for c in ours.calls] == [
            (c.function.name, c.function.arguments) for c in theirs.tool_calls
        ], text
        assert bool(ours.calls) == theirs.tools_called
    assert parse("Let me check. " + LOOKUP).content == "Let me check. "
    assert parse(LOOKUP).content is None


def test_call_comparisons() -> None:
    lookup = ToolCall("lookup_order", '{"order_id": "A-1"}')
    refund = ToolCall("issue_refund", '{"order_id": "A-1", "amount": 5}')
    # JSON values: key order, spacing and 5 vs 5.0 do not matter; parallel calls in any order
    refund2 = ToolCall("issue_refund", '{"amount":5.0,"order_id":"A-1"}')
    assert calls_equal([refund2, lookup], [lookup, refund])
    assert not calls_equal([lookup], [lookup, refund])
    assert not calls_equal([lookup, lookup], [lookup, refund])
    flag = ToolCall("issue_refund", '{"order_id": "A-1", "amount": true}')
    assert not calls_equal([flag], [ToolCall("issue_refund", '{"order_id": "A-1", "amount": 1}')])
    assert not calls_equal([ToolCall("lookup_order", "{bad")], [lookup])
    schemas = ToolSchemas(max_steps=10_000)

    def valid(calls: list[ToolCall], tools: list[dict[str, Any]] = TOOLS) -> bool:
        return args_valid(calls, tools, schemas)

    assert valid([lookup, refund])
    assert not valid([])  # no call at all
    assert not valid([ToolCall("escalate", "{}")])  # not offered
    assert not valid([ToolCall("lookup_order", '"A-1"')])  # not an object
    assert not valid([ToolCall("lookup_order", "{}")])  # misses a required field
    assert not valid([ToolCall("issue_refund", '{"order_id": "A-1", "amount": "5"}')])
    assert not valid([lookup, ToolCall("lookup_order", "{bad")])  # one bad call spoils them
    nonsense = {"name": "lookup_order", "parameters": {"type": "nonsense"}}
    assert not valid([lookup], [{"type": "function", "function": nonsense}])
    assert valid([ToolCall("ping", "{}")], [{"type": "function", "function": {"name": "ping"}}])
    # the upload's step budget holds here too: a schema too costly to check is not "valid"
    assert not args_valid([lookup, refund], TOOLS, ToolSchemas(max_steps=3))


def _rows() -> list[dict[str, Any]]:
    """Two rows whose reference is a call (one parallel), one text answer with tools offered,
    one plain text row."""
    parallel = {"tools": TOOLS, "messages": ROW["messages"][:5]}
    single = copy.deepcopy(parallel)
    single["messages"][4]["tool_calls"] = single["messages"][4]["tool_calls"][:1]
    return [parallel, single, ROW, capital_rows(1, seed=4)[0]]


def test_answer_metrics_by_row_kind() -> None:
    rows = _rows()
    capital = rows[3]["messages"][-1]["content"]
    assert row_kinds(rows) == {"text_rows": 2, "tool_call_rows": 2, "no_call_rows": 1}
    perfect = [REFUND + LOOKUP, LOOKUP, "The refund is on its way.", f" {capital}\n"]
    assert answer_metrics(rows, perfect) == {
        "exact_match": 1.0, "tool_name_accuracy": 1.0, "tool_args_valid": 1.0,
        "tool_call_exact": 1.0, "no_call_accuracy": 1.0,
    }  # fmt: skip
    wrong_value = LOOKUP.replace("A-40213", "A-40214")
    poor = [LOOKUP, wrong_value, LOOKUP, "Paris?"]
    assert answer_metrics(rows, poor) == {
        "exact_match": 0.0,
        "tool_name_accuracy": 0.5,  # a single call where two were due; right name, wrong id
        "tool_args_valid": 1.0,
        "tool_call_exact": 0.0,
        "no_call_accuracy": 0.0,  # called a tool where the answer was text
    }
    bad_args = LOOKUP.replace('"order_id"', '"id"')
    metrics = answer_metrics(rows[:2], ["Sorry.", bad_args])
    assert metrics == {"tool_name_accuracy": 0.5, "tool_args_valid": 0.0, "tool_call_exact": 0.0}
    # plain rows: exactly the metrics they had before, nothing about tools
    plain = capital_rows(2, seed=4)
    assert set(answer_metrics(plain, ["x", "y"])) == {"exact_match"}


def test_score_generates_for_tool_rows(real_tokenizer: PreTrainedTokenizerFast) -> None:
    """Rows with tools flow through generation: prompts rendered with the tools, every metric
    in range (an untrained model)."""
    rows = _rows()
    examples = render_rows(rows, real_tokenizer, 1024)
    assert len(examples) == 4
    model = build_model(vocab_size=len(real_tokenizer), init_std=0.1)
    metrics = score(model, real_tokenizer, rows, examples, batch_size=2, pad_id=0, max_new_tokens=4)
    assert set(TOOL_METRICS) | {"exact_match"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in (*TOOL_METRICS, "exact_match"))
    assert metrics["eval_loss"] > 0
