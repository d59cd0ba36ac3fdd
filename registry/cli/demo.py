"""`loraplex demo`: start the embedded registry and walk through the foundation flow over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample_rows(topic: str, n: int) -> bytes:
    rows = []
    for i in range(n):
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": f"You are the {topic} support assistant."},
                    {"role": "user", "content": f"How do I reset my {topic} password? (#{i})"},
                    {"role": "assistant", "content": f"Open {topic} settings, choose Security."},
                ]
            }
        )
    rows.append(rows[0])  # one exact duplicate: dropped and counted
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _show(resp: httpx.Response) -> Any:
    style = "green" if resp.is_success else "yellow"
    console.print(f"[{style}]{resp.request.method} {resp.request.url.path} -> {resp.status_code}")
    body = resp.json()
    console.print_json(data=body)
    return body


def _token(base: str, client_id: str, secret: str) -> str:
    resp = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def _cli(env: dict[str, str], *args: str) -> str:
    exe = [sys.executable, "-m", "registry.cli.__main__", *args]
    return subprocess.run(exe, env=env, check=True, capture_output=True, text=True).stdout


def run(
    home: Path = typer.Option(Path(".demo"), help="LORAPLEX_HOME for the demo (wiped first)"),
) -> None:
    home = home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "LORAPLEX_HOME": str(home), "LORAPLEX_LOG_JSON": "false"}
    for key in ("LORAPLEX_DATABASE_URL", "LORAPLEX_OBJECT_STORE"):
        env.pop(key, None)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    _step("1. Embedded default: SQLite + local object store under " + str(home))
    console.print(_cli(env, "db", "upgrade").strip())
    ops = json.loads(_cli(env, "admin", "create-client", "--role", "ops", "--name", "demo-ops"))
    auditor = json.loads(_cli(env, "admin", "create-client", "--role", "auditor"))
    console.print(f"ops client {ops['client_id']}, auditor client {auditor['client_id']}")

    log = (home / "registry.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "registry.cli.__main__", "serve", "registry", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(base, server)
        console.print(f"registry up at {base} (OpenAPI: {base}/docs; log: {log.name})")
        _walkthrough(base, env, ops, auditor)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    console.rule("[bold green]demo finished")


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the registry exited during start-up; see registry.log")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the registry did not become ready in 30 s")


def _walkthrough(
    base: str, env: dict[str, str], ops: dict[str, str], auditor: dict[str, str]
) -> None:
    ops_h = {"Authorization": f"Bearer {_token(base, ops['client_id'], ops['client_secret'])}"}

    _step("2. Ops create two tenants and an API client for each")
    secrets: dict[str, dict[str, str]] = {}
    for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Inc")):
        _show(
            httpx.post(
                f"{base}/v1/tenants", json={"slug": slug, "display_name": name}, headers=ops_h
            )
        )
        secrets[slug] = _show(
            httpx.post(
                f"{base}/v1/tenants/{slug}/clients", json={"name": f"{slug}-app"}, headers=ops_h
            )
        )

    _step("3. Tenant acme gets an OAuth2 token (client credentials) and uploads training data")
    acme = secrets["acme"]
    acme_h = {"Authorization": f"Bearer {_token(base, acme['client_id'], acme['client_secret'])}"}
    good = _sample_rows("Acme", 200)
    ds = _show(
        httpx.post(
            f"{base}/v1/tenants/acme/datasets",
            data={"name": "support"},
            files={"file": ("support.jsonl", good)},
            headers=acme_h,
            timeout=60,
        )
    )

    _step("4. A broken file is refused with a report a person can act on; nothing is stored")
    bad = good.splitlines()[0] + b'\n{"messages": [{"role": "tool", "content": "x"}]}\n'
    bad += b"not json\n"
    _show(
        httpx.post(
            f"{base}/v1/tenants/acme/datasets",
            data={"name": "support"},
            files={"file": ("bad.jsonl", bad)},
            headers=acme_h,
            timeout=60,
        )
    )

    _step("5. Acme trains a LoRA adapter on its data; evals decide the promotion")
    from registry.cli import demo_training

    demo_training.walkthrough(base, env, ops_h, acme_h)

    _step("6. Tenant globex cannot see acme's data (404, not 403)")
    globex = secrets["globex"]
    globex_h = {
        "Authorization": "Bearer " + _token(base, globex["client_id"], globex["client_secret"])
    }
    _show(httpx.get(f"{base}/v1/tenants/acme/datasets/{ds['id']}", headers=globex_h))

    _step("7. The auditor reads the tamper-evident audit log and verifies the chain")
    aud_h = {
        "Authorization": "Bearer " + _token(base, auditor["client_id"], auditor["client_secret"])
    }
    events = httpx.get(f"{base}/v1/audit/events", headers=aud_h).json()["items"]
    table = Table("seq", "actor", "action", "target", "hash")
    for e in events:
        table.add_row(str(e["seq"]), e["actor"], e["action"], e["target_id"], e["hash"][:16])
    console.print(table)
    _show(httpx.get(f"{base}/v1/audit/verify", headers=aud_h))
