"""Migrations on real PostgreSQL (and SQLite): upgrade -> downgrade -> upgrade leaves the same
schema, and the database holds the models' CHECK constraints (typed states)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, Engine, Uuid, bindparam, create_engine, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from registry.db import make_engine
from registry.migrate import downgrade, upgrade
from registry.models import Adapter, AdapterVersion, Base, Tenant, TrainingJob
from registry.models.enums import JobStatus, VersionStatus
from tests.conftest import create_database, require_env

QUOTED = re.compile(r"'((?:[^']|'')*)'")


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


def _checks_in_models() -> dict[tuple[str, str], set[str]]:
    """(table, constraint name) -> the values its CHECK allows."""
    out = {}
    for table in Base.metadata.sorted_tables:
        for c in table.constraints:
            if isinstance(c, CheckConstraint):
                sql = c.sqltext.compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
                out[(table.name, str(c.name))] = set(QUOTED.findall(str(sql)))
    return out


def _checks_in_database(url: str) -> dict[tuple[str, str], set[str]]:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {
        (table, str(c["name"])): set(QUOTED.findall(c["sqltext"]))
        for table in insp.get_table_names()
        for c in insp.get_check_constraints(table)
    }
    engine.dispose()
    return out


def test_models_and_migrations_have_the_same_checks(tmp_path: Path) -> None:
    expected = _checks_in_models()
    assert ("adapter_versions", "ck_adapter_versions_status") in expected
    assert expected[("training_schedules", "ck_training_schedules_last_outcome")] == {
        "",
        "queued",
        "skipped",
    }
    url = create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_checks_{os.getpid()}")
    upgrade(url)
    assert _checks_in_database(url) == expected
    downgrade(url, "0005")
    assert _checks_in_database(url) == {}
    sqlite = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(sqlite)
    assert _checks_in_database(sqlite) == expected


def _seed(session: Session) -> uuid.UUID:
    """A tenant, base model, adapter, a ready version and its finished training job."""
    tenant = Tenant(slug=f"t-{uuid.uuid4().hex[:8]}", display_name="T")
    tenant.quota_dataset_bytes, tenant.quota_adapters = 1 << 20, 10
    session.add(tenant)
    session.flush()
    # Core, with the columns every revision from 0005 has: the ORM class has newer ones.
    base_id = uuid.uuid4()
    session.execute(
        text(
            "INSERT INTO base_models (id, name, uri, digest, files, total_bytes, num_layers,"
            " module_shapes, config, created_by, created_at) VALUES (:id, :name, 'file:///base',"
            " :digest, '{}', 0, 1, '{}', '{}', 'test', CURRENT_TIMESTAMP)"
        ),
        {
            "id": base_id.hex if session.bind.dialect.name == "sqlite" else base_id,
            "name": f"base-{uuid.uuid4().hex[:8]}",
            "digest": "0" * 64,
        },
    )
    adapter = Adapter(
        tenant_id=tenant.id,
        name="a",
        base_model_id=base_id,
        training_config={},
        promotion_policy={},
        created_by="test",
    )
    session.add(adapter)
    session.flush()
    version_id, sqlite = uuid.uuid4(), session.bind.dialect.name == "sqlite"

    def key(value: uuid.UUID) -> object:
        return value.hex if sqlite else value

    ids = {"v": key(version_id), "t": key(tenant.id), "a": key(adapter.id), "b": key(base_id)}
    session.execute(
        text(
            "INSERT INTO adapter_versions (id, tenant_id, adapter_id, version, status,"
            " status_message, base_model_id, base_model_digest, training_config, config_hash,"
            " trigger, trigger_ref, code_version, created_by, created_at, updated_at)"
            " VALUES (:v, :t, :a, 1, 'ready', '', :b, :digest, '{}', :digest, 'manual', '{}',"
            " 'test', 'test', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {**ids, "digest": "0" * 64},
    )
    session.execute(
        text(
            "INSERT INTO training_jobs (id, tenant_id, adapter_id, version_id, status, trigger,"
            " trigger_ref, config, dataset_ids, progress, result, attempts, max_attempts,"
            " cancel_requested, error, created_by, created_at, updated_at)"
            " VALUES (:j, :t, :a, :v, 'succeeded', 'manual', '{}', '{}', '[]', '{}', '{}', 0, 3,"
            " false, '', 'test', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {**ids, "j": key(uuid.uuid4())},
    )
    return version_id


COPY_VERSION = text(
    "INSERT INTO adapter_versions (id, tenant_id, adapter_id, version, status, status_message,"
    " base_model_id, base_model_digest, training_config, config_hash, trigger, trigger_ref,"
    " code_version, created_by, created_at, updated_at)"
    " SELECT :new_id, tenant_id, adapter_id, version + 1, :status, status_message,"
    " base_model_id, base_model_digest, training_config, config_hash, trigger, trigger_ref,"
    " code_version, created_by, created_at, updated_at FROM adapter_versions WHERE id = :id"
).bindparams(bindparam("new_id", type_=Uuid()), bindparam("id", type_=Uuid()))
SET_VERSION_STATUS = text("UPDATE adapter_versions SET status = :status WHERE id = :id").bindparams(
    bindparam("id", type_=Uuid())
)
SET_JOB_STATUS = text(
    "UPDATE training_jobs SET status = :status WHERE version_id = :id"
).bindparams(bindparam("id", type_=Uuid()))


def _assert_refuses_unknown_status(session: Session, version: AdapterVersion) -> None:
    conn = session.connection()
    bogus = {"status": "bogus", "id": version.id}
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(SET_VERSION_STATUS, bogus)
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(COPY_VERSION, {"new_id": uuid.uuid4(), **bogus})
    with pytest.raises(IntegrityError), conn.begin_nested():
        conn.execute(SET_JOB_STATUS, bogus)
    with conn.begin_nested():  # a known value still goes in
        conn.execute(COPY_VERSION, {"new_id": uuid.uuid4(), "status": "failed", "id": version.id})


def test_postgres_refuses_unknown_states(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn, conn.begin() as outer:
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        version = session.get(AdapterVersion, _seed(session))
        assert version is not None
        _assert_refuses_unknown_status(session, version)
        session.expire_all()
        assert version.status is VersionStatus.READY  # read back as the enum member
        version.status = "bogus"  # type: ignore[assignment]
        with pytest.raises(StatementError, match="bogus"):
            session.flush()
        session.close()
        outer.rollback()


def test_sqlite_upgrade_keeps_referenced_rows(tmp_path: Path) -> None:
    """0006 rebuilds SQLite tables that other rows reference (adapter_versions, training_jobs):
    foreign keys must not stop the rebuild, and the rows and their references survive it."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url, "0005")
    engine = make_engine(url)
    with Session(engine) as session:
        version_id = _seed(session)
        session.commit()
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        version = session.get(AdapterVersion, version_id)
        assert version is not None and version.status is VersionStatus.READY
        assert session.query(TrainingJob).one().status is JobStatus.SUCCEEDED
        _assert_refuses_unknown_status(session, version)
        session.rollback()
    engine.dispose()
    downgrade(url, "0005")
    assert _checks_in_database(url) == {}


def test_0010_gives_existing_whole_role_clients_the_new_scopes(tmp_path: Path) -> None:
    """Clients created before the traffic and teacher scopes existed, with their role's whole
    scope set, get the new ones; a client narrowed at creation keeps exactly what it had."""
    from registry.auth import scopes as sc

    old_tenant = sc.ROLE_SCOPES[sc.Role.TENANT] - {
        sc.TRAFFIC_READ,
        sc.TRAFFIC_WRITE,
        sc.TEACHERS_READ,
    }
    old_ops = sc.ROLE_SCOPES[sc.Role.OPS] - {
        sc.TRAFFIC_READ,
        sc.TRAFFIC_WRITE,
        sc.TEACHERS_READ,
        sc.TEACHERS_WRITE,
    }
    clients = {
        "whole-tenant": ("tenant", sc.render(old_tenant)),
        "narrow-tenant": ("tenant", "inference"),
        "whole-ops": ("ops", sc.render(old_ops)),
    }
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url, "0009")
    engine = create_engine(url)
    with engine.begin() as conn:
        for name, (role, scopes) in clients.items():
            conn.execute(
                text(
                    "INSERT INTO oauth_clients (id, client_id, secret_hash, role, scopes, name,"
                    " created_by, created_at) VALUES (:id, :cid, 'x', :role, :scopes, :name,"
                    " 'test', '2026-01-01 00:00:00')"
                ).bindparams(bindparam("id", type_=Uuid())),
                {"id": uuid.uuid4(), "cid": name, "role": role, "scopes": scopes, "name": name},
            )
    upgrade(url)

    def scopes() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT client_id, scopes FROM oauth_clients")).all()
        return {cid: s for cid, s in rows}

    after = scopes()
    assert after["whole-tenant"] == sc.render(sc.ROLE_SCOPES[sc.Role.TENANT])
    assert after["whole-ops"] == sc.render(sc.ROLE_SCOPES[sc.Role.OPS])
    assert after["narrow-tenant"] == "inference"
    downgrade(url, "0009")
    assert scopes() == {name: s for name, (_, s) in clients.items()}
    engine.dispose()
