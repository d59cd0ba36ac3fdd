"""Unit checks of the outage plumbing (the boundary is faked here; the other tests in this
folder stop the real services): store error translation, the error handler's mapping, and
after-commit sends that fail."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from botocore.stub import Stubber
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from registry.db import after_commit, make_engine, make_sessionmaker, run_unit_of_work
from registry.errors import NotFound, install_error_handlers, outage
from registry.storage import (
    LocalObjectStore,
    ObjectNotFound,
    S3ObjectStore,
    StorageError,
    StorageUnavailable,
)


@pytest.mark.parametrize(("code", "status"), [("InternalError", 500), ("SlowDown", 503)])
def test_s3_server_errors_are_an_outage(code: str, status: int) -> None:
    store = S3ObjectStore("b", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    with Stubber(store.client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(StorageUnavailable):
            store.get_bytes("k")


def test_s3_client_errors_are_not_an_outage() -> None:
    store = S3ObjectStore("b", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    with Stubber(store.client) as stub:
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
        stub.add_client_error("get_object", service_error_code="InvalidRange", http_status_code=416)
        with pytest.raises(ObjectNotFound):
            store.get_bytes("k")
        with pytest.raises(StorageError) as info:
            store.get_bytes("k")
    assert not isinstance(info.value, StorageUnavailable)


def test_a_full_disk_is_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(str(tmp_path), create=True)

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("registry.storage.local.os.replace", full)
    with pytest.raises(StorageUnavailable):
        store.put_bytes("a/b", b"data")


def test_outage_classification() -> None:
    dbapi = Exception("boom")
    assert outage(StorageUnavailable("s3 down")) == "object store"
    assert outage(ObjectNotFound("gone")) is None
    assert outage(sa_exc.OperationalError("SELECT 1", {}, dbapi)) == "database"
    assert outage(sa_exc.TimeoutError("QueuePool limit reached")) == "database"
    assert outage(sa_exc.IntegrityError("INSERT", {}, dbapi)) is None
    invalidated = sa_exc.DBAPIError("SELECT 1", {}, dbapi, connection_invalidated=True)
    assert outage(invalidated) == "database"


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "exc",
    [
        StorageUnavailable("put s3://secret-bucket/k: could not connect"),
        sa_exc.OperationalError("SELECT 1", {}, Exception("password=hunter2 refused")),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
    ],
)
def test_outages_answer_503_with_retry_after_and_no_internals(exc: Exception) -> None:
    resp = _app(exc).get("/boom")
    assert resp.status_code == 503
    assert int(resp.headers["retry-after"]) > 0
    assert resp.json()["error"] == "ServiceUnavailable"
    assert "secret" not in resp.text and "hunter2" not in resp.text and "Pool" not in resp.text


def test_other_errors_keep_their_answers() -> None:
    assert _app(NotFound("no such adapter")).get("/boom").status_code == 404
    integrity = sa_exc.IntegrityError("INSERT", {}, Exception("duplicate"))
    assert _app(integrity).get("/boom").status_code == 500
    assert _app(ObjectNotFound("recorded object is gone")).get("/boom").status_code == 500


def test_a_failing_after_commit_callback_neither_raises_nor_stops_the_others(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ran: list[str] = []

    def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    for session in run_unit_of_work(make_sessionmaker(engine)):
        after_commit(session, broker_down)
        after_commit(session, lambda: ran.append("second"))
    assert ran == ["second"]
    engine.dispose()
