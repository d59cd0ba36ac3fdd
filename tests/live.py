"""A real registry process (`loraplex serve registry`) on PostgreSQL + S3, for tests and benches.

    with start_registry(pg_admin_url, s3_endpoint) as live:
        httpx.get(f"{live.base_url}/v1/tenants", headers=live.bearer())

Each call gets its own database (built by `loraplex db upgrade`), S3 prefix (bucket created by
LORAPLEX_S3_CREATE_BUCKET), LORAPLEX_HOME and port; `stop()` ends it and drops the database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.services import AWS_ENV, _die_with, free_port

BUCKET = "loraplex-live"
CLI = [sys.executable, "-m", "cli"]


def _pg_admin(pg_admin_url: str, sql: str) -> None:
    engine = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"loraplex {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


class LiveRegistry:
    """One registry server process. `client_id`/`client_secret`: an ops client."""

    def __init__(self, pg_admin_url: str, s3_endpoint: str, extra_env: dict[str, str]) -> None:
        self.database = f"loraplex_live_{uuid.uuid4().hex[:12]}"
        self.home = Path(tempfile.mkdtemp(prefix="loraplex-live-"))
        self.log_path = self.home / "registry.log"
        self._pg_admin_url = pg_admin_url
        self._proc: subprocess.Popen[bytes] | None = None
        port = free_port()
        self.base_url, self.pid = f"http://127.0.0.1:{port}", 0
        db_url = make_url(pg_admin_url).set(database=self.database)
        self.env: dict[str, str] = {
            **AWS_ENV,
            **os.environ,
            "LORAPLEX_HOME": str(self.home),
            "LORAPLEX_DATABASE_URL": db_url.render_as_string(hide_password=False),
            "LORAPLEX_OBJECT_STORE": f"s3://{BUCKET}/{self.database}",
            "LORAPLEX_S3_ENDPOINT_URL": s3_endpoint,
            "LORAPLEX_S3_REGION": "us-east-1",
            "LORAPLEX_S3_CREATE_BUCKET": "true",
            "LORAPLEX_LOG_JSON": "true",
            **extra_env,
        }
        _pg_admin(pg_admin_url, f'CREATE DATABASE "{self.database}"')
        try:
            _cli(self.env, "db", "upgrade")
            out = _cli(self.env, "admin", "create-client", "--role", "ops", "--name", "live-ops")
            creds = json.loads(out.splitlines()[-1])
            self.client_id: str = creds["client_id"]
            self.client_secret: str = creds["client_secret"]
            with self.log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    [*CLI, "serve", "registry", "--host", "127.0.0.1", "--port", str(port)],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with(signal.SIGTERM),  # never outlive the test process
                )
            self.pid = self._proc.pid
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float = 60) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        with self.http(timeout=2) as http:
            while self._proc.poll() is None and time.monotonic() < deadline:
                try:
                    if http.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        log = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"registry not ready (exit {self._proc.returncode}):\n{log}")

    def http(self, timeout: float = 30.0) -> httpx.Client:
        # trust_env=False: an http_proxy in the environment must not intercept 127.0.0.1.
        return httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def token(
        self, client_id: str | None = None, secret: str | None = None, scope: str | None = None
    ) -> str:
        """An access token for a client (default: the ops client)."""
        auth = (client_id or self.client_id, secret or self.client_secret)
        form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        with self.http() as http:
            resp = http.post("/oauth/token", data=form, auth=auth)
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def bearer(self, client_id: str | None = None, secret: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client_id, secret)}"}

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), drop the database, remove the home dir. Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)
        _pg_admin(self._pg_admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_registry(
    pg_admin_url: str, s3_endpoint: str, *, extra_env: dict[str, str] | None = None
) -> LiveRegistry:
    """Start a registry on a fresh database and S3 prefix; returns once /readyz answers 200."""
    return LiveRegistry(pg_admin_url, s3_endpoint, extra_env or {})
