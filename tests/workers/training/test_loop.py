from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerFast

from tests.workers.training.conftest import MAX_LEN, Trained, fresh_lora
from tests.workers.training.toy import build_model, capital_rows
from workers.training.data import render_rows
from workers.training.loop import LoopConfig, Progress, mean_loss, train
from workers.training.lora import save_adapter


def test_training_beats_the_untrained_model(trained: Trained) -> None:
    result = trained.result
    assert not result.cancelled and result.steps > 0 and result.train_tokens > 0
    assert result.best_eval_loss is not None
    assert result.best_eval_loss < 0.6 * trained.untrained_loss
    # the model ends with the best eval's weights
    loss, n = mean_loss(trained.model, trained.eval_set, batch_size=4, pad_id=0)
    assert n == sum(e.n_target for e in trained.eval_set)
    assert abs(loss - result.best_eval_loss) < 1e-4
    assert result.tokens_per_second > 0 and result.seconds > 0


def test_early_stopping_restores_the_best(tokenizer: PreTrainedTokenizerFast) -> None:
    rows = render_rows(capital_rows(64, seed=4), tokenizer, MAX_LEN)
    evals: list[Progress] = []
    snapshots: dict[int, list[torch.Tensor]] = {}
    model = fresh_lora()

    def on_eval(p: Progress) -> None:
        evals.append(p)
        snapshots[p.step] = [q.detach().clone() for q in model.parameters() if q.requires_grad]

    # min_delta so large that nothing after the first eval counts as an improvement
    cfg = LoopConfig(
        learning_rate=1e-2, epochs=5, batch_size=8, seed=0, eval_every=2, patience=2, min_delta=1e3
    )
    result = train(model, rows[:48], rows[48:], cfg, pad_id=0, on_eval=on_eval)
    assert result.stopped_early and not result.cancelled
    assert [p.step for p in evals] == [2, 4, 6] and result.steps == 6
    assert result.best_step == 2 and result.best_eval_loss == evals[0].eval_loss
    now = [q for q in model.parameters() if q.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(now, snapshots[2], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(now, snapshots[6], strict=True))


def test_cancel_from_on_step(tokenizer: PreTrainedTokenizerFast) -> None:
    rows = render_rows(capital_rows(200, seed=5), tokenizer, MAX_LEN)
    seen: list[int] = []

    def on_step(p: Progress) -> bool:
        seen.append(p.step)
        assert p.total_steps == 125 and p.eval_loss is None and p.tokens_seen > 0
        return p.step < 3

    started = time.perf_counter()
    cfg = LoopConfig(learning_rate=1e-3, epochs=5, batch_size=8, seed=0)
    result = train(fresh_lora(), rows, rows[:16], cfg, pad_id=0, on_step=on_step)
    assert result.cancelled and not result.stopped_early
    assert result.steps == 3 and seen == [1, 2, 3]
    assert result.best_eval_loss is None  # no eval ran before step 6
    assert time.perf_counter() - started < 10


def _run(tokenizer: PreTrainedTokenizerFast, folder: Path) -> bytes:
    rows = render_rows(capital_rows(60, seed=6), tokenizer, MAX_LEN)
    model = fresh_lora(seed=1, dropout=0.1)  # dropout draws random numbers too
    cfg = LoopConfig(learning_rate=5e-3, epochs=1, batch_size=4, seed=2, eval_every=5)
    train(model, rows[:50], rows[50:], cfg, pad_id=0)
    paths = save_adapter(model, folder, base_model_name="toy/base-v1")
    return paths["adapter_model.safetensors"].read_bytes()


def test_same_seed_same_bytes(tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    torch.manual_seed(123)  # the caller's global RNG state must not matter
    first = _run(tokenizer, tmp_path / "a")
    torch.manual_seed(456)
    second = _run(tokenizer, tmp_path / "b")
    assert first == second
    config_a = (tmp_path / "a" / "adapter_config.json").read_bytes()
    assert config_a == (tmp_path / "b" / "adapter_config.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads(config_a)
    assert config["base_model_name_or_path"] == "toy/base-v1"
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert config["target_modules"] == sorted(config["target_modules"])


def test_saved_adapter_reloads(trained: Trained, tmp_path: Path) -> None:
    save_adapter(trained.model, tmp_path, base_model_name="toy/base-v1")
    from tests.workers.training.conftest import INIT_STD

    reloaded = PeftModel.from_pretrained(build_model(init_std=INIT_STD), tmp_path)
    expected, _ = mean_loss(trained.model, trained.eval_set, batch_size=8, pad_id=0)
    got, _ = mean_loss(reloaded, trained.eval_set, batch_size=8, pad_id=0)
    assert abs(got - expected) < 1e-5
