"""A labelling job: the adapter's traffic prompts sent to a teacher; the answers that pass the
adapter's applicable eval checks become one dataset version (registry/datasets/derived.py).

Nothing is stored unless the job succeeds: a teacher that is down, a cancel, no kept answer or
a refused dataset leave no version and no object behind.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.datasets.derived import store_rows
from registry.datasets.validation import DatasetValidator
from registry.db import utcnow
from registry.errors import LoraplexError, require
from registry.labelling.repository import PlatformLabellingRepository, TrafficPrompts
from registry.labelling.service import labelling
from registry.models import Adapter, LabellingJob, Teacher, Tenant
from registry.suites.pins import pinned_suites
from registry.teachers.secrets import read_secret, secrets_dir
from workers.applicable_checks import Rules, failed_check
from workers.context import WorkerContext
from workers.evals.checks import CheckCache
from workers.inputs import read_rows
from workers.teacher_client import (
    Answer,
    BudgetExhausted,
    PromptFailed,
    TeacherClient,
    TeacherDown,
    TeacherSpec,
)

log = structlog.get_logger(__name__)
PROGRESS_EVERY = 1.0  # seconds between progress writes (each also a heartbeat)
SCAN_FACTOR = 20  # samples read per prompt wanted (duplicates, answered ones)


class LabellingFailed(Exception):
    """The job cannot succeed; the message is the job's error."""


class Stopped(Exception):
    """Cancelled, or taken away from this worker."""


@dataclass
class Plan:
    spec: TeacherSpec
    tenant_slug: str
    dataset: str
    prompts: list[dict[str, Any]]
    rules: Rules
    window: dict[str, str]


@dataclass
class Tally:
    total: int = 0
    sent: int = 0
    kept: int = 0
    refused: int = 0
    failed: int = 0
    calls: int = 0
    budget_exhausted: bool = False
    refused_by: dict[str, int] = field(default_factory=dict)

    def refuse(self, kind: str) -> None:
        self.refused += 1
        self.refused_by[kind] = self.refused_by.get(kind, 0) + 1

    def progress(self) -> dict[str, Any]:
        return {**self.counts(), "refused_by": dict(self.refused_by)} | {
            "budget_exhausted": self.budget_exhausted
        }

    def counts(self) -> dict[str, int]:
        keys = ("total", "sent", "kept", "refused", "failed", "calls")
        return {k: int(getattr(self, k)) for k in keys}


def run_labelling(ctx: WorkerContext, job_id: str, *, host: str) -> None:
    jid = uuid.UUID(job_id)
    with ctx.session() as session:
        claimed = labelling.claim(session, job_id=jid, worker=host) is not None
    if not claimed:
        log.info("labelling.not_claimed", job_id=job_id, worker=host)
        return
    log.info("labelling.started", job_id=job_id, worker=host)
    tally = Tally()
    try:
        with ctx.session() as session:
            plan = _plan(ctx, session, jid)
        tally.total = len(plan.prompts)
        rows = _label(ctx, jid, host, plan, tally)
        _finish(ctx, jid, host, plan, tally, rows)
    except Stopped as stop:
        _end(ctx, jid, host, tally, "cancelled" if str(stop) == "cancel" else None, "")
    except (LabellingFailed, TeacherDown) as exc:
        _end(ctx, jid, host, tally, "failed", str(exc))
    except LoraplexError as exc:  # the dataset refused (quota, limits): nothing stored
        _end(ctx, jid, host, tally, "failed", f"the dataset was refused: {exc.detail}")
    except Exception as exc:
        log.exception("labelling.crashed", job_id=job_id)
        _end(ctx, jid, host, tally, "failed", f"internal error: {type(exc).__name__}: {exc}")


def _plan(ctx: WorkerContext, session: Session, job_id: uuid.UUID) -> Plan:
    job = require(PlatformLabellingRepository(session).find(job_id), "labelling job")
    teacher = require(session.get(Teacher, job.teacher_id), "teacher")
    adapter = require(session.get(Adapter, job.adapter_id), "adapter")
    tenant = require(session.get(Tenant, job.tenant_id), "tenant")
    if not teacher.enabled:
        raise LabellingFailed(f"teacher '{teacher.name}' was disabled after the job was queued")
    key = None
    if teacher.secret_name:
        try:
            key = read_secret(ctx.settings, teacher.secret_name)
        except ValueError as exc:
            raise LabellingFailed(str(exc)) from exc
        if key is None:
            raise LabellingFailed(
                f"the key of teacher '{teacher.name}' is missing: no file "
                f"{secrets_dir(ctx.settings) / teacher.secret_name} and no environment variable "
                f"{teacher.secret_name} on worker"
            )
    p = job.params
    since, until = _time(p["since"]), _time(p["until"])
    version_id = uuid.UUID(p["version_id"]) if p.get("version_id") else None
    limit = min(p["max_prompts"] * SCAN_FACTOR, max(p["max_prompts"], 100_000))
    seen: set[str] = set()
    prompts: list[dict[str, Any]] = []
    for record in TrafficPrompts(session, tenant.id).records(
        adapter_id=adapter.id,
        since=since,
        until=until,
        version_id=version_id,
        skip_answered=bool(p.get("skip_answered", True)),
        limit=limit,
    ):
        key_ = json.dumps(record, sort_keys=True, separators=(",", ":"))
        if key_ in seen or not isinstance(record, dict):
            continue
        seen.add(key_)
        prompts.append(record)
        if len(prompts) >= p["max_prompts"]:
            break
    if not prompts:
        raise LabellingFailed(
            f"no traffic prompts of adapter '{adapter.name}' between {p['since']} and "
            f"{p['until']} (after skipping answered ones); nothing to label"
        )
    suites = [read_rows(ctx.store, s) for s in pinned_suites(session, adapter)]
    spec = TeacherSpec(
        name=teacher.name,
        base_url=teacher.base_url,
        model=teacher.model,
        api_key=key,
        requests_per_minute=teacher.requests_per_minute,
        timeout_seconds=teacher.timeout_seconds,
        max_retries=teacher.max_retries,
        max_requests=teacher.max_requests,
        max_tokens=teacher.max_tokens,
    )
    window = {"since": p["since"], "until": p["until"]}
    return Plan(spec, tenant.slug, p["dataset"], prompts, Rules.from_suites(suites), window)


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _label(
    ctx: WorkerContext, job_id: uuid.UUID, host: str, plan: Plan, tally: Tally
) -> list[dict[str, Any]]:
    cache = CheckCache(schema_steps=ctx.settings.dataset_schema_steps)
    rows: list[dict[str, Any]] = []
    last = 0.0
    with TeacherClient(plan.spec) as client:
        for record in plan.prompts:
            if time.monotonic() - last >= PROGRESS_EVERY:
                _beat(ctx, job_id, host, tally)
                last = time.monotonic()
            try:
                answer = client.answer(record)
            except BudgetExhausted:
                tally.budget_exhausted = True
                log.warning("labelling.budget_exhausted", job_id=str(job_id), calls=client.calls)
                break
            except PromptFailed as exc:
                tally.failed += 1
                log.info("labelling.prompt_failed", job_id=str(job_id), problem=str(exc))
                continue
            finally:
                tally.calls = client.calls
            tally.sent += 1
            row, refused = _judge(ctx, plan.rules, record, answer, cache)
            if refused is not None:
                tally.refuse(refused)
            else:
                rows.append(row)
                tally.kept += 1
    return rows


def _judge(
    ctx: WorkerContext, rules: Rules, record: dict[str, Any], answer: Answer, cache: CheckCache
) -> tuple[dict[str, Any], str | None]:
    """The training row for the answer, and why it is refused (None: kept)."""
    if not answer.content.strip() and not answer.tool_calls:
        return {}, "empty"
    if "messages" in record:
        reply: dict[str, Any] = {"role": "assistant", "content": answer.content or None}
        if answer.tool_calls:
            reply["tool_calls"] = answer.tool_calls
        row = {k: v for k, v in record.items() if k != "tool_choice"}
        row["messages"] = [*record["messages"], reply]
    else:
        row = {"prompt": record["prompt"], "completion": answer.content}
    try:
        kind = failed_check(rules.applicable(record), answer.content, answer.tool_calls, cache)
    except ValueError:
        kind = "check_error"
    if kind is not None:
        return row, kind
    validator = DatasetValidator(
        max_line_bytes=ctx.settings.max_line_bytes,
        max_tools=ctx.settings.dataset_max_tools,
        schema_steps=ctx.settings.dataset_schema_steps,
    )
    validator.feed(json.dumps(row).encode() + b"\n")
    validator.finish()
    return row, None if validator.ok else "invalid_row"


def _beat(ctx: WorkerContext, job_id: uuid.UUID, host: str, tally: Tally) -> None:
    with ctx.session() as session:
        job = _mine(session, job_id, host)
        job.progress = tally.progress()
        job.heartbeat_at = utcnow()
        if job.cancel_requested:
            raise Stopped("cancel")


def _mine(session: Session, job_id: uuid.UUID, host: str) -> LabellingJob:
    job = require(PlatformLabellingRepository(session).find(job_id, lock=True), "labelling job")
    if job.status != "running" or job.worker != host:
        raise Stopped("lost")
    return job


def _one_format(rows: list[dict[str, Any]], tally: Tally) -> list[dict[str, Any]]:
    """A dataset holds one format: with both chat and prompt rows, the larger group stays."""
    chat = [r for r in rows if "messages" in r]
    plain = [r for r in rows if "messages" not in r]
    keep, drop = (chat, plain) if len(chat) >= len(plain) else (plain, chat)
    for _ in drop:
        tally.kept -= 1
        tally.refuse("other_format")
    return keep


def _finish(
    ctx: WorkerContext,
    job_id: uuid.UUID,
    host: str,
    plan: Plan,
    tally: Tally,
    rows: list[dict[str, Any]],
) -> None:
    rows = _one_format(rows, tally)
    with ctx.session() as session:
        job = _mine(session, job_id, host)
        if job.cancel_requested:
            raise Stopped("cancel")
        if not rows:
            raise LabellingFailed(
                f"no answer passed the checks ({tally.sent} answered, refused: "
                f"{tally.refused_by or 'none'}, {tally.failed} failed); nothing stored"
            )
        tenant = require(session.get(Tenant, job.tenant_id), "tenant")
        origin = {
            "kind": "teacher",
            "teacher": plan.spec.name,
            "model": plan.spec.model,
            "base_url": plan.spec.base_url,
            **tally.counts(),
            "refused_by": dict(tally.refused_by),
            "budget_exhausted": tally.budget_exhausted,
            "labelling_job_id": str(job.id),
            "window": plan.window,
        }
        done = store_rows(
            session,
            actor=ctx.actor,
            tenant=tenant,
            name=plan.dataset,
            rows=rows,
            origin=origin,
            store=ctx.store,
            settings=ctx.settings,
        )
        job.dataset_id = done.row.id
        job.progress = tally.progress() | {"dataset": plan.dataset, "version": done.row.version}
        job.counts = tally.counts()
        if job.followup:
            _followup(ctx, session, job)
        labelling.finish(session, job, "succeeded")


def _followup(ctx: WorkerContext, session: Session, job: LabellingJob) -> None:
    """What the job was created for (a drift retrain): in the same transaction; if it is
    refused, the dataset stays and the refusal is on the job."""
    from registry.traffic.retrain import train_after_labelling

    try:
        with session.begin_nested():
            training = train_after_labelling(
                session, job=job, settings=ctx.settings, queue=ctx.queue
            )
    except LoraplexError as exc:
        job.progress = {**job.progress, "followup_error": exc.detail}
        log.warning("labelling.followup_refused", job_id=str(job.id), error=exc.detail)
        return
    job.training_job_id = training.id if training is not None else None


def _end(
    ctx: WorkerContext,
    job_id: uuid.UUID,
    host: str,
    tally: Tally,
    status: str | None,
    error: str,
) -> None:
    """Record how the job ended without a dataset (status None: it is no longer ours)."""
    if status is None:
        log.warning("labelling.lost", job_id=str(job_id), worker=host)
        return
    with ctx.session() as session:
        try:
            job = _mine(session, job_id, host)
        except Stopped:
            log.warning("labelling.lost", job_id=str(job_id), worker=host)
            return
        job.progress = tally.progress()
        job.counts = tally.counts()
        labelling.finish(session, job, status, error)
