"""Read queries behind the job pages, each bounded: the newest events, the loss points of the
`metrics` events the worker writes (see workers/checkpoints.py), the datasets' names."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.models import Dataset, TrainingJob, TrainingJobEvent

EVENTS = 200  # newest events listed
METRICS_FETCHED = 20_000  # metrics events read at most (the worker writes ~50 plus evals)
POINTS = 2000  # points per loss curve at most (thinned evenly, the last one kept)
METRICS = "metrics"
CHARTED = (METRICS, "eval")  # per-step losses: drawn in the chart, not listed


@dataclass(frozen=True)
class EventRow:
    id: int
    kind: str
    message: str
    occurred_at: dt.datetime


def events(
    session: Session, job: TrainingJob, *, limit: int = EVENTS
) -> tuple[list[EventRow], int]:
    """The job's newest `limit` events other than metrics and per-step evals (those are the
    chart), newest first;
    and how many events of those kinds the job has in all."""
    where = (
        TrainingJobEvent.tenant_id == job.tenant_id,
        TrainingJobEvent.job_id == job.id,
        TrainingJobEvent.kind.not_in(CHARTED),
    )
    stmt = (
        select(
            TrainingJobEvent.id,
            TrainingJobEvent.kind,
            TrainingJobEvent.message,
            TrainingJobEvent.occurred_at,
            func.count().over(),
        )
        .where(*where)
        .order_by(TrainingJobEvent.id.desc())
        .limit(limit)
    )
    found = session.execute(stmt).all()
    total = int(found[0][4]) if found else 0
    return [EventRow(i, k, m or "", at) for i, k, m, at, _ in found], total


def thin(points: list[tuple[float, float]], most: int = POINTS) -> list[tuple[float, float]]:
    """At most `most` points, evenly spaced, the first and the last kept."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Curves:
    train: list[tuple[float, float]]  # (step, train loss)
    heldout: list[tuple[float, float]]  # (step, held-out eval loss)
    events: int  # metrics events read


def curves(session: Session, job: TrainingJob) -> Curves:
    """Train loss and held-out eval loss against step from the job's metrics events (all
    attempts: a retried or resumed run writes its steps again, the later value wins)."""
    stmt = (
        select(TrainingJobEvent.data)
        .where(
            TrainingJobEvent.tenant_id == job.tenant_id,
            TrainingJobEvent.job_id == job.id,
            TrainingJobEvent.kind == METRICS,
        )
        .order_by(TrainingJobEvent.id)
        .limit(METRICS_FETCHED)
    )
    train: dict[float, float] = {}
    heldout: dict[float, float] = {}
    count = 0
    for (data,) in session.execute(stmt):
        count += 1
        data = data or {}
        step = _number(data.get("step"))
        if step is None:
            continue
        loss = _number(data.get("train_loss"))
        if loss is not None:
            train[step] = loss
        valid = _number(data.get("valid_loss"))
        if valid is not None:
            heldout[step] = valid
    return Curves(thin(sorted(train.items())), thin(sorted(heldout.items())), count)


def datasets(session: Session, job: TrainingJob) -> list[tuple[str, Dataset | None, str]]:
    """(role, dataset or None when gone, id) for the job's training and validation data."""
    wanted = [("train", str(i)) for i in job.dataset_ids or []]
    if job.validation_dataset_id is not None:
        wanted.append(("validation", str(job.validation_dataset_id)))
    ids = []
    for _, text in wanted:
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            continue
    found: dict[str, Dataset] = {}
    if ids:
        stmt = select(Dataset).where(Dataset.tenant_id == job.tenant_id, Dataset.id.in_(ids))
        found = {str(d.id): d for d in session.execute(stmt).scalars()}
    return [(role, found.get(text), text) for role, text in wanted]
