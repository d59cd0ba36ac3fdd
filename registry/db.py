"""Engine, sessions and the request-scoped unit of work.

The request dependency commits or rolls back; services only flush. Work that must reach other
processes (Celery tasks) is registered with `after_commit` and sent only once the commit is done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator
from typing import Any

import structlog
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = structlog.get_logger(__name__)
PG_CONNECT_TIMEOUT_S = 10  # a database that does not answer is an outage (503), not a hang

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # SQLite has no row locks: take the write lock up front so two writers queue
            # instead of failing on a lock upgrade. The embedded default is single-node.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Pre-ping: a connection that died with the server (restart, failover) is replaced on
    # checkout, so the process recovers by itself once the database is back.
    kwargs.setdefault("pool_pre_ping", True)
    kwargs["connect_args"] = {
        "connect_timeout": PG_CONNECT_TIMEOUT_S,
        **kwargs.get("connect_args", {}),
    }
    # At most 30 connections as before, but 20 of them kept once opened: past the kept ones, a
    # connection is opened and closed per burst (a PostgreSQL backend forked each time, costlier
    # than the queries); with 10 kept, 16 clients reading made PostgreSQL fork ~17 a second.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback).

    The commit stands whatever the callback does: a callback that raises is logged and the
    others still run. Sends registered here must therefore be recoverable from the committed
    rows (a queued job whose message was lost is re-sent by the reaper)."""
    session.info.setdefault("after_commit", []).append(callback)


def run_unit_of_work(factory: sessionmaker[Session]) -> Generator[Session, None, None]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        session.close()
    for callback in session.info.pop("after_commit", []):
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - committed; a failed send is not a failure
            log.error("after_commit.failed", error=type(exc).__name__, exc_info=exc)
