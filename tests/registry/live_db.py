"""A registry on a database of its own whose commits are real (the `stack` fixture's are
savepoints of a rolled-back transaction, and PostgreSQL delivers NOTIFY only on a real commit),
and a plain LISTEN connection to hear what the registry announces."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from registry.app import create_app
from registry.migrate import upgrade
from registry.notify import CHANNEL
from tests.conftest import RecordingQueue, Stack, World, create_database, pg_settings


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Heard:
    """A LISTEN connection of the test's own on the registry's channel."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(libpq(url), autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def drain(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """What arrived within `timeout` seconds."""
        return [json.loads(n.payload) for n in self.conn.notifies(timeout=timeout)]

    def close(self) -> None:
        self.conn.close()


class LiveDB:
    def __init__(self, url: str, world: World) -> None:
        self.url, self.world = url, world


@contextlib.contextmanager
def live_db(pg_admin_url: str, s3_endpoint: str, tmp_path: Path) -> Iterator[LiveDB]:
    """Yields the registry on a fresh migrated database; drops the database at the end."""
    name = f"loraplex_live_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_admin_url, name)
    upgrade(url)
    settings = pg_settings(url, s3_endpoint, tmp_path / "home", f"live-{name}")
    app = create_app(settings, queue=RecordingQueue())
    try:
        yield LiveDB(url, World(Stack("postgres", app, app.state.engine)))
    finally:
        app.state.engine.dispose()
        admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
