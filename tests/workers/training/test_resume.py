"""Pause and resume: a run stopped at any step, its state through bytes and a fresh model,
ends with bitwise the weights of a run that never stopped."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from tests.workers.training.conftest import MAX_LEN, fresh_lora
from tests.workers.training.toy import capital_rows
from workers.training.data import Example, render_rows
from workers.training.loop import PAUSE, LoopConfig, LoopResult, Progress, StepAnswer, train
from workers.training.state import TrainState

# 32 rows / batch 4 = 8 steps per epoch, 2 epochs; evals at 3, 6, 9, 12, 15, 16
CFG = LoopConfig(learning_rate=5e-3, epochs=2, batch_size=4, seed=2, eval_every=3, patience=10)


@pytest.fixture(scope="module")
def data(tokenizer: PreTrainedTokenizerFast) -> tuple[list[Example], list[Example]]:
    rows = render_rows(capital_rows(40, seed=6), tokenizer, MAX_LEN)
    return rows[:32], rows[32:]


def _weights(result_model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result_model.parameters() if p.requires_grad]


def _run(
    data: tuple[list[Example], list[Example]], pause_at: tuple[int, ...]
) -> tuple[list[torch.Tensor], LoopResult, list[Progress], list[Progress]]:
    """Train to the end, pausing at each step of `pause_at`: every pause goes through bytes
    and continues on a fresh model (the global RNG scrambled in between)."""
    steps: list[Progress] = []
    evals: list[Progress] = []

    def on_step(p: Progress) -> StepAnswer:
        steps.append(p)
        return PAUSE if p.step in pause_at else True

    state: TrainState | None = None
    pauses = 0
    while True:
        model = fresh_lora(seed=1, dropout=0.1)  # dropout draws from the global generator
        torch.manual_seed(1000 + pauses)
        result = train(
            model, *data, CFG, pad_id=0, on_step=on_step, on_eval=evals.append, resume=state
        )
        if not result.paused:
            return _weights(model), result, steps, evals
        assert result.state is not None and result.state.step == pause_at[pauses]
        state = TrainState.from_bytes(result.state.to_bytes())
        pauses += 1


@pytest.fixture(scope="module")
def reference(
    data: tuple[list[Example], list[Example]],
) -> tuple[list[torch.Tensor], LoopResult, list[Progress], list[Progress]]:
    return _run(data, ())


@pytest.mark.parametrize(
    "pause_at",
    [(2,), (8,), (6,), (1, 9, 15)],
    ids=["mid-epoch", "epoch-boundary", "after-eval", "three-times"],
)
def test_paused_and_resumed_equals_uninterrupted(
    data: tuple[list[Example], list[Example]],
    reference: tuple[list[torch.Tensor], LoopResult, list[Progress], list[Progress]],
    pause_at: tuple[int, ...],
) -> None:
    weights, result, steps, evals = _run(data, pause_at)
    ref_weights, ref_result, ref_steps, ref_evals = reference
    assert all(torch.equal(a, b) for a, b in zip(weights, ref_weights, strict=True))
    assert [p.step for p in steps] == list(range(1, 17))
    assert [p.train_loss for p in steps] == [p.train_loss for p in ref_steps]
    assert [(p.step, p.eval_loss, p.improved) for p in evals] == [
        (p.step, p.eval_loss, p.improved) for p in ref_evals
    ]
    assert result.steps == ref_result.steps == 16 and not result.paused
    assert result.best_step == ref_result.best_step
    assert result.best_eval_loss == ref_result.best_eval_loss
    assert result.train_tokens == ref_result.train_tokens


def test_accuracy_and_improvement_are_reported(
    reference: tuple[list[torch.Tensor], LoopResult, list[Progress], list[Progress]],
) -> None:
    _, result, steps, evals = reference
    assert all(p.train_accuracy is not None and 0.0 <= p.train_accuracy <= 1.0 for p in steps)
    assert all(p.eval_accuracy is None and not p.improved for p in steps)
    assert [p.step for p in evals] == [3, 6, 9, 12, 15, 16]
    assert all(p.eval_accuracy is not None and 0.0 <= p.eval_accuracy <= 1.0 for p in evals)
    best = None
    for p in evals:
        assert p.eval_loss is not None
        assert p.improved == (best is None or p.eval_loss < best - CFG.min_delta)
        best = p.eval_loss if p.improved else best
    assert evals[0].improved and result.best_eval_loss == best


def test_a_pause_on_the_last_step_just_finishes(
    data: tuple[list[Example], list[Example]],
) -> None:
    result = train(fresh_lora(), *data, CFG, pad_id=0, on_step=lambda p: PAUSE)
    assert result.steps == 1 and result.paused and result.state is not None
    last = train(fresh_lora(), *data, CFG, pad_id=0, on_step=lambda p: p.step < 16 or PAUSE)
    assert last.steps == 16 and not last.paused and last.state is None


def test_resume_refuses_other_data_or_config(data: tuple[list[Example], list[Example]]) -> None:
    result = train(fresh_lora(), *data, CFG, pad_id=0, on_step=lambda p: PAUSE)
    assert result.state is not None
    with pytest.raises(ValueError, match="same data and config"):
        train(fresh_lora(), data[0][:28], data[1], CFG, pad_id=0, resume=result.state)
    with pytest.raises(ValueError, match="not a training state"):
        TrainState.from_bytes(torch_bytes({"format": 99}))


def torch_bytes(obj: object) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
