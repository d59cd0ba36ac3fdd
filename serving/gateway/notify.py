"""Route changes pushed to gateways: PostgreSQL LISTEN/NOTIFY (issue 19).

The registry announces every alias move, version status change, archived adapter and traffic
split in the transaction that makes it (`registry.notify.announce`; delivered on commit only).
Here a daemon thread holds its own connection (autocommit, `LISTEN loraplex_routes`) and hands
each message to the event loop, where the caches live: `on_change(tenant_id)` runs on the loop's
thread through `call_soon_threadsafe`, never on this one. A lost connection is retried with
backoff; on every (re)connect `on_change(None)` drops every cached route, since messages sent
while nobody listened are gone. Meanwhile, and on SQLite, the caches' TTL alone applies.

Ops watch `loraplex_gateway_route_listener_connected` (0: promotions take up to the TTL) and
`loraplex_gateway_route_notifications_total`. The connection shows in `pg_stat_activity` as
application `loraplex-gateway-routes`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Callable

import psycopg
import structlog
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from registry.notify import CHANNEL
from registry.settings import Settings
from serving.gateway import metrics

log = structlog.get_logger(__name__)
APPLICATION = "loraplex-gateway-routes"
POLL_S = 0.25  # how long a wait for messages lasts before `stop` is looked at again
BACKOFF_S = (0.2, 30.0)  # first and longest wait between connection attempts
CONNECT_TIMEOUT_S = 10
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def conninfo(database_url: str) -> str:
    """libpq's form of the registry's SQLAlchemy URL (`postgresql+psycopg://...`), with a
    connect timeout, TCP keepalives (a silently dead peer is noticed) and our name."""
    url = make_url(database_url).set(drivername="postgresql")
    return make_conninfo(
        url.render_as_string(hide_password=False),
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=APPLICATION,
        **KEEPALIVE,
    )


def tenant_of(payload: str) -> uuid.UUID | None:
    """The tenant a message names; None (drop everything) when it names none we can read."""
    try:
        return uuid.UUID(str(json.loads(payload)["tenant"]))
    except (ValueError, TypeError, KeyError):
        return None


class RouteListener:
    """Calls `on_change(tenant_id)` when an alias, a version's status or a split changes."""

    def __init__(self, settings: Settings, on_change: Callable[[uuid.UUID | None], None]) -> None:
        self.settings = settings
        self.on_change = on_change
        self.connected = threading.Event()  # set while listening (tests wait on it)
        self._stopping = threading.Event()  # a new one per start: an old thread stays stopped
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.resolved_database_url.startswith("postgresql")

    def start(self) -> None:
        """Starts listening (no-op on SQLite: the TTL alone applies). Call it on the event loop
        that owns the caches (the gateway's lifespan)."""
        if not self.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stopping,), name=APPLICATION, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops listening; returns within about `POLL_S` (a connection attempt under way is
        left to its daemon thread, which ends once it returns)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_S * 4)
            self._thread = None
        self.connected.clear()
        metrics.ROUTE_LISTENER_CONNECTED.set(0)

    def _run(self, stopping: threading.Event) -> None:
        wait, down = BACKOFF_S[0], False
        while not stopping.is_set():
            try:
                dsn = conninfo(self.settings.resolved_database_url)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    wait = BACKOFF_S[0]
                    self._up(stopping, was_down=down)
                    down = False
                    while not stopping.is_set():
                        for note in conn.notifies(timeout=POLL_S):
                            self._deliver(stopping, tenant_of(note.payload))
            except Exception as exc:  # noqa: BLE001 - a listener that dies silently is worse
                self._down(exc, first=not down)
                down = True
            if not stopping.is_set():
                stopping.wait(wait * random.uniform(0.8, 1.2))
                wait = min(wait * 2, BACKOFF_S[1])
        if stopping is self._stopping:
            self.connected.clear()
            metrics.ROUTE_LISTENER_CONNECTED.set(0)

    def _up(self, stopping: threading.Event, *, was_down: bool) -> None:
        """Listening: whatever changed while nobody listened is dropped wholesale."""
        self.connected.set()
        metrics.ROUTE_LISTENER_CONNECTED.set(1)
        (log.info if was_down else log.debug)("gateway.route_listener.connected")
        self._deliver(stopping, None)

    def _down(self, exc: Exception, *, first: bool) -> None:
        self.connected.clear()
        metrics.ROUTE_LISTENER_CONNECTED.set(0)
        if first:  # once per outage; the retries are quiet
            log.warning(
                "gateway.route_listener.lost",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                fallback="routes expire by their TTL until the listener is back",
            )

    def _deliver(self, stopping: threading.Event, tenant_id: uuid.UUID | None) -> None:
        if stopping.is_set():
            return
        metrics.ROUTE_NOTIFICATIONS.labels("all" if tenant_id is None else "tenant").inc()
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self.on_change, tenant_id)
        except RuntimeError:  # the loop is closed: the gateway is going away
            stopping.set()
