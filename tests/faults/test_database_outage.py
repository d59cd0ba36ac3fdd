"""PostgreSQL stops under load: every request answers 503 (never 500), and the registry
recovers by itself once PostgreSQL is back (no restart of the registry)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.app import create_app
from registry.migrate import upgrade
from registry.settings import Settings
from tests.conftest import RecordingQueue, create_database
from tests.faults.harness import RestartablePostgres, assert_unavailable, client, ops_headers, serve


@pytest.fixture
def pg() -> Iterator[RestartablePostgres]:
    server = RestartablePostgres()
    try:
        yield server
    finally:
        server.close()


class Load:
    """Threads issuing authenticated GETs and POSTs; every response is kept."""

    def __init__(self, base_url: str, headers: dict[str, str], threads: int = 4) -> None:
        self.base_url, self.headers = base_url, headers
        self.responses: list[httpx.Response] = []
        self.transport_errors: list[Exception] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _run(self, i: int) -> None:
        with client(self.base_url, timeout=20) as http:
            while not self._stop.is_set():
                try:
                    if i % 2:
                        resp = http.get("/v1/tenants", headers=self.headers)
                    else:
                        slug = f"t-{uuid.uuid4().hex[:10]}"
                        body = {"slug": slug, "display_name": slug}
                        resp = http.post("/v1/tenants", json=body, headers=self.headers)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.transport_errors.append(exc)
                    continue
                with self._lock:
                    self.responses.append(resp)
                time.sleep(0.01)

    def mark(self) -> int:
        with self._lock:
            return len(self.responses)

    def since(self, start: int) -> list[httpx.Response]:
        with self._lock:
            return self.responses[start:]


def _wait_ok(http: httpx.Client, headers: dict[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get("/v1/tenants", headers=headers).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the registry did not recover after PostgreSQL came back")


def test_postgres_outage_is_503_and_recovers_without_restart(
    pg: RestartablePostgres, tmp_path: Path
) -> None:
    url = create_database(pg.url, "loraplex")
    upgrade(url)
    settings = Settings(home=tmp_path / "home", database_url=url, log_json=True)
    app = create_app(settings, queue=RecordingQueue())
    try:
        with serve(app) as base_url, client(base_url) as http:
            headers = ops_headers(app, http)
            with Load(base_url, headers) as load:
                time.sleep(1.0)
                before = load.mark()
                pg.stop()
                time.sleep(0.5)
                outage = load.mark()
                time.sleep(2.0)
                ready = http.get("/readyz")
                during = load.since(outage)
                pg.start()
                _wait_ok(http, headers)
                recovered = load.mark()
                time.sleep(1.0)
                after = load.since(recovered)
            everything = load.responses
        assert before > 0, "no request went through before the outage"
        assert [
            r.status_code for r in everything if r.status_code >= 500 and r.status_code != 503
        ] == []
        assert during, "no request was answered during the outage"
        for resp in during:
            assert_unavailable(resp)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable", ready.text
        assert ready.json()["checks"]["object_store"] == "ok", ready.text
        assert {r.request.method for r in after} == {"GET", "POST"}
        assert all(r.status_code in (200, 201) for r in after), [r.text for r in after][:3]
        assert load.transport_errors == []
    finally:
        app.state.engine.dispose()
