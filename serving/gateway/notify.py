"""Route changes pushed to gateways (issue 19, being written): PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from registry.settings import Settings


class RouteListener:
    """Calls `on_change(tenant_id)` when an alias, a version's status or a split changes."""

    def __init__(self, settings: Settings, on_change: Callable[[uuid.UUID | None], None]) -> None:
        self.settings = settings
        self.on_change = on_change

    def start(self) -> None:
        """Starts listening (no-op on SQLite: the TTL alone applies)."""

    def stop(self) -> None:
        """Stops listening."""
