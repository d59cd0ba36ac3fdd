"""`loraplex split set | show | clear | history` against a live registry process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_traffic_cli import login
from tests.live import LiveRegistry, start_registry
from tests.lora_files import make_adapter, make_base_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    registry = start_registry(pg_admin_url, s3_endpoint)
    try:
        yield registry
    finally:
        registry.stop()


def test_split_verbs(live: LiveRegistry, tmp_path: Path) -> None:
    ops = login(live, tmp_path / "ops", live.client_id, live.client_secret)
    ops.json("tenants", "create", "acme", "--name", "Acme")
    client = ops.json("tenants", "client", "acme")
    acme = login(live, tmp_path / "acme", client["client_id"], client["client_secret"])
    with live.http() as http:
        base = make_base_model(tmp_path / "tiny")
        resp = http.post(
            "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=live.bearer()
        )
        assert resp.status_code == 201, resp.text
        acme.json("adapters", "create", "support", "--base-model", "tiny", "--training", "{}")
        token = {
            "Authorization": f"Bearer {live.token(client['client_id'], client['client_secret'])}"
        }
        for _ in range(2):
            config, weights = make_adapter("tiny")
            files = {
                "adapter_config.json": ("adapter_config.json", config),
                "adapter_model.safetensors": ("adapter_model.safetensors", weights),
            }
            url = "/v1/tenants/acme/adapters/support/versions"
            assert http.post(url, files=files, headers=token).status_code == 201
    acme.run("promote", "support", "v1")
    acme.run("promote", "support", "v2", "--alias", "candidate")

    out = acme.json("split", "set", "support", "--weights", "production=90, candidate=10",
                    "--reason", "canary v2", "--min-requests", "200")  # fmt: skip
    assert [(a["version"], a["weight"]) for a in out["arms"]] == [(1, 90), (2, 10)]
    assert out["rollback"]["min_requests"] == 200 and out["rollback"]["max_latency_ratio"] == 1.5
    shown = ops.json("split", "show", "support", "-t", "acme")
    assert shown["active"] is True and shown["reason"] == "canary v2"
    out = acme.json("split", "set", "support", "--weights", "v1=75,v2=25", "--no-rollback")
    assert out["rollback"] is None and out["arms"][1]["weight"] == 25

    bad = acme.run("split", "set", "support", "--weights", "production=90,v2=20", ok=False)
    assert bad.returncode == 1 and "422" in bad.stderr and "must sum to 100" in bad.stderr
    bad = acme.run("split", "set", "support", "--weights", "production:90", ok=False)
    assert bad.returncode == 2 and "KEY=PERCENT" in bad.stderr

    out = acme.run("split", "clear", "support", "--reason", "seen enough").stdout
    assert "production takes all traffic" in out
    assert acme.json("split", "show", "support")["active"] is False
    events = acme.json("split", "history", "support", "--json")
    assert [e["reason"] for e in events] == ["canary v2", "", "seen enough"]
    table = acme.run("split", "history", "support").stdout
    assert "production v1 90% / candidate v2 10%" in table and "seen enough" in table
