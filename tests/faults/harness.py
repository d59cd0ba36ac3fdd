"""Helpers for fault-injection tests: a registry app served by uvicorn on a thread, so the
test can stop and restart the services under it while real HTTP requests are in flight."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import run_unit_of_work
from tests.services import Service, _initdb, _run_postgres, free_port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (own thread and event loop); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="faults-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def client(base_url: str, timeout: float = 30.0) -> httpx.Client:
    # trust_env=False: an http_proxy in the environment must not intercept 127.0.0.1.
    return httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)


def ops_headers(app: FastAPI, http: httpx.Client) -> dict[str, str]:
    """A bearer header for a new ops client (created through the service layer)."""
    for session in run_unit_of_work(app.state.sessionmaker):
        row, secret = clients.create(session, actor=Principal.local_operator(), role=Role.OPS)
    resp = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(row.client_id, secret)
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def assert_unavailable(resp: httpx.Response) -> None:
    """The registry's answer to an outage: 503, Retry-After, its error shape, no internals."""
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) > 0
    body = resp.json()
    assert body["error"] == "ServiceUnavailable", body
    assert "Error" not in body["detail"] and "://" not in body["detail"], body


class RestartablePostgres:
    """One cluster whose server can be stopped and started again on the same port with the
    same data (fault-injection tests). `close()` stops it and removes the cluster."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tmp, self._as_pg = _initdb("pgr")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._server: Service | None = None
        self._runs = 0
        self.start()

    def start(self) -> None:
        if self._server is not None:
            return
        self._runs += 1
        run_dir = self.tmp / f"run-{self._runs}"  # holds the log; removed on stop
        run_dir.mkdir()
        (self.tmp / "data" / "postmaster.pid").unlink(missing_ok=True)
        self._server = _run_postgres(self.tmp, self.port, self._as_pg, run_dir, time.monotonic())

    def stop(self) -> None:
        """Fast shutdown: sessions are disconnected, new connections are refused."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
