"""The general suite and rehearsal generators: deterministic, valid uploads, never overlapping."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from registry.datasets.validation import DatasetValidator
from registry.suites.validation import SuiteValidator
from workers.devmodel import general_suite as gs
from workers.devmodel.samples import to_jsonl


def _validate(validator: DatasetValidator, rows: list[dict[str, Any]]) -> Any:
    """The validator's report on `rows` as one upload."""
    validator.feed(to_jsonl(rows))
    validator.finish()
    return validator.report


def test_same_arguments_give_the_same_rows_and_seeds_differ() -> None:
    assert gs.general_suite_rows(40, seed=3) == gs.general_suite_rows(40, seed=3)
    assert gs.rehearsal_rows(40, seed=3) == gs.rehearsal_rows(40, seed=3)
    assert gs.general_suite_rows(40, seed=3) != gs.general_suite_rows(40, seed=4)
    assert gs.rehearsal_rows(40, seed=3) != gs.rehearsal_rows(40, seed=4)


def test_suite_rows_are_a_valid_prompt_suite_upload() -> None:
    rows = gs.general_suite_rows(200, seed=0)
    report = _validate(SuiteValidator(), rows)
    assert report.errors == [] and report.rows == 200 and report.duplicates == 0
    assert report.format == "prompt"
    counts = report.ordered_counts()
    assert counts["loss"] == 200 and 0 < counts["contains"] < 200
    assert len({r["id"] for r in rows}) == 200
    for row in rows:
        (loss,) = [c for c in row["checks"] if c["type"] == "loss"]
        assert loss["max_loss"] == gs.UNCALIBRATED_MAX_LOSS
        assert loss["reference"].startswith(" ")
        assert len(loss["reference"].split()) >= gs.MIN_REFERENCE_WORDS


def test_rehearsal_rows_are_a_valid_prompt_completion_dataset() -> None:
    rows = gs.rehearsal_rows(300, seed=0)
    report = _validate(DatasetValidator(), rows)
    assert report.errors == [] and report.rows == 300
    assert all(set(r) == {"prompt", "completion"} for r in rows)


def test_suite_and_rehearsal_never_share_a_corpus_line() -> None:
    suite_pool, rehearsal_pool = gs._pools()
    suite = {
        r["prompt"] + r["checks"][0]["reference"]
        for r in gs.general_suite_rows(len(suite_pool), seed=0)
    }
    rehearsal = {r["prompt"] + r["completion"] for r in gs.rehearsal_rows(len(rehearsal_pool))}
    assert len(suite) == len(suite_pool) and len(rehearsal) == len(rehearsal_pool)
    assert suite.isdisjoint(rehearsal)
    # about one usable line in SUITE_SHARE goes to the suite
    share = len(suite) / (len(suite) + len(rehearsal))
    assert abs(share - 1 / gs.SUITE_SHARE) < 0.05


def test_asking_for_more_rows_than_the_pool_holds_says_how_many_there_are() -> None:
    n = len(gs._pools()[0])
    with pytest.raises(ValueError, match=f"only {n} suite lines"):
        gs.general_suite_rows(n + 1)
    with pytest.raises(ValueError, match="negative"):
        gs.rehearsal_rows(-1)


@pytest.mark.parametrize(
    ("line", "pair"),
    [
        ("Q: Where is Tara? A: Tara is at the post office.",
         ("Q: Where is Tara? A:", " Tara is at the post office.")),
        ("Customer: Hello, I cannot log in. Agent: Thanks for waiting. I sent a link.",
         ("Customer: Hello, I cannot log in. Agent:", " Thanks for waiting. I sent a link.")),
        ("Henry works as a engineer and likes reading on weekends.",
         ("Henry works as", " a engineer and likes reading on weekends.")),
        ("Diego cooked salad for five.", None),  # 2 words of reference: too noisy a loss
        ("Q: Why? A: Because.", None),
    ],
)  # fmt: skip
def test_split_line_cuts_after_the_answer_marker_or_the_first_words(
    line: str, pair: tuple[str, str] | None
) -> None:
    assert gs.split_line(line) == pair


def test_the_cut_keeps_the_pretraining_tokens() -> None:
    """Prompt ids + completion ids (each encoded alone, as training does) are the line's ids."""
    from workers.devmodel.build import CORPUS, train_tokenizer

    tokenizer = train_tokenizer(CORPUS.read_text(encoding="utf-8"), 600)
    for row in gs.rehearsal_rows(200, seed=1) + [
        {"prompt": r["prompt"], "completion": r["checks"][0]["reference"]}
        for r in gs.general_suite_rows(100, seed=1)
    ]:
        whole = tokenizer.encode(row["prompt"] + row["completion"]).ids
        parts = tokenizer.encode(row["prompt"]).ids + tokenizer.encode(row["completion"]).ids
        assert parts == whole, row


def _contains_row() -> dict[str, Any]:
    return next(r for r in gs.general_suite_rows(300) if len(r["checks"]) == 2)


def test_calibrate_sets_max_loss_from_the_base_loss_plus_slack() -> None:
    rows = gs.general_suite_rows(3, seed=0)
    before = copy.deepcopy(rows)
    out = gs.calibrate(rows, [0.3, 2.71828, 0.0], slack=0.5)
    assert rows == before  # the input is left as it was
    assert [r["checks"][0]["max_loss"] for r in out] == [0.8, 3.2183, 0.5]
    for row, loss in zip(out, [0.3, 2.71828, 0.0], strict=True):
        assert loss <= row["checks"][0]["max_loss"] <= loss + 0.5 + 1e-4


def test_calibrate_keeps_a_contains_check_only_where_the_base_output_passes() -> None:
    row = _contains_row()
    value = row["checks"][1]["value"]
    assert len(gs.calibrate([row], [1.0])[0]["checks"]) == 1  # no outputs: not kept
    kept = gs.calibrate([row], [1.0], outputs=[f" well, {value} indeed"])[0]
    assert kept["checks"][1] == {"type": "contains", "value": value}
    assert len(gs.calibrate([row], [1.0], outputs=[" something else"])[0]["checks"]) == 1


@pytest.mark.parametrize(
    ("losses", "slack", "outputs", "message"),
    [
        ([1.0], 0.5, None, "1 losses and 0 outputs for 2 rows"),
        ([1.0, 1.0], 0.5, ["x"], "2 losses and 1 outputs for 2 rows"),
        ([1.0, 1.0], 0.0, None, "slack must be a positive"),
        ([1.0, 1.0], math.inf, None, "slack must be a positive"),
        ([1.0, math.nan], 0.5, None, "row 1: the base loss nan"),
        ([-0.1, 1.0], 0.5, None, "row 0: the base loss -0.1"),
    ],
)
def test_calibrate_refuses_what_it_cannot_calibrate(
    losses: list[float], slack: float, outputs: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gs.calibrate(gs.general_suite_rows(2), losses, slack=slack, outputs=outputs)
