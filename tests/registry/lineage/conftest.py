"""The lineage tests' fixture `w` (a World whose app serves the lineage endpoint) and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from registry.auth.cache import clear_all
from registry.lineage.endpoints import router
from tests.conftest import World


@pytest.fixture
def w(world: World) -> Iterator[World]:
    """Stopgap until registry/app.py includes `registry.lineage.endpoints.router`: add it for
    this test only (the PostgreSQL app is shared by the session; the authz matrix checks that
    every route it serves has a row)."""
    routes = world.stack.app.router.routes
    before = list(routes)
    if f"{router.prefix}/{{version}}/lineage" not in {getattr(r, "path", "") for r in routes}:
        world.stack.app.include_router(router)
    try:
        yield world
    finally:
        routes[:] = before


def url(tenant: str, adapter: str, version: str, **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/v1/tenants/{tenant}/adapters/{adapter}/versions/{version}/lineage" + (
        f"?{q}" if q else ""
    )


@contextmanager
def statements(w: World) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    clear_all()  # every counted request pays its own token check, cached or not before
    event.listen(w.stack.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(w.stack.engine, "before_cursor_execute", record)
