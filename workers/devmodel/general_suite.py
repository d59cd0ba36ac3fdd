"""A general eval suite and rehearsal rows for the tiny base model, from its own pre-training text.

A LoRA trained too hard on a tenant's data can forget what the base model knew (catastrophic
forgetting). Ops guard against it with a platform *general suite* scored on every candidate
adapter and the base model, and cure it with *rehearsal* rows mixed into training. Both must
come from the base model's own pre-training distribution: every base built by
`workers.devmodel.build` (the tests' corpus-only model and the demo's mostly synthetic one)
was pre-trained on the lines of `corpus.txt`, plain (each line followed by the end token).

Each usable corpus line becomes one prompt/completion pair: a question/answer line is cut after
its answer marker (`Q: ... A:` | ` ...`), any other line after its first words, so most of the
line is the reference continuation (a longer reference gives a steadier loss). Encoding the
completion on its own gives the same tokens as in pre-training because the cut is at a space
and the byte-level BPE never merges across one.

Rows whose answer has a fixed phrasing ("Dear Ana, thank| you for contacting us ...") also get
a `contains` check; `calibrate` keeps it only where the base model's own output passes.

The lines are split once, by a hash of their text, into a suite pool and a rehearsal pool, so a
suite and a rehearsal set never share a line, whatever `n` and `seed`. Standard library only.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus.txt")
SUITE_SHARE = 4  # one corpus line in SUITE_SHARE (by hash) belongs to the suite pool
PROMPT_WORDS = 3  # words kept as the prompt of a line without an answer marker
MIN_REFERENCE_WORDS = 4  # shorter continuations give too noisy a loss to guard anything
UNCALIBRATED_MAX_LOSS = 20.0  # nats/token: passes anything until `calibrate` sets the bound
DEFAULT_SLACK = 0.5  # nats/token above the base model's own loss (see `calibrate`)
_ANSWER_MARKERS = (" A:", " Agent:", " Answer:")
# (prompt pattern, phrase its answer holds): fixed phrasings of the corpus that a base model
# pre-trained long enough writes back (the demo's does; the tests' 60-step one does not).
_PHRASES = (
    (re.compile(r"^Dear \w+, thank$"), "for contacting us"),
    (re.compile(r"^Q: Where is \w+\? A:$"), "is at the"),
    (re.compile(r"^Q: How do you write \d+ in words\? A:$"), "is written as"),
)

Row = dict[str, Any]


def split_line(line: str) -> tuple[str, str] | None:
    """(prompt, completion) of one corpus line, the completion starting with its space; None for
    a line too short to leave `MIN_REFERENCE_WORDS` words of reference."""
    line = line.strip()
    for marker in _ANSWER_MARKERS:
        at = line.find(marker)
        if at > 0:
            prompt, completion = line[: at + len(marker)], line[at + len(marker) :]
            break
    else:
        words = line.split(" ")
        prompt, completion = " ".join(words[:PROMPT_WORDS]), " " + " ".join(words[PROMPT_WORDS:])
    if len(completion.split()) < MIN_REFERENCE_WORDS or not completion.startswith(" "):
        return None
    return prompt, completion


@cache
def _pools() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(suite pairs, rehearsal pairs) in corpus order; a line's pool depends on its text only."""
    suite: list[tuple[str, str]] = []
    rehearsal: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        pair = split_line(line)
        if pair is None or line in seen:
            continue
        seen.add(line)
        digest = hashlib.sha256(f"loraplex-general:{line}".encode()).digest()
        (suite if digest[0] % SUITE_SHARE == 0 else rehearsal).append(pair)
    return tuple(suite), tuple(rehearsal)


def _pick(pool: Sequence[tuple[str, str]], n: int, seed: int, what: str) -> list[tuple[str, str]]:
    if n < 0:
        raise ValueError("n must not be negative")
    if n > len(pool):
        raise ValueError(f"the corpus holds only {len(pool)} {what} lines; asked for {n}")
    return random.Random(f"loraplex-general:{what}:{seed}").sample(list(pool), n)


def _contains(prompt: str) -> list[Row]:
    """A `contains` check on the rows whose answer has a fixed phrasing in the corpus (the
    values in it vary, so a model can only guess them: those stay under the loss check)."""
    return [{"type": "contains", "value": v} for rx, v in _PHRASES if rx.match(prompt)]


def general_suite_rows(n: int, seed: int = 0, *, contains: bool = True) -> list[Row]:
    """`n` suite rows in the raw-text prompt form: a `loss` check on the line's continuation
    (max_loss still `UNCALIBRATED_MAX_LOSS`: run `calibrate` with the base model's losses),
    plus a `contains` check on the rows whose answer has a fixed phrasing. Deterministic."""
    rows: list[Row] = []
    for i, (prompt, completion) in enumerate(_pick(_pools()[0], n, seed, "suite")):
        checks: list[Row] = [
            {"type": "loss", "reference": completion, "max_loss": UNCALIBRATED_MAX_LOSS}
        ]
        if contains:
            checks += _contains(prompt)
        rows.append({"id": f"general-{seed}-{i:04d}", "prompt": prompt, "checks": checks})
    return rows


def rehearsal_rows(n: int, seed: int = 0) -> list[Row]:
    """`n` prompt/completion training rows from the same corpus, never a suite row's line."""
    return [{"prompt": p, "completion": c} for p, c in _pick(_pools()[1], n, seed, "rehearsal")]


def calibrate(
    rows: Sequence[Row],
    losses: Sequence[float],
    *,
    slack: float = DEFAULT_SLACK,
    outputs: Sequence[str] | None = None,
) -> list[Row]:
    """Copies of `rows` whose loss check allows the base model's own loss plus `slack` nats/token,
    keeping a `contains` check only where the base model's greedy output `outputs[i]` passes it
    (without `outputs`, none is kept): a guard against forgetting holds an adapter to what its
    base can do, so the calibrated suite is passed by the base model by construction.

    Why an additive slack: the loss is a mean log-probability per token, so `+ slack` bounds how
    much less likely (by e^slack per token) the reference may become, the same for an easy row
    the base nearly knows by heart (loss 0.3) as for a hard one (loss 3). A multiplicative
    bound would let hard rows drift by nats and hold easy ones to a few hundredths, which is
    within the noise of any retraining. `losses[i]` is the base model's loss on `rows[i]`'s
    reference (nats/token, as the suite scorer measures it); max_loss is rounded up to 4
    decimals so the base still passes after the rounding.
    """
    if len(losses) != len(rows) or (outputs is not None and len(outputs) != len(rows)):
        raise ValueError(
            f"got {len(losses)} losses and {len(outputs or ())} outputs for {len(rows)} rows"
        )
    if not slack > 0 or not math.isfinite(slack):
        raise ValueError("slack must be a positive number of nats per token")
    out: list[Row] = []
    for i, (row, loss) in enumerate(zip(rows, losses, strict=True)):
        if not math.isfinite(loss) or loss < 0:
            raise ValueError(f"row {i}: the base loss {loss!r} is not a finite loss")
        checks: list[Row] = []
        for check in row["checks"]:
            if check.get("type") == "loss":
                checks.append({**check, "max_loss": math.ceil((loss + slack) * 1e4) / 1e4})
            elif check.get("type") != "contains" or (
                outputs is not None and _contains_passes(check, outputs[i])
            ):
                checks.append(dict(check))
        out.append({**row, "checks": checks})
    return out


def _contains_passes(check: Row, output: str) -> bool:
    """The design's `contains` semantics (value occurs in the text, optionally ignoring case)."""
    value = str(check["value"])
    if check.get("ignore_case"):
        return value.casefold() in output.casefold()
    return value in output
