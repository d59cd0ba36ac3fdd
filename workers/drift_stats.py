"""Drift statistics between an adapter's training prompts and its live prompts. Pure Python.

Text is what the users sent: the user turns of a chat (or the `prompt`), lower-cased and split
into words and punctuation; every run of digits counts as one token `<num>`, so order numbers
and quantities do not read as new vocabulary.

* prompt_length_psi: Population Stability Index of the prompt length in tokens, over bins cut
  at the training prompts' deciles (fixed by the training data, so values compare over time).
* unigram_jsd: Jensen-Shannon divergence (base 2, 0..1) of the token unigram distributions.
* oov_rate: share of live tokens that never occur in the training prompts.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\d+|[^\W\d_]+|[^\w\s]")
NUM = "<num>"
BINS = 10
EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite


def prompt_text(record: dict[str, Any]) -> str:
    if isinstance(record.get("messages"), list):
        return "\n".join(
            str(m.get("content", ""))
            for m in record["messages"]
            if isinstance(m, dict) and m.get("role") == "user"
        )
    prompt = record.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def tokens(text: str) -> list[str]:
    return [NUM if t[0].isdigit() else t for t in _TOKEN.findall(text.lower())]


@dataclass(frozen=True)
class Profile:
    """What a set of prompts looks like: length per prompt and token counts."""

    lengths: list[int]
    counts: Counter[str]

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Profile:
        lengths: list[int] = []
        counts: Counter[str] = Counter()
        for record in records:
            toks = tokens(prompt_text(record))
            lengths.append(len(toks))
            counts.update(toks)
        return cls(lengths, counts)

    @property
    def size(self) -> int:
        return len(self.lengths)


def decile_edges(values: list[int], bins: int = BINS) -> list[float]:
    """Inner bin edges at the quantiles of `values` (duplicates merged: fewer, wider bins)."""
    ordered = sorted(values)
    n = len(ordered)
    return sorted({float(ordered[min(n - 1, (n * i) // bins)]) for i in range(1, bins)})


def shares(values: list[int], edges: list[float]) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_left(edges, v)] += 1  # bin i holds edges[i-1] < v <= edges[i]
    total = max(1, len(values))
    return [c / total for c in counts]


def psi(expected: list[float], actual: list[float]) -> float:
    out = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        out += (a - e) * math.log(a / e)
    return out


def js_divergence(p: Counter[str], q: Counter[str]) -> float:
    p_total, q_total = sum(p.values()), sum(q.values())
    if not p_total or not q_total:
        return 0.0
    out = 0.0
    for token in p.keys() | q.keys():
        a, b = p.get(token, 0) / p_total, q.get(token, 0) / q_total
        m = (a + b) / 2
        if a:
            out += 0.5 * a * math.log2(a / m)
        if b:
            out += 0.5 * b * math.log2(b / m)
    return max(0.0, min(1.0, out))


def oov_rate(reference: Counter[str], live: Counter[str]) -> float:
    total = sum(live.values())
    if not total:
        return 0.0
    return sum(n for token, n in live.items() if token not in reference) / total


def compare(reference: Profile, live: Profile) -> dict[str, float]:
    edges = decile_edges(reference.lengths) if reference.lengths else []
    return {
        "prompt_length_psi": psi(shares(reference.lengths, edges), shares(live.lengths, edges)),
        "unigram_jsd": js_divergence(reference.counts, live.counts),
        "oov_rate": oov_rate(reference.counts, live.counts),
    }


def describe(reference: Profile, live: Profile) -> dict[str, Any]:
    """How the numbers were made, stored beside them."""
    edges = decile_edges(reference.lengths) if reference.lengths else []
    return {
        "length_bin_edges": edges,
        "reference_prompts": reference.size,
        "reference_tokens": sum(reference.counts.values()),
        "live_tokens": sum(live.counts.values()),
        "live_mean_length": (sum(live.lengths) / live.size) if live.size else 0.0,
        "reference_mean_length": (sum(reference.lengths) / reference.size)
        if reference.size
        else 0.0,
    }
