"""A plain torch training loop for LoRA adapters, tuned for CPU.

Why not `transformers.Trainer`: we need cancellation between steps, our own early stopping and
progress callbacks, and CPU throughput. Speed comes from (1) length-bucketed batches inside a
seeded shuffle, so little compute goes to padding, and (2) running the LM head and the loss only
at target positions (chat prompts are often most of the tokens): the decoder's last hidden
states are gathered where a label exists, then projected to the vocabulary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn

from workers.training.data import IGNORE, Example
from workers.training.state import TrainState

BUCKET_BATCHES = 50  # examples are length-sorted within windows of this many batches
PAUSE: Final = "pause"  # what `on_step` returns to stop the run with its state saved
StepAnswer = bool | Literal["pause"] | None


@dataclass(frozen=True)
class LoopConfig:
    learning_rate: float
    epochs: int
    batch_size: int
    seed: int
    eval_every: int | None = None  # steps; None -> about 4 evals per epoch
    patience: int = 3  # evals without improvement before stopping early
    min_delta: float = 1e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("need learning_rate > 0, epochs >= 1 and batch_size >= 1")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError("eval_every must be >= 1")
        if self.patience < 1 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("need patience >= 1 and 0 <= warmup_ratio < 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: float
    train_loss: float
    eval_loss: float | None
    tokens_per_second: float
    tokens_seen: int
    train_accuracy: float | None = None  # token accuracy of this step's batch
    eval_accuracy: float | None = None  # token accuracy on the held-out set (evals only)
    improved: bool = False  # this eval is the new best (its weights are the model's now)
    eval_due: bool = False  # (on_step) an eval of this step follows


@dataclass(frozen=True)
class LoopResult:
    steps: int
    total_steps: int
    best_eval_loss: float | None
    best_step: int
    stopped_early: bool
    cancelled: bool
    train_tokens: int  # non-pad input tokens of the steps taken
    seconds: float  # wall time of the whole call, evals included
    tokens_per_second: float  # train_tokens / seconds spent in training steps (evals excluded)
    paused: bool = False
    state: TrainState | None = None  # a paused run's full state: `train(..., resume=state)`


@dataclass(frozen=True)
class _Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None  # None when no row is padded
    n_tokens: int


def _collate(examples: list[Example], pad_id: int, device: torch.device | None = None) -> _Batch:
    """Right-pad to the longest row of the batch (on the model's device)."""
    lengths = [len(e.input_ids) for e in examples]
    width = max(lengths)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : lengths[row]] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, : lengths[row]] = torch.tensor(e.labels, dtype=torch.long)
    mask = None
    if min(lengths) != width:
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    if device is not None and device.type != "cpu":
        ids, labels = ids.to(device), labels.to(device)
        mask = mask.to(device) if mask is not None else None
    return _Batch(ids, labels, mask, sum(lengths))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batch_order(lengths: list[int], batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """A seeded shuffle, length-sorted within windows, cut into batches in a shuffled order."""
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    window = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(perm), window):
        chunk = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def _causal_lm(model: nn.Module) -> nn.Module:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def _split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(decoder, lm_head) when logits are exactly lm_head(decoder(...)), else None."""
    lm = _causal_lm(model)
    config = getattr(lm, "config", None)
    decoder = getattr(lm, "base_model", lm)
    head = getattr(lm, "lm_head", None)
    if decoder is lm or head is None or config is None:
        return None
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    return decoder, head


def _loss_sum(model: nn.Module, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed next-token loss over target positions, number of target positions, how many of
    them the argmax prediction gets right)."""
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE
    split = _split_head(model)
    if split is None:
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits[:, :-1][keep]
    else:
        decoder, head = split
        hidden = decoder(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).last_hidden_state
        logits = head(hidden[:, :-1][keep])
    wanted = targets[keep]
    loss = F.cross_entropy(logits.float(), wanted, reduction="sum")
    with torch.no_grad():
        correct = (logits.argmax(dim=-1) == wanted).sum()
    return loss, keep.sum(), correct


@dataclass(frozen=True)
class SetScore:
    loss: float  # mean next-token loss per target token
    accuracy: float  # share of target tokens whose argmax prediction is the label
    n_tokens: int


def score_set(
    model: nn.Module, examples: list[Example], *, batch_size: int, pad_id: int
) -> SetScore:
    """Mean token loss and token accuracy over `examples` (eval mode, no gradients)."""
    if not examples:
        raise ValueError("no examples to score")
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = torch.zeros((), dtype=torch.long)
    right = torch.zeros((), dtype=torch.long)
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = [examples[i] for i in order[start : start + batch_size]]
                loss, n, correct = _loss_sum(model, _collate(chunk, pad_id, _device(model)))
                total += loss.double().cpu()
                count += n.cpu()
                right += correct.cpu()
    finally:
        model.train(was_training)
    n_tokens = int(count)
    if not n_tokens:
        return SetScore(math.nan, math.nan, 0)
    return SetScore(float(total) / n_tokens, int(right) / n_tokens, n_tokens)


def mean_loss(
    model: nn.Module, examples: list[Example], *, batch_size: int, pad_id: int
) -> tuple[float, int]:
    """Mean next-token loss per target token over `examples`, and the number of target tokens."""
    score = score_set(model, examples, batch_size=batch_size, pad_id=pad_id)
    return score.loss, score.n_tokens


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then linear decay; `step` is 0-based."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _optimizer(params: list[nn.Parameter], cfg: LoopConfig) -> torch.optim.Optimizer:
    lr, decay = cfg.learning_rate, cfg.weight_decay
    try:  # one fused kernel for all LoRA tensors; CPU support depends on the torch build
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, foreach=True)


def _fingerprint(cfg: LoopConfig, total: int, n_train: int, n_eval: int) -> dict[str, int]:
    return {
        "total_steps": total,
        "train_examples": n_train,
        "eval_examples": n_eval,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
    }


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _fresh_state(fingerprint: dict[str, int]) -> TrainState:
    """Where a new run starts; the generators are seeded by the caller."""
    empty = torch.empty(0, dtype=torch.uint8)
    return TrainState(
        step=0, tokens=0, train_seconds=0.0, epoch_order=[], position=0, generator=empty,
        cpu_rng=empty, params={}, optimizer={}, best=None, best_step=0, best_state=None,
        bad_evals=0, fingerprint=fingerprint,
    )  # fmt: skip


def _restore(
    resume: TrainState,
    named: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    fingerprint: dict[str, int],
) -> None:
    if resume.fingerprint != fingerprint:
        raise ValueError(
            f"the saved state was trained with {resume.fingerprint}, this run has {fingerprint}: "
            "resume with the same data and config"
        )
    if resume.params.keys() != named.keys():
        raise ValueError("the saved state's parameters are not this model's LoRA parameters")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(resume.params[name])
    optimizer.load_state_dict(resume.optimizer)
    gen.set_state(resume.generator)


def train(
    model: PeftModel,
    train_set: list[Example],
    eval_set: list[Example],
    cfg: LoopConfig,
    *,
    pad_id: int,
    on_step: Callable[[Progress], StepAnswer] | None = None,
    on_eval: Callable[[Progress], None] | None = None,
    resume: TrainState | None = None,
) -> LoopResult:
    """Train the model's trainable (LoRA) parameters; end with the weights of the best eval.

    `on_step` runs after every optimizer step; returning False cancels the run right there,
    returning `PAUSE` stops it after this step (and its eval, if one is due) with the result's
    `state` holding everything needed to continue: `train(..., resume=state)` on a fresh model
    with the same data and config. A paused run's model keeps its last weights, not the best.
    `on_eval` runs after each eval; `Progress.improved` says whether it is the new best.
    With an empty `eval_set` nothing is evaluated and the last weights are kept.
    Same data, config, seed and thread count on CPU -> bitwise identical weights, paused and
    resumed or not.
    """
    if not train_set:
        raise ValueError("empty training set")
    named = _trainable(model)
    params = list(named.values())
    if not params:
        raise ValueError("the model has no trainable parameters")
    per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warmup = math.ceil(total * cfg.warmup_ratio)
    eval_every = cfg.eval_every or max(1, per_epoch // 4)
    lengths = [len(e.input_ids) for e in train_set]
    optimizer = _optimizer(params, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    fingerprint = _fingerprint(cfg, total, len(train_set), len(eval_set))
    if resume is not None:
        _restore(resume, named, optimizer, gen, fingerprint)
    st = replace(resume) if resume is not None else _fresh_state(fingerprint)

    started = time.perf_counter()
    stopped = cancelled = paused = False

    def eval_due() -> bool:
        return bool(eval_set) and (st.step % eval_every == 0 or st.step == total)

    def progress(loss: float, accuracy: float, score: SetScore | None = None) -> Progress:
        tps = st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0
        return Progress(
            st.step, total, st.step / per_epoch, loss, score.loss if score else None, tps,
            st.tokens, accuracy, score.accuracy if score else None,
            improved=score is not None and st.best_step == st.step,
            eval_due=score is None and eval_due(),
        )  # fmt: skip

    was_training = model.training
    device = _device(model)
    with torch.random.fork_rng(devices=[]):
        if resume is None:
            torch.manual_seed(cfg.seed)  # LoRA dropout draws from the global generator
        else:
            torch.set_rng_state(resume.cpu_rng)
        model.train()
        while st.step < total and not (stopped or cancelled or paused):
            if st.position >= len(st.epoch_order):  # a new epoch
                st.epoch_order = _batch_order(lengths, cfg.batch_size, gen)
                st.position = 0
            idx = st.epoch_order[st.position]
            st.position += 1
            t0 = time.perf_counter()
            batch = _collate([train_set[i] for i in idx], pad_id, device)
            loss_sum, n, correct = _loss_sum(model, batch)
            loss = loss_sum / n.clamp(min=1)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * _lr_factor(st.step, warmup, total)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            st.step += 1
            st.tokens += batch.n_tokens
            train_loss = float(loss.detach())
            train_accuracy = int(correct) / max(1, int(n))
            st.train_seconds += time.perf_counter() - t0

            answer = on_step(progress(train_loss, train_accuracy)) if on_step else True
            if answer is False:
                cancelled = True
                break
            if eval_due():
                score = score_set(model, eval_set, batch_size=cfg.batch_size, pad_id=pad_id)
                if st.best is None or score.loss < st.best - cfg.min_delta:
                    st.best, st.best_step, st.bad_evals = score.loss, st.step, 0
                    st.best_state = [p.detach().clone() for p in params]
                else:
                    st.bad_evals += 1
                    stopped = st.bad_evals >= cfg.patience
                if on_eval is not None:
                    on_eval(progress(train_loss, train_accuracy, score))
            paused = answer == PAUSE and not stopped and st.step < total

        if paused:
            st.generator = gen.get_state()
            st.cpu_rng = torch.get_rng_state()
            st.params = {name: p.detach().clone() for name, p in named.items()}
            st.optimizer = optimizer.state_dict()
        else:
            if st.best_state is not None and st.best_step != st.step:
                with torch.no_grad():
                    for p, saved in zip(params, st.best_state, strict=True):
                        p.copy_(saved)
            if st.best is None:
                st.best_step = st.step
    model.train(was_training)

    seconds = time.perf_counter() - started
    return LoopResult(
        steps=st.step,
        total_steps=total,
        best_eval_loss=st.best,
        best_step=st.best_step,
        stopped_early=stopped,
        cancelled=cancelled,
        train_tokens=st.tokens,
        seconds=seconds,
        tokens_per_second=st.tokens / st.train_seconds if st.train_seconds > 0 else 0.0,
        paused=paused,
        state=st if paused else None,
    )
