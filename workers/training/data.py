"""Tenant dataset rows -> token examples with a loss mask, held-out split, eval prompts.

Rows are `{"messages": [{"role", "content"}, ...]}` (chat) or `{"prompt", "completion"}`.
Every rendered text segment is tokenized on its own and the ids concatenated, so an example's
ids do not depend on how a BPE merges across a prompt/answer boundary, and the prompt ids used
for generation (`prompt_ids`) are exactly the ids the model saw before the answer in training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

IGNORE = -100
ROLES = frozenset({"system", "user", "assistant"})

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss

    @property
    def n_target(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _messages(row: dict[str, Any]) -> Messages | None:
    """The row's validated chat messages, or None for a prompt/completion row."""
    if "messages" not in row:
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise ValueError("a row needs either 'messages' or string 'prompt' and 'completion'")
        return None
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"each message needs a role in {sorted(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise ValueError("each message needs a string 'content'")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("a chat row needs at least one assistant message")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _render(tokenizer: PreTrainedTokenizerBase, messages: Messages, generation: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    if not isinstance(text, str):
        raise TypeError("apply_chat_template(tokenize=False) did not return a string")
    return text


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, special: bool = False) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=special)) if text else []


def _chat_segments(
    tokenizer: PreTrainedTokenizerBase, messages: Messages
) -> list[tuple[str, bool]]:
    """(text, trained) pieces up to the end of the last assistant turn.

    Trained = what the template adds for an assistant message after the generation prompt:
    its content and the end-of-turn marker(s).
    """
    segments: list[tuple[str, bool]] = []
    done = ""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    for i in range(last + 1):
        if messages[i]["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation=True)
        full = _render(tokenizer, messages[: i + 1], generation=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError(
                "the chat template is not incremental: rendering messages[:i] with "
                "add_generation_prompt=True must be a prefix of rendering messages[:i+1] "
                f"(fails at message {i})"
            )
        segments.append((prompt[len(done) :], False))
        segments.append((full[len(prompt) :], True))
        done = full
    return segments


def _pieces(
    row: dict[str, Any], tokenizer: PreTrainedTokenizerBase
) -> list[tuple[list[int], bool]]:
    messages = _messages(row)
    if messages is None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token to end a completion with")
        return [
            (_encode(tokenizer, row["prompt"], special=True), False),
            (_encode(tokenizer, row["completion"]) + [int(tokenizer.eos_token_id)], True),
        ]
    return [
        (_encode(tokenizer, text), trained) for text, trained in _chat_segments(tokenizer, messages)
    ]


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


def prompt_and_answer(row: dict[str, Any]) -> tuple[Messages | str, str]:
    """Chat: (messages before the last assistant message, its content).

    Prompt/completion: (prompt, completion).
    """
    messages = _messages(row)
    if messages is None:
        return row["prompt"], row["completion"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def prompt_ids(row: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids before the row's (last) answer, tokenized exactly as `render_row` does."""
    pieces = _pieces(row, tokenizer)
    return [i for ids, _ in pieces[:-1] for i in ids]
