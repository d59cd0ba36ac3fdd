"""`model` -> an immutable adapter version, per tenant, cached for well under a second.

`orders` means `orders@production`; `orders@candidate` any alias; `orders@v3` (or `orders@3`) a
version number. Only the caller's tenant is searched, so another tenant's adapter is exactly as
invisible as one that does not exist. Results (found or not) are reused for
`gateway_resolve_ttl_seconds` (default 0.5 s): an alias move reaches the gateway within that.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.models import Adapter, AdapterVersion, Alias
from serving.gateway.errors import GatewayError, bad_request, model_not_found
from serving.gateway.singleflight import SingleFlight
from serving.names import engine_name

_MODEL = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99})(?:@([A-Za-z0-9._-]{1,40}))?$")
_VERSION = re.compile(r"^[vV]?([1-9][0-9]{0,8})$")


@dataclass(frozen=True)
class Route:
    adapter_id: uuid.UUID
    adapter: str
    version_id: uuid.UUID
    version: int
    engine_name: str

    @property
    def label(self) -> str:
        return f"{self.adapter}@v{self.version}"


def parse_model(model: object) -> tuple[str, str]:
    """(adapter name, alias or version ref); raises a 400 naming the accepted forms."""
    if not isinstance(model, str) or not (m := _MODEL.match(model)):
        raise bad_request(
            "'model' must name one of your adapters: 'name', 'name@alias' or 'name@vN'.",
            param="model",
        )
    return m.group(1), m.group(2) or "production"


def lookup(session: Session, tenant_id: uuid.UUID, model: str) -> Route:
    name, ref = parse_model(model)
    adapter = session.scalar(
        select(Adapter).where(Adapter.tenant_id == tenant_id, Adapter.name == name)
    )
    if adapter is None or adapter.archived_at is not None:
        raise model_not_found(model)
    if m := _VERSION.match(ref):
        version = session.scalar(
            select(AdapterVersion).where(
                AdapterVersion.tenant_id == tenant_id,
                AdapterVersion.adapter_id == adapter.id,
                AdapterVersion.version == int(m.group(1)),
            )
        )
        if version is None:
            raise model_not_found(model, f"Adapter '{name}' has no version {m.group(1)}.")
    else:
        alias = session.scalar(
            select(Alias).where(
                Alias.tenant_id == tenant_id, Alias.adapter_id == adapter.id, Alias.alias == ref
            )
        )
        if alias is None:
            hint = (
                " Promote a version, or name one: " + f"'{name}@v1'." if ref == "production" else ""
            )
            raise model_not_found(model, f"Adapter '{name}' has no '{ref}' alias.{hint}")
        version = session.get(AdapterVersion, alias.version_id)
        assert version is not None
    if version.status != "ready":
        raise GatewayError(
            409,
            f"Version {version.version} of '{name}' is {version.status}, not ready to serve.",
            type_="invalid_request_error",
            code="model_not_ready",
            param="model",
        )
    return Route(
        adapter_id=adapter.id,
        adapter=adapter.name,
        version_id=version.id,
        version=version.version,
        engine_name=engine_name(version.id),
    )


class Router:
    def __init__(self, sessions: sessionmaker[Session], ttl_seconds: float) -> None:
        self.sessions = sessions
        self.ttl = ttl_seconds
        self._cache: dict[tuple[uuid.UUID, str], tuple[float, Route | GatewayError]] = {}
        self._flight: SingleFlight[Route | GatewayError] = SingleFlight()

    async def route(self, tenant_id: uuid.UUID, model: object) -> Route:
        parse_model(model)  # 400 before any lookup
        assert isinstance(model, str)
        key = (tenant_id, model)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is None or hit[0] <= now:
            outcome = await self._flight.run(
                key, lambda: run_in_threadpool(self._lookup, tenant_id, model)
            )
            hit = (now + self.ttl, outcome)
            if len(self._cache) > 50_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = hit
        if isinstance(hit[1], GatewayError):
            raise hit[1]
        return hit[1]

    def _lookup(self, tenant_id: uuid.UUID, model: str) -> Route | GatewayError:
        with self.sessions() as session:
            try:
                return lookup(session, tenant_id, model)
            except GatewayError as exc:
                return exc
