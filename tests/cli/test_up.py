"""`loraplex up` on a fresh home: registry, in-process worker, gateway and the vLLM CPU engine
come up; a tenant trains an adapter and calls it through the gateway; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port
from tests.workers.platform import tiny_base_model
from workers.devmodel.samples import ORDERS_SYSTEM, sample_rows, to_jsonl

pytestmark = pytest.mark.slow
QUICK = {"epochs": 2, "learning_rate": 0.005, "batch_size": 8, "rank": 8, "max_seq_length": 128}


def _start(home: Path, ports: dict[str, int], *extra: str) -> tuple[subprocess.Popen[str], Path]:
    log = home.parent / f"up-{time.monotonic_ns()}.log"
    env = {**os.environ, "LORAPLEX_HOME": str(home), "LORAPLEX_LOG_JSON": "true", "COLUMNS": "200"}
    env.pop("LORAPLEX_DATABASE_URL", None)
    env.pop("LORAPLEX_OBJECT_STORE", None)
    args = [
        "up",
        "--port", str(ports["registry"]),
        "--gateway-port", str(ports["gateway"]),
        "--engine-port", str(ports["engine"]),
        "--base-model-path", str(tiny_base_model()),
        *extra,
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 900
    while "Ctrl-C stops everything" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(1)
    return proc, log


def _stop(proc: subprocess.Popen[str], log: Path) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0, log.read_text()[-4000:]
    return log.read_text()


def test_up_runs_the_platform_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ports = {"registry": free_port(), "gateway": free_port(), "engine": free_port()}
    registry, gateway = (
        f"http://127.0.0.1:{ports['registry']}",
        f"http://127.0.0.1:{ports['gateway']}",
    )
    proc, log = _start(home, ports)
    try:
        text = log.read_text()
        assert f"{registry}" in text and f"{gateway}/v1" in text and "ops secret" in text
        creds_file = home / "ops-client.json"
        assert creds_file.stat().st_mode & 0o777 == 0o600
        creds = json.loads(creds_file.read_text())
        assert creds["client_secret"] in text  # shown once, on first start
        http = httpx.Client(base_url=registry, timeout=120, trust_env=False)
        assert httpx.get(f"{gateway}/readyz", trust_env=False).json()["checks"] == {
            "database": True,
            "engine": True,
        }

        def token(cid: str, secret: str) -> dict[str, str]:
            resp = http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
            )
            assert resp.status_code == 200, resp.text
            return {"Authorization": f"Bearer {resp.json()['access_token']}"}

        ops = token(creds["client_id"], creds["client_secret"])
        assert (
            http.post(
                "/v1/tenants", json={"slug": "acme", "display_name": "Acme"}, headers=ops
            ).status_code
            == 201
        )
        client = http.post("/v1/tenants/acme/clients", json={}, headers=ops).json()
        acme = token(client["client_id"], client["client_secret"])
        rows = to_jsonl(sample_rows("orders", 80, seed=1))
        data = http.post(
            "/v1/tenants/acme/datasets",
            data={"name": "orders"},
            files={"file": ("o.jsonl", rows)},
            headers=acme,
        ).json()
        adapter = {"name": "orders", "base_model": "tiny-chat", "training": QUICK}
        assert http.post("/v1/tenants/acme/adapters", json=adapter, headers=acme).status_code == 201
        http.put(
            "/v1/tenants/acme/adapters/orders/promotion-policy", json={"mode": "auto"}, headers=acme
        )
        job = http.post(
            "/v1/tenants/acme/training-jobs",
            json={"adapter": "orders", "dataset_ids": [data["id"]]},
            headers=acme,
        ).json()
        deadline = time.monotonic() + 300
        while (job := http.get(f"/v1/tenants/acme/training-jobs/{job['id']}", headers=acme).json())[
            "status"
        ] not in {"succeeded", "failed"}:
            assert time.monotonic() < deadline, job
            time.sleep(1)
        assert job["status"] == "succeeded" and job["result"]["promoted"], job

        prompt = (
            f"<|system|>\n{ORDERS_SYSTEM}<|end|><|user|>\nSend 2 mugs to Bob.<|end|><|assistant|>\n"
        )
        resp = httpx.post(
            f"{gateway}/v1/completions",
            json={"model": "orders", "prompt": prompt, "max_tokens": 16, "temperature": 0},
            headers=acme,
            timeout=120,
            trust_env=False,
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-loraplex-model"] == "orders@v1" and resp.json()["choices"][0]["text"]
    finally:
        out = _stop(proc, log)
    assert "stopping: engine, gateway, registry" in out and "stopped" in out
    for port in ports.values():  # nothing is left listening
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2, trust_env=False)

    # A second start reuses the home: same ops client, its secret not printed again.
    proc, log = _start(home, ports, "--no-engine")
    text = _stop(proc, log)
    assert (
        creds["client_id"] in text
        and "ops secret" not in text
        and creds["client_secret"] not in text
    )
