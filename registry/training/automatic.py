"""Retrains nobody asked for by hand: a schedule came due, or drift crossed a threshold.

One rule for both: never queue a second job for an adapter that already has one queued or
running (a slow retrain must not pile up behind itself), and anything that stops the job from
being created (no datasets, archived adapter, disabled tenant) is a skip with a reason, not
an error: the schedule or policy records it and moves on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository
from registry.auth.principal import Principal
from registry.errors import LoraplexError
from registry.models import Adapter, Tenant, TrainingJob
from registry.schedules.repository import ScheduleRepository
from registry.settings import Settings
from registry.tasks import TaskQueue
from registry.training.schemas import TrainingJobCreate
from registry.training.selection import DatasetMode, select_datasets
from registry.training.service import training


class Skipped(Exception):
    """The retrain was not started; the message says why."""


@contextmanager
def retrain_guard(session: Session, *, tenant: Tenant, adapter: Adapter) -> Iterator[None]:
    """Lock the adapter, refuse while it has a job, and run the body in a savepoint: any
    refusal inside it (a LoraplexError) rolls back what the body wrote and becomes Skipped."""
    # Lock the adapter first: a schedule and a drift policy firing at once for one adapter are
    # serialized here, and the second one sees the first one's job.
    AdapterRepository(session, tenant.id).lock(adapter)
    busy = ScheduleRepository(session, tenant.id).unfinished_job(adapter.id)
    if busy is not None:
        raise Skipped(f"training job {busy.id} of adapter '{adapter.name}' is still {busy.status}")
    savepoint = session.begin_nested()
    try:
        yield
    except LoraplexError as exc:
        savepoint.rollback()
        raise Skipped(exc.detail) from exc
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()


def start_retrain(
    session: Session,
    *,
    tenant: Tenant,
    adapter: Adapter,
    mode: DatasetMode,
    names: list[str] | None,
    trigger: str,
    trigger_ref: dict[str, Any],
    settings: Settings,
    queue: TaskQueue,
    actor: Principal,
) -> TrainingJob:
    """A retrain on uploaded data (`latest` or `all`); traffic retrains start in
    registry/traffic/retrain.py, inside the same guard."""
    if mode == DatasetMode.TRAFFIC:
        raise Skipped("datasets 'traffic' needs the drift policy's window of traffic")
    with retrain_guard(session, tenant=tenant, adapter=adapter):
        datasets = select_datasets(session, adapter, mode, names)
        return training.create(
            session,
            actor=actor,
            tenant=tenant,
            data=TrainingJobCreate(adapter=adapter.name, dataset_ids=[d.id for d in datasets]),
            settings=settings,
            queue=queue,
            trigger=trigger,
            trigger_ref=trigger_ref,
        )
