"""Fixtures on real services: PostgreSQL (schema built by the Alembic migrations), the S3 server
over HTTP, and the embedded SQLite + local-folder stack for tests marked `smoke`.

`make test` starts the services and sets LORAPLEX_TEST_PG_URL / LORAPLEX_TEST_S3_ENDPOINT /
LORAPLEX_TEST_REDIS_URL. Without them the tests that need them fail (they are never skipped).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from registry.app import create_app
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import make_engine, run_unit_of_work
from registry.migrate import upgrade
from registry.settings import Settings
from registry.storage import ObjectStore, open_store

BUCKET = "loraplex-test"


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite with `make test` (it starts the services)")
    return value


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stack" in metafunc.fixturenames:
        smoke = metafunc.definition.get_closest_marker("smoke") is not None
        metafunc.parametrize(
            "stack", ["postgres", "sqlite"] if smoke else ["postgres"], indirect=True
        )


def create_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return require_env("LORAPLEX_TEST_PG_URL")


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    endpoint = require_env("LORAPLEX_TEST_S3_ENDPOINT")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    return endpoint


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> str:
    """One database for the session, built by running the migrations."""
    url = create_database(pg_admin_url, f"loraplex_test_{os.getpid()}")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def pg_settings(pg_url: str, s3_endpoint: str, home: Path, prefix: str) -> Settings:
    return Settings(
        home=home,
        database_url=pg_url,
        object_store=f"s3://{BUCKET}/{prefix}",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        log_json=True,
    )


@pytest.fixture(scope="session")
def pg_app(pg_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    home = tmp_path_factory.mktemp("pg-home")
    return create_app(pg_settings(pg_url, s3_endpoint, home, "session"), queue=RecordingQueue())


def s3_store(endpoint: str, prefix: str) -> ObjectStore:
    return open_store(f"s3://{BUCKET}/{prefix}", s3_endpoint_url=endpoint, s3_region="us-east-1")


class RecordingQueue:
    """Tasks the app sent, kept instead of run (API tests; real workers: tests/workers)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], float]] = []

    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None:
        self.sent.append((name, list(args), countdown))


class Stack:
    """An app wired to one backend, isolated for one test."""

    def __init__(self, kind: str, app: FastAPI, engine: Engine) -> None:
        self.kind, self.app, self.engine = kind, app, engine
        self.tasks = RecordingQueue()
        app.state.tasks = self.tasks

    @property
    def store(self) -> ObjectStore:
        store: ObjectStore = self.app.state.store
        return store

    def session(self) -> Session:
        session: Session = self.app.state.sessionmaker()
        return session


@dataclass
class Caller:
    client_id: str
    secret: str
    headers: dict[str, str]
    slug: str | None = None
    tenant_id: str | None = None


class World:
    """Real callers: clients created through the service layer, tokens from POST /oauth/token."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = TestClient(stack.app, base_url="https://testserver")
        self.ops = self._platform_client(Role.OPS)
        self.auditor = self._platform_client(Role.AUDITOR)

    def token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        resp = self.http.post("/oauth/token", data=form, auth=(client_id, secret))
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def _platform_client(self, role: Role) -> Caller:
        for session in run_unit_of_work(self.stack.app.state.sessionmaker):
            client, secret = clients.create(session, actor=Principal.local_operator(), role=role)
        return Caller(client.client_id, secret, self.bearer(client.client_id, secret))

    def bearer(self, client_id: str, secret: str, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client_id, secret, scope)}"}

    def tenant(self, slug: str, **quotas: int) -> Caller:
        resp = self.http.post(
            "/v1/tenants",
            json={"slug": slug, "display_name": slug.title(), **quotas},
            headers=self.ops.headers,
        )
        assert resp.status_code == 201, resp.text
        tenant_id = resp.json()["id"]
        resp = self.http.post(f"/v1/tenants/{slug}/clients", json={}, headers=self.ops.headers)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        headers = self.bearer(body["client_id"], body["client_secret"])
        return Caller(body["client_id"], body["client_secret"], headers, slug, tenant_id)


@pytest.fixture
def world(stack: Stack) -> World:
    return World(stack)


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "sqlite":
        settings = Settings(home=tmp_path / "home", log_json=True)
        settings.home_dir.mkdir()
        upgrade(settings.resolved_database_url)
        app = create_app(settings, queue=RecordingQueue())
        yield Stack("sqlite", app, app.state.engine)
        app.state.engine.dispose()
        return
    # PostgreSQL: every test runs inside one outer transaction that is rolled back at the end;
    # the app's own commits become savepoint releases. Objects go under a fresh S3 prefix.
    app: FastAPI = request.getfixturevalue("pg_app")
    engine: Engine = request.getfixturevalue("pg_engine")
    s3_endpoint: str = request.getfixturevalue("s3_endpoint")
    conn = engine.connect()
    outer = conn.begin()
    saved = (app.state.sessionmaker, app.state.store)
    app.state.sessionmaker = sessionmaker(
        bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    app.state.store = s3_store(s3_endpoint, f"t-{uuid.uuid4().hex[:12]}")
    try:
        yield Stack("postgres", app, engine)
    finally:
        app.state.sessionmaker, app.state.store = saved
        outer.rollback()
        conn.close()
