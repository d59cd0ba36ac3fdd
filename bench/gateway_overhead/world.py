"""What the overhead bench runs against: a registry with one tenant whose adapter `orders` has a
production version (through the API, as a user would), the stub upstream, and gateway processes
(this tree's and a baseline revision's) on the registry's database, pointed at the stub."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.live import LiveRegistry
from tests.lora_files import make_adapter, make_base_model
from tests.services import _die_with, free_port

REPO = Path(__file__).resolve().parent.parent.parent
GATEWAY_ENV = {
    "LORAPLEX_GATEWAY_RATE_LIMIT_RPS": "1000000",  # the limiters must not shape the load
    "LORAPLEX_GATEWAY_RATE_LIMIT_BURST": "1000000",
    "LORAPLEX_GATEWAY_TOKENS_PER_MINUTE": "1000000000",
    "LORAPLEX_ENGINE_API_KEY": "stub-key",
    "LORAPLEX_LOG_LEVEL": "WARNING",
}


@dataclass
class Proc:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tenant(live: LiveRegistry, tmp: Path) -> dict[str, str]:
    """Base model `tiny`, tenant `acme` with `orders` v1 in production; acme's bearer header."""
    ops = live.bearer()
    with live.http() as http:

        def ok(r: httpx.Response) -> Any:
            if r.status_code >= 300:
                raise RuntimeError(f"{r.request.url}: {r.status_code} {r.text}")
            return r.json()

        base = make_base_model(tmp / "tiny")
        ok(http.post("/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=ops))
        ok(http.post("/v1/tenants", json={"slug": "acme", "display_name": "Acme"}, headers=ops))
        client = ok(http.post("/v1/tenants/acme/clients", json={}, headers=ops))
        acme = live.bearer(client["client_id"], client["client_secret"])
        ok(
            http.post(
                "/v1/tenants/acme/adapters",
                json={"name": "orders", "base_model": "tiny"},
                headers=acme,
            )
        )
        config, weights = make_adapter("tiny")
        files = {
            "adapter_config.json": ("adapter_config.json", config),
            "adapter_model.safetensors": ("adapter_model.safetensors", weights),
        }
        ok(http.post("/v1/tenants/acme/adapters/orders/versions", files=files, headers=acme))
        ok(
            http.put(
                "/v1/tenants/acme/adapters/orders/aliases/production",
                json={"version": 1, "reason": "bench"},
                headers=acme,
            )
        )
    return acme


def _wait(p: Proc, path: str, log: Path) -> Proc:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=p.url, trust_env=False, timeout=2) as http:
        while p.proc.poll() is None and time.monotonic() < deadline:
            try:
                if http.get(path).status_code == 200:
                    return p
            except httpx.TransportError:
                time.sleep(0.1)
    p.stop()
    raise RuntimeError(f"{p.name} not ready:\n{log.read_text(errors='replace')[-3000:]}")


def start_stub(home: Path) -> Proc:
    port = free_port()
    log = home / "stub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway_overhead.stub", str(port)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with(15),
        )
    return _wait(Proc("stub", f"http://127.0.0.1:{port}", proc), "/health", log)


def start_gateway(
    live: LiveRegistry,
    name: str,
    tree: Path,
    engine_url: str,
    env: dict[str, str],
    profile: Path | None = None,
) -> Proc:
    """`loraplex serve gateway` from `tree` (this repository, or a baseline's export); with
    `profile`, under profiled.py (SIGUSR1 starts cProfile, SIGUSR2 writes it to `profile`)."""
    port = free_port()
    log = live.home / f"gateway-{name}.log"
    argv = [sys.executable, "-m", "cli", "serve", "gateway", "--port", str(port)]
    if profile is not None:
        argv = [sys.executable, "-m", "bench.gateway_overhead.profiled", str(port), str(profile)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=tree,
            env={**live.env, **GATEWAY_ENV, "LORAPLEX_ENGINE_URL": engine_url, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with(15),
        )
    return _wait(Proc(f"gateway-{name}", f"http://127.0.0.1:{port}", proc), "/readyz", log)
