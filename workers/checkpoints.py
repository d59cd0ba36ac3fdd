"""What a training run leaves while it trains: metrics events, checkpoints at evaluations that
improved on the held-out set, and the saved state of a paused run.

A checkpoint is stored like a version (files, then a manifest with their sha256) under
`<version prefix>/checkpoints/step-<N>/`, so the serving resolver checks and loads it the same
way; the job keeps its last `keep_checkpoints` of them. A paused run's state lies at
`<version prefix>/paused/state.pt` until the job succeeds (or goes with its artifact).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from registry.errors import require
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository, TrainingJobRepository
from registry.training.service import add_event
from workers.cache import delete_prefix
from workers.context import WorkerContext
from workers.inputs import JobInputs
from workers.publish import check_adapter, publish

if TYPE_CHECKING:
    from peft import PeftModel

    from workers.training.loop import Progress
    from workers.training.state import TrainState

log = structlog.get_logger(__name__)
MAX_METRICS_EVENTS = 50  # plus one per eval and the first and last steps


def state_key(inputs: JobInputs) -> str:
    return f"{inputs.prefix}/paused/state.pt"


def metrics_due(p: Progress) -> bool:
    """Step 1, every total/50 steps and the last step; eval steps report from `on_eval`."""
    every = max(1, p.total_steps // MAX_METRICS_EVENTS)
    if p.eval_due:
        return False
    return p.step == 1 or p.step % every == 0 or p.step == p.total_steps


def metrics(p: Progress) -> dict[str, Any]:
    """A `metrics` event's data (OpenAI's names); the held-out ones only at evals."""
    data: dict[str, Any] = {
        "step": p.step,
        "total_steps": p.total_steps,
        "train_loss": round(p.train_loss, 6),
        "train_mean_token_accuracy": _round(p.train_accuracy),
    }
    if p.eval_loss is not None:
        valid = {"loss": round(p.eval_loss, 6), "mean_token_accuracy": _round(p.eval_accuracy)}
        for prefix in ("valid", "full_valid"):  # the whole held-out set is scored each time
            data.update({f"{prefix}_{k}": v for k, v in valid.items()})
    return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def metrics_message(data: dict[str, Any]) -> str:
    text = f"Step {data['step']}/{data['total_steps']}: training loss={data['train_loss']:.4f}"
    if "valid_loss" in data:
        text += f", validation loss={data['valid_loss']:.4f}"
    return text


def record_metrics(ctx: WorkerContext, inputs: JobInputs, p: Progress) -> None:
    data = metrics(p)
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        add_event(session, job, "metrics", metrics_message(data), **data)


def save_checkpoint(
    ctx: WorkerContext, inputs: JobInputs, model: PeftModel, p: Progress, config: dict[str, Any]
) -> None:
    """Store the model's adapter as the checkpoint of step `p.step`; forget the oldest."""
    from workers.training.lora import save_adapter

    prefix = f"{inputs.prefix}/checkpoints/step-{p.step}"
    work = Path(tempfile.mkdtemp(prefix="loraplex-ckpt-"))
    try:
        save_adapter(model, work, base_model_name=inputs.base.name)
        check_adapter(work, inputs, ctx.settings)
        data = metrics(p)
        extra = {
            "job_id": str(inputs.job.id),
            "checkpoint_step": p.step,
            "training_config": config,
            "metrics": data,
        }
        manifest, digest, size = publish(ctx.store, work, inputs, extra, prefix=prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        _, old = lifecycle.record_checkpoint(
            session,
            job=job,
            step=p.step,
            metrics=data,
            prefix=prefix,
            manifest=manifest,
            manifest_digest=digest,
            size_bytes=size,
        )
    for gone in old:  # after the commit: a row never names missing objects
        delete_prefix(ctx.store, gone)
    log.info("job.checkpoint", job_id=str(inputs.job.id), step=p.step, dropped=len(old))


def load_state(ctx: WorkerContext, inputs: JobInputs) -> TrainState | None:
    """The paused run to continue, if any; checkpoints past it (from an attempt that did not
    finish) are dropped, as are all of them when the run starts from scratch."""
    from workers.training.state import TrainState

    state = None
    if inputs.job.resume_key:
        state = TrainState.from_bytes(ctx.store.get_bytes(inputs.job.resume_key))
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        after = state.step if state is not None else 0
        stale = lifecycle.drop_checkpoints(session, job=job, after_step=after)
        if state is not None:
            add_event(session, job, "resumed", f"resumed from step {state.step}", step=after)
    for prefix in stale:
        delete_prefix(ctx.store, prefix)
    return state


def store_pause(
    ctx: WorkerContext, inputs: JobInputs, state: TrainState, *, total: int, worker: str
) -> str:
    """Save the state, then mark the job paused. Returns "paused", or "cancelled"/"lost" when
    the job was cancelled or taken away meanwhile (the state is then of no use)."""
    key = state_key(inputs)
    ctx.store.put_bytes(key, state.to_bytes())
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        job = require(TrainingJobRepository(session, job.tenant_id).get(job.id, lock=True), "job")
        if job.status != "running" or job.worker != worker:
            return "lost"
        if job.cancel_requested:
            return "cancelled"
        lifecycle.pause(session, job=job, resume_key=key, step=state.step, total_steps=total)
    log.info("job.paused", job_id=str(inputs.job.id), step=state.step, key=key)
    return "paused"
