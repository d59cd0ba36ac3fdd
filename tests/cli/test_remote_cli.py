"""The `loraplex` CLI against a live registry process, over HTTP only: an ops and a tenant
profile, the main verbs, token refresh, and errors shown as the server's message.

The registry has no broker, so the job `train` follows runs in the registry process (the
embedded worker) on the tiny base model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveRegistry, start_registry
from tests.serving.stack import make_peft_adapter
from tests.workers.platform import tiny_base_model
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
QUICK = {"epochs": 2, "learning_rate": 0.005, "batch_size": 8, "rank": 8, "max_seq_length": 128}


class Cli:
    def __init__(self, live: LiveRegistry, config: Path) -> None:
        self.env = {**live.env, "LORAPLEX_CLI_CONFIG": str(config), "COLUMNS": "200"}

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if ok:
            assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)


@pytest.fixture(scope="module")
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    registry = start_registry(
        pg_admin_url, s3_endpoint, extra_env={"LORAPLEX_EVAL_MAX_GENERATE": "8"}
    )
    try:
        yield registry
    finally:
        registry.stop()


def test_the_main_verbs_over_http(live: LiveRegistry, tmp_path: Path) -> None:
    base = tiny_base_model()
    ops = Cli(live, tmp_path / "ops")
    out = ops.run(
        "login",
        "--url",
        live.base_url,
        "--client-id",
        live.client_id,
        "--client-secret",
        live.client_secret,
    )
    assert "as ops client" in out.stdout
    creds = tmp_path / "ops" / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    with live.http() as http:  # base models are registered by ops; the CLI has no verb for it
        resp = http.post(
            "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=live.bearer()
        )
        assert resp.status_code == 201, resp.text

    assert ops.json("tenants", "create", "acme", "--name", "Acme")["slug"] == "acme"
    client = ops.json("tenants", "client", "acme")
    assert "acme" in ops.run("tenants", "list").stdout

    acme = Cli(live, tmp_path / "acme")
    out = acme.run(
        "login",
        "--url",
        live.base_url,
        "--client-id",
        client["client_id"],
        "--client-secret",
        client["client_secret"],
    )
    assert "tenant client" in out.stdout and "tenant acme" in out.stdout  # the default tenant
    data = tmp_path / "orders.jsonl"
    data.write_bytes(to_jsonl(sample_rows("orders", 120, seed=1)))
    out = acme.run("datasets", "upload", str(data), "--name", "orders")
    assert "orders v1: 120 rows" in out.stdout
    dataset_id = out.stdout.strip().rsplit("id ", 1)[1]
    acme.json(
        "adapters", "create", "orders", "--base-model", "tiny", "--training", json.dumps(QUICK)
    )
    acme.json("adapters", "policy", "orders", "--mode", "auto")

    # train: follows the job to the end, with the events and the gate's decision.
    out = acme.run("train", "orders", "--dataset", dataset_id)
    assert "job succeeded" in out.stdout and "gate: promoted" in out.stdout, out.stdout
    assert "started" in out.stdout and "artifact" in out.stdout
    table = acme.run("versions", "orders").stdout
    assert "v1" in table and "ready" in table and "production" in table and "manual" in table

    # promote and roll back, with an uploaded v2
    folder = make_peft_adapter(base, tmp_path / "v2", seed=5)
    with live.http() as http:
        files = {
            f: (f, (folder / f).read_bytes())
            for f in ("adapter_config.json", "adapter_model.safetensors")
        }
        token = {
            "Authorization": f"Bearer {live.token(client['client_id'], client['client_secret'])}"
        }
        resp = http.post("/v1/tenants/acme/adapters/orders/versions", files=files, headers=token)
        assert resp.status_code == 201, resp.text
    assert "orders@production -> v2" in acme.run("promote", "orders", "v2").stdout
    assert "orders@production -> v1 (rolled back)" in acme.run("rollback", "orders").stdout

    # ops: a schedule and a drift policy; the tenant may read but not set them
    out = ops.run(
        "schedule",
        "set",
        "orders",
        "-t",
        "acme",
        "--cron",
        "0 3 1 1,4,7,10 *",
        "--timezone",
        "Europe/Berlin",
    )
    assert "next runs (UTC)" in out.stdout and "T01:00:00Z" in out.stdout  # 03:00 CEST
    assert "Europe/Berlin" in ops.run("schedule", "list").stdout
    assert acme.json("schedule", "show", "orders")["cron"] == "0 3 1 1,4,7,10 *"
    denied = acme.run("schedule", "set", "orders", "--cron", "0 * * * *", ok=False)
    assert (
        denied.returncode == 1
        and "error 403" in denied.stderr
        and "retraining:write" in denied.stderr
    )
    policy = ops.json(
        "drift-policy", "set", "orders", "-t", "acme", "--window", "1h", "--min-samples", "50"
    )
    assert (policy["window"], policy["threshold"], policy["min_samples"]) == ("1h", 0.2, 50)
    bad = ops.run("schedule", "set", "orders", "-t", "acme", "--cron", "61 * * * *", ok=False)
    assert bad.returncode == 1 and "61 * * * *" in bad.stderr

    # lineage: a tree, PROV-JSON, and an SVG picture
    tree = acme.run("lineage", "orders", "1").stdout
    assert (
        "orders@v1" in tree
        and "data orders@v1 (train): 120 rows" in tree
        and "eval heldout-" in tree
    )
    assert "alias production" in tree
    prov = acme.json("lineage", "orders", "1", "--format", "prov")
    assert "entity" in prov and "activity" in prov
    picture = tmp_path / "lineage.svg"
    acme.run("lineage", "orders", "1", "--format", "svg", "--output", str(picture))
    root = ET.fromstring(picture.read_text())
    assert (
        root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}rect")) >= 5
    )

    assert "audit chain intact" in ops.run("audit", "verify").stdout


def test_tokens_are_refreshed_and_logins_checked(live: LiveRegistry, tmp_path: Path) -> None:
    ops = Cli(live, tmp_path / "ops")
    ops.run(
        "login",
        "--url",
        live.base_url,
        "--client-id",
        live.client_id,
        "--client-secret",
        live.client_secret,
    )
    creds = tmp_path / "ops" / "credentials.json"
    profile = json.loads(creds.read_text())
    creds.write_text(json.dumps({**profile, "expires_at": 0}))  # the cached token has expired
    ops.run("tenants", "list")
    refreshed = json.loads(creds.read_text())
    assert refreshed["token"] != profile["token"] and refreshed["expires_at"] > 0

    wrong = ops.run(
        "login",
        "--url",
        live.base_url,
        "--client-id",
        live.client_id,
        "--client-secret",
        "nope",
        ok=False,
    )
    assert wrong.returncode == 1 and "error 401" in wrong.stderr
    nobody = Cli(live, tmp_path / "nobody").run("tenants", "list", ok=False)
    assert nobody.returncode == 1 and "loraplex login" in nobody.stderr
