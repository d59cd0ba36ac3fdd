"""Traffic splits at the gateway: which version of an adapter a request is served by when its
`production` is split with a candidate (`registry/splits`).

Only a request for production (`name` or `name@production`) is split, and only while production
still points at the version the split was set on; `name@v3`, `name@candidate` and fine-tuned
model names always get what they name. The version is chosen sticky per end user: the bucket is
a hash of (adapter id, key) mod 100, the key being the body's `user`, else the
`x-loraplex-user` header, else the calling client (the verified token's subject), and the
buckets are dealt to the split's versions by weight, production's first. The usage record and
the per-version metrics then name the version that answered.

An adapter's split (or its absence) is cached for `ttl_seconds`, like routes; `invalidate` drops
a tenant's at once (a pushed change). A split whose lookup fails is not applied (production
answers) and the failure is logged: the split is an experiment, production is always safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.adapters.resolve import DEFAULT_ALIAS, parse_model
from registry.errors import Unprocessable
from registry.models import Adapter, AdapterVersion, TrafficSplit
from registry.models.enums import VersionStatus
from serving.gateway.routing import Route
from serving.gateway.singleflight import SingleFlight
from serving.names import engine_name

log = structlog.get_logger(__name__)
MAX_SPLITS = 50_000
USER_HEADER = "x-loraplex-user"


@dataclass(frozen=True)
class Arm:
    version_id: uuid.UUID
    version: int
    weight: int


@dataclass(frozen=True)
class Split:
    """An adapter's split as the gateway serves it; `arms` empty: none."""

    tenant_id: uuid.UUID | None
    baseline_id: uuid.UUID | None = None
    arms: tuple[Arm, ...] = ()


def load_split(session: Session, adapter_id: uuid.UUID) -> Split:
    """Two statements at most: the adapter with its split, then the split's versions (an arm
    whose version is no longer ready gives its share to production's)."""
    row = session.execute(
        select(Adapter.tenant_id, TrafficSplit)
        .outerjoin(TrafficSplit, TrafficSplit.adapter_id == Adapter.id)
        .where(Adapter.id == adapter_id)
    ).first()
    if row is None:
        return Split(None)
    tenant_id, split = row
    if split is None:
        return Split(tenant_id)
    ids = [uuid.UUID(a["version_id"]) for a in split.arms]
    ready = set(
        session.execute(
            select(AdapterVersion.id).where(
                AdapterVersion.id.in_(ids),
                AdapterVersion.tenant_id == tenant_id,
                AdapterVersion.status == VersionStatus.READY,
            )
        ).scalars()
    )
    arms = [
        Arm(i, int(a["version"]), int(a["weight"])) for i, a in zip(ids, split.arms, strict=True)
    ]
    lost = sum(a.weight for a in arms[1:] if a.version_id not in ready)
    kept = [a for a in arms[1:] if a.version_id in ready]
    base = dataclasses.replace(arms[0], weight=arms[0].weight + lost)
    return Split(tenant_id, split.baseline_id, (base, *kept))


def end_user(body: Mapping[str, Any], headers: Mapping[str, str], client_id: str = "") -> str:
    """Who the request is for: `user`, else the header, else the calling API client."""
    user = body.get("user")
    if isinstance(user, str) and user:
        return f"user:{user}"
    given = headers.get(USER_HEADER)
    if given:
        return f"user:{given}"
    return f"client:{client_id}"


def bucket(adapter_id: uuid.UUID, key: str) -> int:
    """0..99, stable across processes and restarts (not Python's salted `hash`)."""
    digest = hashlib.blake2b(f"{adapter_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def choose(arms: tuple[Arm, ...], at: int) -> Arm:
    """The arm whose cumulative weight range holds `at`."""
    edge = 0
    for arm in arms:
        edge += arm.weight
        if at < edge:
            return arm
    return arms[0]


def asks_production(model: object) -> bool:
    if not isinstance(model, str):
        return False
    try:
        return parse_model(model).ref == DEFAULT_ALIAS
    except Unprocessable:
        return False  # a fine-tuned model's name


class Splits:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl_seconds: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.ttl_seconds = ttl_seconds
        self._cache: TTLCache[uuid.UUID, Split] = TTLCache(MAX_SPLITS, ttl_seconds, timer)
        self._flight: SingleFlight[Split] = SingleFlight()
        self._generation = 0

    async def apply(
        self,
        route: Route,
        body: dict[str, Any],
        headers: Mapping[str, str],
        client_id: str = "",
    ) -> Route:
        """The route to serve: `route` itself when no split applies. `client_id`: the verified
        caller's, the sticky key when the request names no end user."""
        if route.name is not None or not asks_production(body.get("model")):
            return route
        split = await self._split(route.adapter_id)
        if len(split.arms) < 2 or split.baseline_id != route.version_id:
            return route  # no split, or production moved since it was set
        arm = choose(split.arms, bucket(route.adapter_id, end_user(body, headers, client_id)))
        if arm.version_id == route.version_id:
            return route
        return dataclasses.replace(
            route,
            version_id=arm.version_id,
            version=arm.version,
            engine_name=engine_name(arm.version_id),
        )

    async def _split(self, adapter_id: uuid.UUID) -> Split:
        cached = self._cache.get(adapter_id)
        if cached is not None:
            return cached
        generation = self._generation
        try:
            split = await self._flight.run(
                adapter_id, lambda: run_in_threadpool(self._load, adapter_id)
            )
        except Exception as exc:  # the database: production answers, the split waits
            log.warning("gateway.split_lookup_failed", adapter=str(adapter_id), error=repr(exc))
            return Split(None)
        if generation == self._generation:  # not invalidated while it loaded
            self._cache[adapter_id] = split
        return split

    def _load(self, adapter_id: uuid.UUID) -> Split:
        with self.sessions() as session:
            return load_split(session, adapter_id)

    def invalidate(self, tenant_id: object = None) -> None:
        """Forget cached splits (of one tenant; None: all)."""
        self._generation += 1
        if tenant_id is None:
            self._cache.clear()
            return
        for key in list(self._cache):
            entry = self._cache.get(key)
            if entry is not None and entry.tenant_id == tenant_id:
                self._cache.pop(key, None)
