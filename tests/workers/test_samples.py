"""The agent sample tenant (tool-calling trajectories) and the synthetic pre-training text."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from typing import Any

import pytest

from registry.datasets.validation import DatasetValidator
from workers.devmodel import pretrain_text
from workers.devmodel.build import render_chat
from workers.devmodel.samples import (
    AGENT_SYSTEM,
    AGENT_TOOLS,
    ORDERS_SYSTEM,
    run_agent_tool,
    sample_rows,
    to_jsonl,
)

TOOL_NAMES = {t["function"]["name"] for t in AGENT_TOOLS}


def calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    return message.get("tool_calls") or []


@pytest.mark.parametrize("shift", [False, True])
def test_agent_rows_unique_deterministic_and_valid(shift: bool) -> None:
    rows = sample_rows("agent", 1500, shift=shift)
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == 1500
    assert sample_rows("agent", 50, shift=shift) == rows[:50]
    assert sample_rows("agent", 50, seed=1, shift=shift) != rows[:50]
    validator = DatasetValidator()
    validator.feed(to_jsonl(rows))
    validator.finish()
    report = validator.report
    assert (report.rows, report.duplicates, report.invalid) == (1500, 0, 0)


def test_agent_trajectories_are_openai_shaped() -> None:
    rows = sample_rows("agent", 600)
    for row in rows:
        assert row["tools"] == AGENT_TOOLS
        messages = row["messages"]
        assert messages[0] == {"role": "system", "content": AGENT_SYSTEM}
        assert messages[1]["role"] == "user" and messages[-1]["role"] == "assistant"
        pending: set[str] = set()
        for m in messages[2:]:
            if m["role"] == "tool":
                pending.remove(m["tool_call_id"])  # answers an earlier call
                assert isinstance(json.loads(m["content"]), dict)
            elif calls(m):
                assert not pending and "content" not in m
                ids = [c["id"] for c in calls(m)]
                assert len(set(ids)) == len(ids) and all(re.fullmatch(r"call_\d", i) for i in ids)
                for c in calls(m):
                    assert c["type"] == "function" and c["function"]["name"] in TOOL_NAMES
                    assert isinstance(json.loads(c["function"]["arguments"]), dict)
                pending = set(ids)
    ending = Counter("call" if calls(r["messages"][-1]) else "text" for r in rows)
    assert 0.35 < ending["call"] / len(rows) < 0.65  # held-out evals see both kinds
    assert any(len(calls(m)) == 2 for r in rows for m in r["messages"])  # parallel lookups
    assert any(len(r["messages"]) == 3 for r in rows)  # text answers without any call
    assert any(m["role"] == "tool" for r in rows for m in r["messages"])


def test_agent_arguments_are_copied_from_the_conversation() -> None:
    """An adapter has to copy ids and amounts: each value is in the user turn or a tool result."""
    values: set[str] = set()
    for row in sample_rows("agent", 600) + sample_rows("agent", 200, shift=True):
        seen = row["messages"][1]["content"]
        for m in row["messages"][2:]:
            for c in calls(m):
                for value in json.loads(c["function"]["arguments"]).values():
                    if c["function"]["name"] != "escalate":
                        assert str(value) in seen, (value, seen)
                    values.add(str(value))
            if m["role"] == "tool":
                seen += m["content"]
    assert len(values) > 300  # varied, so nothing can be memorised


def test_agent_shift_changes_the_prompts_not_the_tools() -> None:
    plain = sample_rows("agent", 200)
    shifted = sample_rows("agent", 200, shift=True)

    def mean_user_len(rows: list[dict[str, Any]]) -> float:
        return sum(len(r["messages"][1]["content"]) for r in rows) / len(rows)

    assert mean_user_len(shifted) > 3 * mean_user_len(plain)
    assert all(r["tools"] == AGENT_TOOLS for r in shifted)


def test_run_agent_tool_is_deterministic() -> None:
    first = json.loads(run_agent_tool("lookup_order", {"order_id": "A-40213"}))
    assert first == json.loads(run_agent_tool("lookup_order", {"order_id": "A-40213"}))
    assert first["order_id"] == "A-40213" and {"status", "total"} <= set(first)
    refund = json.loads(run_agent_tool("issue_refund", {"order_id": "A-40213", "amount": 12.5}))
    assert refund["amount"] == 12.5 and refund["refund_id"].startswith("R-")
    assert "ticket" in json.loads(run_agent_tool("escalate", {"reason": "x"}))
    assert "error" in json.loads(run_agent_tool("nope", {}))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="agent"):
        sample_rows("pirates", 3)  # type: ignore[arg-type]


def docs(n: int, seed: int = 0) -> list[str]:
    return list(itertools.islice(pretrain_text.documents(render_chat, seed=seed), n))


def test_pretrain_text_is_deterministic_and_copy_heavy() -> None:
    first = docs(400)
    assert first == docs(400) and first != docs(400, seed=1)
    assert len(set(first)) > 390
    tool_docs = [d for d in first if "<tools>" in d]
    assert 0.2 < len(tool_docs) / len(first) < 0.45
    for doc in tool_docs:
        user, answer = doc.split("<|user|>\n", 1)[1].split("<|end|><|assistant|>\n", 1)
        for call in re.findall(r"<tool_call>(.*?)</tool_call>", answer):
            parsed = json.loads(call)  # hermes-parseable
            for value in parsed["arguments"].values():
                assert str(value) in user  # arguments are copied from the user turn


def test_pretrain_text_avoids_the_sample_tenants_schemas() -> None:
    """The base model learns the shapes, but each tenant's schema is for its LoRA to teach."""
    text = "\n".join(docs(2000))
    assert ORDERS_SYSTEM not in text and '"qty"' not in text
    for name in TOOL_NAMES:
        assert name not in text
