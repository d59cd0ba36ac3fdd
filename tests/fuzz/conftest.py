"""A world for fuzzing: tenant acme with a dataset, adapter `support` (version 1 at
`production`, a schedule, a drift policy) and a training job; tenant globex; ops and auditor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection

from tests.conftest import World
from tests.registry.test_authz_matrix import _build


@pytest.fixture
def known(world: World, tmp_path: Path) -> dict[str, str]:
    """Path parameter values that name real objects (acme's)."""
    return _build(world, tmp_path / "base")


@contextmanager
def savepoint(world: World) -> Iterator[None]:
    """Everything the app commits inside is undone afterwards (the test's connection)."""
    conn: Connection = world.stack.app.state.sessionmaker.kw["bind"]
    nested = conn.begin_nested()
    try:
        yield
    finally:
        if nested.is_active:
            nested.rollback()
