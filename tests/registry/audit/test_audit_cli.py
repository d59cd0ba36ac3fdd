"""`loraplex audit anchor` and `loraplex audit verify` against a live registry process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.live import LiveRegistry, start_registry


@pytest.fixture
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    with start_registry(pg_admin_url, s3_endpoint) as registry:
        yield registry


def _cli(live: LiveRegistry, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**live.env, "LORAPLEX_CLI_CONFIG": str(config), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_audit_cli_shows_anchors_and_a_cut_tail(live: LiveRegistry, tmp_path: Path) -> None:
    login = ["login", "--url", live.base_url, "--client-id", live.client_id]
    assert _cli(live, tmp_path, *login, "--client-secret", live.client_secret).returncode == 0
    out = _cli(live, tmp_path, "audit", "verify")
    assert out.returncode == 0 and "no anchors yet" in out.stdout, out.stderr
    with live.http() as http:  # seq 2: a tenant
        resp = http.post(
            "/v1/tenants", json={"slug": "acme", "display_name": "A"}, headers=live.bearer()
        )
        assert resp.status_code == 201
    out = _cli(live, tmp_path, "audit", "anchor")
    assert out.returncode == 0, out.stderr
    assert "checkpoint 1 (2 chain heads) anchored as audit/checkpoints/" in out.stdout
    out = _cli(live, tmp_path, "audit", "verify")
    assert out.returncode == 0, out.stderr
    assert (
        "audit chain intact: 2 events in 2 chains; 1 checkpoints; 1 anchors, newest at "
        "checkpoint 1" in out.stdout
    )
    assert "no Object Lock" in out.stdout
    out = _cli(live, tmp_path, "audit", "verify", "--tenant", "acme")
    assert out.returncode == 0, out.stderr
    assert "tenant acme's audit chain intact: 1 events in 1 chains" in out.stdout
    # someone with database write access cuts acme's only event and moves its head back
    engine = create_engine(live.env["LORAPLEX_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(
            text(
                "UPDATE audit_chain_heads SET last_chain_seq = 0, last_seq = 0, "
                "last_hash = repeat('0', 64) "
                "WHERE chain = (SELECT chain FROM audit_events WHERE seq = 2)"
            )
        )
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()
    out = _cli(live, tmp_path, "audit", "verify")
    assert out.returncode == 1
    assert "BROKEN at seq 2 (chain tenant:" in out.stderr, out.stderr
    assert "cut from the end" in out.stderr, out.stderr
    out = _cli(live, tmp_path, "audit", "verify", "--tenant", "acme")
    assert out.returncode == 1 and "tenant acme's audit chain BROKEN at seq 2" in out.stderr
