"""The training task: one job from claim to promotion.

claim the next job in fair order (the message's job id is only a hint: registry/training/
queueing.py) -> load data and base model -> train a PEFT LoRA with a
heartbeat -> check and store the artifact (manifest last) -> score the new version, the base
model and production on the held-out set -> ready -> promotion gate. Transient failures retry
with backoff; a dead worker's job is retried by the reaper once its lease runs out. A worker
done with a job rings one doorbell when claimable work remains.
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
from registry.training.lifecycle import artifact_prefix, lifecycle
from registry.training.queueing import ring
from registry.training.repository import PlatformJobRepository
from workers.cache import delete_prefix
from workers.context import WorkerContext
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs, load_inputs
from workers.pipeline import Cancelled, LeaseLost, Paused, run_pipeline
from workers.reaper import retry_delay

log = structlog.get_logger(__name__)
TRANSIENT = (
    OSError,
    ConnectionError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    BotoCoreError,
)


def run_training(ctx: WorkerContext, hint: str | None, *, host: str) -> None:
    """Claim the next job in fair order (whatever `hint` names) and run it to its end."""
    worker = f"{host}/{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    with ctx.session() as session:
        claim = lifecycle.claim_next(
            session,
            worker=worker,
            lease_seconds=ctx.settings.job_lease_seconds,
            tenant_cap=ctx.settings.training_tenant_concurrency,
        )
    if claim.job is None:
        log.info("job.not_claimed", hint=hint, state=claim.state)
        return
    jid = claim.job.id
    job_id = str(jid)
    try:
        try:
            with ctx.session() as session:
                job = require(PlatformJobRepository(session).find(jid), f"job {jid}")
                inputs = load_inputs(session, job)
        except Exception as exc:
            _failed(ctx, jid, claim.job.kind, exc)
            return
        log.info(
            "job.started", job_id=job_id, hint=hint, worker=worker, attempt=inputs.job.attempts
        )
        _run(ctx, inputs, jid, worker)
    finally:
        with ctx.session() as session:  # the next job, if one waits: a doorbell for it
            ring(session, queue=ctx.queue, settings=ctx.settings)


def _run(ctx: WorkerContext, inputs: JobInputs, jid: uuid.UUID, worker: str) -> None:
    job_id = str(jid)
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
        _drop_artifact(ctx, inputs.job.kind, inputs.prefix)
        log.info("job.cancelled", job_id=job_id)
    except Exception as exc:
        _failed(ctx, jid, inputs.job.kind, exc, inputs.prefix)


def _failed(
    ctx: WorkerContext, jid: uuid.UUID, kind: str, exc: Exception, prefix: str | None = None
) -> None:
    retryable = isinstance(exc, TRANSIENT + (StorageError,)) and not isinstance(
        exc, (DigestMismatch, JobInputError)
    )
    error = f"{type(exc).__name__}: {exc}"
    log.error("job.failed", job_id=str(jid), error=error, retryable=retryable, exc_info=exc)
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(jid), "job")
        if job.status != "running":
            return
        delay = retry_delay(ctx, job.attempts)
        prefix = prefix or artifact_prefix(job)
        requeued = lifecycle.fail(
            session, job=job, error=error, retryable=retryable, retry_after=delay
        )
        if requeued:  # its own doorbell once the backoff is over
            after_commit(session, lambda: ctx.queue.send(TRAIN, [str(jid)], countdown=delay))
    if not requeued:
        _drop_artifact(ctx, kind, prefix)


def _drop_artifact(ctx: WorkerContext, kind: str, prefix: str) -> None:
    """A training job's half-made artifact goes; an evaluate job's artifact is its ready
    version's, and stays."""
    if kind == JobKind.TRAIN:
        delete_prefix(ctx.store, prefix)
