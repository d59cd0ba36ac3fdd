"""The training task: one job from claim to promotion.

claim (under the adapter's lock) -> load data and base model -> train a PEFT LoRA with a
heartbeat -> check and store the artifact (manifest last) -> score the new version, the base
model and production on the held-out set -> ready -> promotion gate. Transient failures retry
with backoff; a dead worker's job is retried by the reaper once its lease runs out.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError
from sqlalchemy.exc import InterfaceError, OperationalError

from registry.db import after_commit
from registry.storage import StorageError
from registry.tasks import TRAIN
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository
from registry.training.service import add_event
from workers.cache import DigestMismatch, adapter_path, base_model_path, delete_prefix
from workers.context import WorkerContext
from workers.gate import record_and_decide
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs, load_inputs, read_rows, rows_digest
from workers.publish import check_adapter, library_versions, publish
from workers.reaper import retry_delay

log = structlog.get_logger(__name__)
BUSY_RETRY_SECONDS = 5.0
TRANSIENT = (
    OSError,
    ConnectionError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    BotoCoreError,
)


class Cancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


def run_training(ctx: WorkerContext, job_id: str, *, host: str) -> None:
    jid = uuid.UUID(job_id)
    worker = f"{host}/{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    with ctx.session() as session:
        claim = lifecycle.claim(
            session, job_id=jid, worker=worker, lease_seconds=ctx.settings.job_lease_seconds
        )
        if claim.state == "busy":
            after_commit(
                session, lambda: ctx.queue.send(TRAIN, [job_id], countdown=BUSY_RETRY_SECONDS)
            )
        claimed = claim.job if claim.state == "claimed" else None
        inputs = load_inputs(session, claimed) if claimed is not None else None
    if inputs is None:
        log.info("job.not_claimed", job_id=job_id, state=claim.state)
        return
    log.info("job.started", job_id=job_id, worker=worker, attempt=inputs.job.attempts)
    try:
        with Heartbeat(ctx, jid, worker) as heart:
            _pipeline(ctx, inputs, heart)
    except LeaseLost:
        log.warning("job.abandoned", job_id=job_id, reason="lease lost to another worker")
    except Cancelled:
        with ctx.session() as session:
            job = PlatformJobRepository(session).find(jid)
            assert job is not None
            lifecycle.finish_cancelled(session, job=job)
        delete_prefix(ctx.store, inputs.prefix)
        log.info("job.cancelled", job_id=job_id)
    except Exception as exc:
        _failed(ctx, inputs, exc)


def _failed(ctx: WorkerContext, inputs: JobInputs, exc: Exception) -> None:
    retryable = isinstance(exc, TRANSIENT + (StorageError,)) and not isinstance(
        exc, (DigestMismatch, JobInputError)
    )
    error = f"{type(exc).__name__}: {exc}"
    log.error(
        "job.failed", job_id=str(inputs.job.id), error=error, retryable=retryable, exc_info=exc
    )
    with ctx.session() as session:
        job = PlatformJobRepository(session).find(inputs.job.id)
        assert job is not None
        if job.status != "running":
            return
        requeued = lifecycle.fail(session, job=job, error=error, retryable=retryable)
        if requeued:
            delay = retry_delay(ctx, job.attempts)
            after_commit(session, lambda: ctx.queue.send(TRAIN, [str(job.id)], countdown=delay))
    if not requeued:
        delete_prefix(ctx.store, inputs.prefix)


def _event(ctx: WorkerContext, inputs: JobInputs, kind: str, message: str, **data: Any) -> None:
    with ctx.session() as session:
        job = PlatformJobRepository(session).find(inputs.job.id)
        assert job is not None
        add_event(session, job, kind, message, **data)


def _pipeline(ctx: WorkerContext, inputs: JobInputs, heart: Heartbeat) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.training.data import render_rows, split_heldout
    from workers.training.evaluate import score
    from workers.training.loop import LoopConfig, Progress, train
    from workers.training.lora import attach_lora, save_adapter

    cfg, settings = inputs.config, ctx.settings
    rows: list[dict[str, Any]] = []
    for dataset in inputs.train_sets:
        rows += read_rows(ctx.store, dataset)
    if inputs.validation is not None:
        train_rows, heldout_rows = rows, read_rows(ctx.store, inputs.validation)
    else:
        train_rows, heldout_rows = split_heldout(
            rows, seed=cfg["seed"], fraction=settings.heldout_fraction
        )
    heldout_digest = rows_digest(heldout_rows)

    base_dir = base_model_path(inputs.base, settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    torch.manual_seed(cfg["seed"])
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = render_rows(train_rows, tokenizer, cfg["max_seq_length"])
    eval_set = render_rows(heldout_rows, tokenizer, cfg["max_seq_length"])
    if not train_set or not eval_set:
        raise JobInputError(
            f"nothing to train on: {len(train_set)} training and {len(eval_set)} held-out "
            f"examples keep an answer token within max_seq_length={cfg['max_seq_length']}"
        )
    _event(
        ctx,
        inputs,
        "data",
        f"{len(train_set)} training and {len(eval_set)} held-out examples",
        train_rows=len(train_rows),
        heldout_rows=len(heldout_rows),
        heldout_source="validation dataset" if inputs.validation else "seeded split",
    )
    peft_model = attach_lora(
        model,
        rank=cfg["rank"],
        alpha=cfg["alpha"],
        dropout=cfg["dropout"],
        target_modules=cfg["target_modules"],
        seed=cfg["seed"],
    )
    patience = cfg.get("early_stopping_patience", 3)
    loop_cfg = LoopConfig(
        learning_rate=cfg["learning_rate"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
        patience=patience if patience > 0 else 1 << 30,
        max_steps=cfg.get("max_steps"),
    )

    def as_dict(p: Progress) -> dict[str, Any]:
        return {
            "step": p.step,
            "total_steps": p.total_steps,
            "epoch": round(p.epoch, 4),
            "train_loss": round(p.train_loss, 6),
            "eval_loss": None if p.eval_loss is None else round(p.eval_loss, 6),
            "tokens_per_second": round(p.tokens_per_second, 1),
            "tokens_seen": p.tokens_seen,
        }

    def on_step(p: Progress) -> bool:
        heart.update(as_dict(p))
        return heart.keep_going

    def on_eval(p: Progress) -> None:
        _event(ctx, inputs, "eval", f"step {p.step}: eval loss {p.eval_loss:.4f}", **as_dict(p))

    result = train(
        peft_model, train_set, eval_set, loop_cfg, pad_id=pad_id, on_step=on_step, on_eval=on_eval
    )
    if heart.lost:
        raise LeaseLost()
    if result.cancelled:
        raise Cancelled()
    heart.update(
        {"stage": "storing artifact", "step": result.steps, "total_steps": result.total_steps}
    )
    train_metrics = {
        "steps": result.steps,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "stopped_early": result.stopped_early,
        "train_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "seconds": round(result.seconds, 2),
    }
    work = Path(tempfile.mkdtemp(prefix="loraplex-train-"))
    try:
        folder = work / "adapter"
        save_adapter(peft_model, folder, base_model_name=inputs.base.name)
        check_adapter(folder, inputs, settings)
        extra = {
            "job_id": str(inputs.job.id),
            "trigger": inputs.job.trigger,
            "training_config": cfg,
            "data": [
                {
                    "dataset_id": str(d.id),
                    "name": d.name,
                    "version": d.version,
                    "sha256": d.sha256,
                    "rows": d.rows,
                    "role": role,
                }
                for d, role in [(d, "train") for d in inputs.train_sets]
                + ([(inputs.validation, "validation")] if inputs.validation else [])
            ],
            "heldout": {"rows": len(heldout_rows), "sha256": heldout_digest},
            "metrics": train_metrics,
            "libraries": library_versions(),
        }
        manifest, manifest_digest, size = publish(ctx.store, folder, inputs, extra)
        with ctx.session() as session:
            job = PlatformJobRepository(session).find(inputs.job.id)
            assert job is not None
            lifecycle.record_artifact(
                session,
                job=job,
                prefix=inputs.prefix,
                manifest=manifest,
                manifest_digest=manifest_digest,
                size_bytes=size,
            )
        if heart.lost:
            raise LeaseLost()

        heart.update(
            {"stage": "evaluating", "step": result.steps, "total_steps": result.total_steps}
        )
        batch = max(1, min(cfg["batch_size"], 16))
        started = time.monotonic()

        def scored() -> dict[str, float]:
            metrics = score(
                peft_model,
                tokenizer,
                heldout_rows,
                eval_set,
                batch_size=batch,
                pad_id=pad_id,
                max_generate=settings.eval_max_generate,
            )
            return {k: v for k, v in metrics.items() if math.isfinite(v)}

        scores = {"candidate": scored()}
        with peft_model.disable_adapter():
            scores["base_model"] = scored()
        production = inputs.production
        if production is not None and production.base_model_digest == inputs.base.digest:
            assert production.artifact_prefix and production.manifest
            prod_dir = adapter_path(
                ctx.store,
                version_id=str(production.id),
                prefix=production.artifact_prefix,
                files=production.manifest["files"],
                settings=settings,
            )
            peft_model.load_adapter(str(prod_dir), adapter_name="production")
            peft_model.set_adapter("production")
            scores["production"] = scored()
            peft_model.set_adapter("default")
        eval_seconds = round(time.monotonic() - started, 2)
        with ctx.session() as session:
            job = PlatformJobRepository(session).find(inputs.job.id)
            assert job is not None
            if job.status != "running" or job.worker != heart.worker:
                raise LeaseLost()
            inputs.job = job
            decision = record_and_decide(
                session,
                actor=ctx.actor,
                inputs=inputs,
                suite=f"heldout-{heldout_digest[:12]}",
                scores=scores,
                details={"heldout_rows": len(heldout_rows), "heldout_sha256": heldout_digest},
            )
            lifecycle.succeed(
                session,
                job=job,
                result={
                    "training": train_metrics,
                    "scores": scores,
                    "eval_seconds": eval_seconds,
                    "promoted": decision.promote,
                    "decision": decision.reason,
                    "manifest_digest": manifest_digest,
                    "adapter_sha256": manifest["files"]["adapter_model.safetensors"]["sha256"],
                },
            )
        log.info(
            "job.succeeded",
            job_id=str(inputs.job.id),
            promoted=decision.promote,
            steps=result.steps,
            tokens_per_second=round(result.tokens_per_second, 1),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
