"""The version page's reads beyond the lineage graph: one bounded statement each, all filtered
on the tenant, none per row (the page's statement count does not grow with the data)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from registry.adapters.promotion import LOWER_IS_BETTER
from registry.models import (
    AdapterVersion,
    Alias,
    AliasEvent,
    AuditEvent,
    Eval,
    TrainingJob,
    UsageRecord,
)

HISTORY_CAP = 200
AUDIT_CAP = 50
EVALS_CAP = 500
BUCKETS_CAP = 400


def training_job(session: Session, tenant_id: uuid.UUID, job_id: str | None) -> TrainingJob | None:
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        return None  # not a job this registry ran (or no job at all)
    stmt = select(TrainingJob).where(TrainingJob.tenant_id == tenant_id, TrainingJob.id == key)
    return session.execute(stmt).scalar_one_or_none()


def alias_history(
    session: Session, tenant_id: uuid.UUID, adapter_id: uuid.UUID
) -> tuple[Sequence[AliasEvent], bool]:
    """Every move of the adapter's aliases, newest first, capped; True when cut."""
    stmt = (
        select(AliasEvent)
        .where(AliasEvent.tenant_id == tenant_id, AliasEvent.adapter_id == adapter_id)
        .order_by(AliasEvent.id.desc())
        .limit(HISTORY_CAP + 1)
    )
    rows = session.execute(stmt).scalars().all()
    return rows[:HISTORY_CAP], len(rows) > HISTORY_CAP


def current_aliases(
    session: Session, tenant_id: uuid.UUID, adapter_id: uuid.UUID
) -> list[tuple[str, int, uuid.UUID]]:
    """(alias, version number, version id) of the adapter, by alias name."""
    stmt = (
        select(Alias.alias, AdapterVersion.version, AdapterVersion.id)
        .join(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .where(Alias.tenant_id == tenant_id, Alias.adapter_id == adapter_id)
        .order_by(Alias.alias)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(stmt)]


def evals_of(
    session: Session, tenant_id: uuid.UUID, version_ids: Sequence[uuid.UUID]
) -> Sequence[Eval]:
    """The evals of a few versions (this one, its parent, production), oldest first."""
    stmt = (
        select(Eval)
        .where(Eval.tenant_id == tenant_id, Eval.version_id.in_(list(version_ids)))
        .order_by(Eval.created_at.desc(), Eval.id)
        .limit(EVALS_CAP)
    )
    return list(reversed(session.execute(stmt).scalars().all()))


@dataclass
class EvalRow:
    suite: str
    metric: str
    candidate: float | None
    base: float | None
    production: float | None
    verdict: str = ""  # "better" | "worse" | "" (against production, else the base model)


@dataclass
class EvalTable:
    production: int | None  # the version in the production column
    rows: list[EvalRow] = field(default_factory=list)


def _suite_order(name: str) -> tuple[int, str]:
    return (0 if name.startswith("heldout") else 2 if name.startswith("general") else 1, name)


def eval_table(
    evals: Sequence[Eval],
    *,
    version_id: uuid.UUID,
    number: int,
    numbers: dict[uuid.UUID, int],
    production_id: uuid.UUID | None,
) -> EvalTable:
    """Per suite and metric: this version, the base model on this version's eval set, and the
    production version: the one the gate compared with (its scores recorded for this version),
    else the one in production now. Later scores win."""
    mine: dict[str, dict[str, float]] = {}
    base: dict[str, dict[str, float]] = {}
    others: dict[uuid.UUID, dict[str, dict[str, float]]] = {}
    scored_for: dict[uuid.UUID, dict[str, dict[str, float]]] = {}
    for ev in evals:
        if ev.version_id == version_id:
            (mine if ev.subject == "version" else base).setdefault(ev.suite, {}).update(ev.metrics)
        elif ev.subject == "version":
            into = scored_for if (ev.details or {}).get("scored_for") == f"v{number}" else others
            into.setdefault(ev.version_id, {}).setdefault(ev.suite, {}).update(ev.metrics)
        elif ev.suite not in base:  # a base-model score cached on another version
            base[ev.suite] = dict(ev.metrics)
    incumbent = next(iter(scored_for), None)
    if incumbent is None and production_id != version_id:
        incumbent = production_id
    prod: dict[str, dict[str, float]] = {}
    if incumbent is not None:
        prod = {k: dict(v) for k, v in others.get(incumbent, {}).items()}
        for suite, metrics in scored_for.get(incumbent, {}).items():
            prod.setdefault(suite, {}).update(metrics)
    table = EvalTable(production=numbers.get(incumbent) if incumbent else None)
    for suite in sorted(set(mine) | set(base), key=_suite_order):
        names = set(mine.get(suite, {})) | set(base.get(suite, {}))
        for metric in sorted(names, key=lambda m: (m != "pass_rate", m)):
            c = mine.get(suite, {}).get(metric)
            b = base.get(suite, {}).get(metric)
            p = prod.get(suite, {}).get(metric)
            row = EvalRow(suite, metric, c, b, p)
            against = p if p is not None else b
            if c is not None and against is not None and c != against:
                gain = (against - c) if metric in LOWER_IS_BETTER else (c - against)
                row.verdict = "better" if gain > 0 else "worse"
            table.rows.append(row)
    return table


def usage_buckets(
    session: Session,
    tenant_id: uuid.UUID,
    version_id: uuid.UUID,
    first: dt.datetime,
    last: dt.datetime,
) -> tuple[str, list[tuple[str, int, int, int]]]:
    """Requests, distinct clients and tokens per hour (a period under two days), day, or month
    (over a year): grouped in the database, one row per bucket, gaps filled with zeros."""
    span = (last - first).total_seconds()
    unit = "hour" if span < 2 * 86400 else "day" if span <= 370 * 86400 else "month"
    col = UsageRecord.started_at
    if session.get_bind().dialect.name == "postgresql":
        key: Any = func.date_trunc(unit, func.timezone("UTC", col))
    else:  # SQLite keeps naive UTC text
        key = func.strftime(
            {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[unit], col
        )
    stmt = (
        select(
            key,
            func.count(),
            func.count(func.distinct(UsageRecord.client_id)),
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0),
        )
        .where(
            UsageRecord.tenant_id == tenant_id,
            UsageRecord.version_id == version_id,
            UsageRecord.status_code == 200,
        )
        .group_by(key)
        .order_by(key)
        .limit(BUCKETS_CAP)
    )
    fmt = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[unit]
    found: dict[str, tuple[int, int, int]] = {}
    for k, requests, clients, tokens in session.execute(stmt):
        label = k.strftime(fmt) if isinstance(k, dt.datetime) else str(k)
        found[label] = (int(requests), int(clients), int(tokens))
    labels = list(found)
    if unit != "month":  # zeros where nothing was served
        step = dt.timedelta(hours=1) if unit == "hour" else dt.timedelta(days=1)
        at = dt.datetime.strptime(labels[0], fmt) if labels else None
        end = dt.datetime.strptime(labels[-1], fmt) if labels else None
        labels = []
        while at is not None and end is not None and at <= end and len(labels) < BUCKETS_CAP:
            labels.append(at.strftime(fmt))
            at += step
    return unit, [(label, *found.get(label, (0, 0, 0))) for label in labels]


def audit_events(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    aliases: Sequence[str],
    version: str,
    job_id: str | None,
    eval_ids: Sequence[str],
) -> Sequence[AuditEvent]:
    """The newest audit events about this adapter's aliases, this version, its job and evals."""
    targets = [
        and_(AuditEvent.target_type == "alias", AuditEvent.target_id.in_(list(aliases))),
        and_(AuditEvent.target_type == "adapter_version", AuditEvent.target_id == version),
    ]
    if job_id:
        targets.append(
            and_(AuditEvent.target_type == "training_job", AuditEvent.target_id == job_id)
        )
    if eval_ids:
        targets.append(
            and_(AuditEvent.target_type == "eval", AuditEvent.target_id.in_(list(eval_ids)))
        )
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id, or_(*targets))
        .order_by(AuditEvent.seq.desc())
        .limit(AUDIT_CAP)
    )
    return session.execute(stmt).scalars().all()
