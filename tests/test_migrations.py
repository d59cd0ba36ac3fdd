"""Migrations on real PostgreSQL: upgrade -> downgrade -> upgrade leaves the same schema."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, inspect

from registry.migrate import downgrade, upgrade
from registry.models import Base
from tests.conftest import create_database, require_env


def _tables(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {t: sorted(c["name"] for c in insp.get_columns(t)) for t in insp.get_table_names()}
    engine.dispose()
    return out


def test_upgrade_downgrade_upgrade_on_postgres() -> None:
    url = create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_migr_{os.getpid()}")
    upgrade(url)
    first = _tables(url)
    assert set(first) == set(Base.metadata.tables) | {"alembic_version"}
    for name, table in Base.metadata.tables.items():  # the models and the migrations agree
        assert first[name] == sorted(c.name for c in table.columns), name
    downgrade(url, "base")
    assert set(_tables(url)) == {"alembic_version"}
    upgrade(url)
    assert _tables(url) == first


def test_upgrade_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)
    assert set(_tables(url)) == set(Base.metadata.tables) | {"alembic_version"}
