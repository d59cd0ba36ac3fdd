"""What a worker process needs: settings, a database session factory, the object store, and
the queue to send follow-up tasks to. One per Celery process (`get_context`), one per
in-process queue (`InProcessQueue.context`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.settings import Settings, get_settings
from registry.storage import ObjectStore, open_configured_store
from registry.tasks import CeleryQueue, TaskQueue


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    queue: TaskQueue

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; committed on success, then its after-commit sends go out."""
        yield from run_unit_of_work(self.sessions)

    @property
    def actor(self) -> Principal:
        return Principal.local_operator(f"worker:{socket.gethostname()}")


def build_context(settings: Settings, queue: TaskQueue) -> WorkerContext:
    url = settings.resolved_database_url
    sized = {} if url.startswith("sqlite") else {"pool_size": 4, "max_overflow": 4}
    engine = make_engine(url, **sized)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=open_configured_store(settings),
        queue=queue,
    )


@lru_cache(maxsize=1)
def get_context() -> WorkerContext:
    """A Celery worker's context: follow-up tasks go back to the broker."""
    settings = get_settings()
    return build_context(settings, CeleryQueue(settings))
