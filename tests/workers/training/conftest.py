from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerFast

from tests.workers.training.toy import build_model, build_tokenizer, capital_rows, chat_text
from workers.training.data import Example, render_rows, split_heldout
from workers.training.loop import LoopConfig, LoopResult, mean_loss, train
from workers.training.lora import attach_lora

MAX_LEN = 96
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
INIT_STD = 0.1  # frozen random lm_head: at 0.02 the logits cannot get sharp enough to learn


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """These models are tiny: a second OpenMP thread buys little, and when another process
    holds a core the threads' barriers make each step many times slower."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(chat_text(capital_rows(200) + capital_rows(60, as_json=True)))


@pytest.fixture(scope="session")
def real_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny base model's tokenizer and chat template (built from the same text as the
    model's, in a second or two; the model's weights are not needed)."""
    from workers.devmodel.build import BuildOptions, tokenizer_text, train_tokenizer, wrap_tokenizer

    text = tokenizer_text()
    options = BuildOptions()
    return wrap_tokenizer(
        train_tokenizer(text, options.vocab_size), options.max_position_embeddings
    )


def fresh_lora(seed: int = 0, dropout: float = 0.0) -> PeftModel:
    model = build_model(seed=seed, init_std=INIT_STD)
    return attach_lora(model, rank=8, alpha=16, dropout=dropout, target_modules=TARGETS, seed=seed)


@dataclass
class Trained:
    model: PeftModel
    train_rows: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    eval_set: list[Example]
    untrained_loss: float
    result: LoopResult


@pytest.fixture(scope="session")
def trained(tokenizer: PreTrainedTokenizerFast) -> Trained:
    """One real training run shared by the tests that need a tuned adapter."""
    train_rows, heldout = split_heldout(capital_rows(240, seed=3), seed=0, fraction=0.15)
    train_set = render_rows(train_rows, tokenizer, MAX_LEN)
    eval_set = render_rows(heldout, tokenizer, MAX_LEN)
    model = fresh_lora()
    untrained, _ = mean_loss(model, eval_set, batch_size=16, pad_id=0)
    cfg = LoopConfig(learning_rate=1e-2, epochs=4, batch_size=8, seed=0, patience=4)
    result = train(model, train_set, eval_set, cfg, pad_id=0)
    return Trained(model, train_rows, heldout, eval_set, untrained, result)
