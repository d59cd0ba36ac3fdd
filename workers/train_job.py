"""The training task: one job from claim to promotion.

claim (under the adapter's lock) -> load data and base model -> train a PEFT LoRA with a
heartbeat -> check and store the artifact (manifest last) -> score the new version, the base
model and production on the held-out set -> ready -> promotion gate. Transient failures retry
with backoff; a dead worker's job is retried by the reaper once its lease runs out.
"""

from __future__ import annotations

import os
import socket
import uuid

import structlog
from botocore.exceptions import BotoCoreError
from sqlalchemy.exc import InterfaceError, OperationalError

from registry.base_models.local_copy import DigestMismatch
from registry.db import after_commit
from registry.errors import require
from registry.models.enums import JobKind
from registry.storage import StorageError
from registry.tasks import TRAIN
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository
from workers.cache import delete_prefix
from workers.context import WorkerContext
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs, load_inputs
from workers.pipeline import Cancelled, LeaseLost, Paused, run_pipeline
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
            if inputs.job.kind == JobKind.EVALUATE:
                from workers.evaluate_job import run_evaluation

                run_evaluation(ctx, inputs, heart)
            else:
                run_pipeline(ctx, inputs, heart)
    except LeaseLost:
        log.warning("job.abandoned", job_id=job_id, reason="lease lost to another worker")
    except Paused:  # state stored, job paused: a resume queues it again
        log.info("job.paused", job_id=job_id)
    except Cancelled:
        with ctx.session() as session:
            job = require(PlatformJobRepository(session).find(jid), f"job {jid}")
            lifecycle.finish_cancelled(session, job=job)
        _drop_artifact(ctx, inputs)
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
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        if job.status != "running":
            return
        requeued = lifecycle.fail(session, job=job, error=error, retryable=retryable)
        if requeued:
            delay = retry_delay(ctx, job.attempts)
            after_commit(session, lambda: ctx.queue.send(TRAIN, [str(job.id)], countdown=delay))
    if not requeued:
        _drop_artifact(ctx, inputs)


def _drop_artifact(ctx: WorkerContext, inputs: JobInputs) -> None:
    """A training job's half-made artifact goes; an evaluate job's artifact is its ready
    version's, and stays."""
    if inputs.job.kind == JobKind.TRAIN:
        delete_prefix(ctx.store, inputs.prefix)
