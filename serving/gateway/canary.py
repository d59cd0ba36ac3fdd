"""Traffic splits at the gateway (issue 19, being written): which version of an adapter a
request is served by when its `production` alias is split with a candidate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from serving.gateway.routing import Route


class Splits:
    def __init__(self, sessions: sessionmaker[Session], ttl_seconds: float) -> None:
        self.sessions = sessions
        self.ttl_seconds = ttl_seconds

    async def apply(self, route: Route, body: dict[str, Any], headers: Mapping[str, str]) -> Route:
        """The route to serve: `route` itself when no split applies."""
        return route

    def invalidate(self, tenant_id: object = None) -> None:
        """Forget cached splits (of one tenant; None: all)."""
