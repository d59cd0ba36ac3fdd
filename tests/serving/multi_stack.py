"""A live serving stack at scale, for tests and benches: one registry process, N real vLLM CPU
engines and M gateways on PostgreSQL, the S3 server and (optionally) Redis, the tiny base model.

Built on `tests/serving/stack.py` (its `Service` processes, adapter uploads and alias moves), with
these differences:

- every gateway is given every engine (`LORAPLEX_ENGINE_URLS`) and its own metrics port and
  settings (`gateway_env`, e.g. `LORAPLEX_GATEWAY_ROUTING=random` for one of them);
- every engine gets its own port, cache folder (`LORAPLEX_CACHE_DIR`: the resolver's adapter
  cache, the base model's local copy and vLLM's cache root) and TMPDIR, and its worker is pinned
  to its own core (`VLLM_CPU_OMP_THREADS_BIND`; by default all vLLM workers take core 0);
- all of them share one engine key (`LORAPLEX_ENGINE_API_KEY`, so the engines never race to
  create it under the shared home);
- any number of tenants, each with its own client;
- the engines start in the background: upload adapters while they boot, then `wait_ready()`.

The names the gateway gives engines are `host:port` (the `x-loraplex-engine` header);
`Engine.name` is that.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.live import BUCKET, start_registry
from tests.services import AWS_ENV, free_port
from tests.serving.stack import CLI, Service, ServingStack, wait_engines_seen

# Settings every multi-engine run wants: no rate limit shaping the load, usage flushed fast
# (splits' rollback check and lineage read it), small KV caches (two engines on one machine).
BASE_ENV = {
    "LORAPLEX_GATEWAY_RATE_LIMIT_RPS": "100000",
    "LORAPLEX_GATEWAY_RATE_LIMIT_BURST": "100000",
    "LORAPLEX_GATEWAY_TOKENS_PER_MINUTE": "100000000",
    "LORAPLEX_USAGE_FLUSH_SECONDS": "0.2",
    "LORAPLEX_ENGINE_DTYPE": "float32",
    "LORAPLEX_ENGINE_MAX_MODEL_LEN": "512",
    "LORAPLEX_ENGINE_KV_CACHE_GIB": "1",  # vllm-cpu takes whole GiB only ("0.25" fails)
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "LORAPLEX_ENGINE_POLL_SECONDS": "0.5",
    "LORAPLEX_RESOLVER_DELETE_GRACE_SECONDS": "1",
    "LORAPLEX_TRAFFIC_SAMPLE_RATE": "0",
}
SMALL = {"prompt": "Where is my order?", "max_tokens": 1, "temperature": 0}


@dataclass
class Engine:
    index: int
    port: int
    service: Service
    killed: bool = False

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.name}"


@dataclass
class Gateway:
    index: int
    url: str
    metrics_url: str
    service: Service
    env: dict[str, str]


@dataclass
class Reply:
    """One request through a gateway: what came back, and when (perf_counter seconds)."""

    status: int
    model: str | None  # x-loraplex-model: adapter@vN served
    engine: str | None  # x-loraplex-engine: host:port that served it
    sent: float
    done: float
    user: str | None = None
    gateway: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.done - self.sent


def metric_values(text: str, name: str) -> dict[str, float]:
    """{label set text: value} of one Prometheus metric in an exposition text."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    return {labels or "": float(v) for labels, v in pattern.findall(text)}


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of one metric's samples whose labels include `labels`."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in metric_values(text, name).items() if all(w in k for w in want))


class MultiStack(ServingStack):
    """Registry + `engines` vLLM engines + `len(gateway_env)` gateways (see the module doc)."""

    def __init__(
        self,
        pg_admin_url: str,
        s3_endpoint: str,
        base: Path,
        *,
        tenants: Sequence[str] = ("acme", "globex"),
        engines: int = 2,
        gateway_env: Sequence[dict[str, str]] = ({}, {}),
        extra_env: dict[str, str] | None = None,
        engine_env: dict[str, str] | None = None,
        redis_url: str | None = None,
        pin_engines: bool = True,
    ) -> None:
        """`extra_env`: for every process (the registry included); `engine_env`: the engines'
        only; `gateway_env[j]`: gateway j's only. With `redis_url` the gateways share their rate
        limits there (LORAPLEX_GATEWAY_REDIS_URL)."""
        self.base = base
        self.base_fields: dict[str, Any] = {}
        common = {**BASE_ENV, "LORAPLEX_ENGINE_API_KEY": secrets.token_urlsafe(32)}
        common |= extra_env or {}
        self.live = start_registry(pg_admin_url, s3_endpoint, extra_env=common)
        self.services: list[Service] = []
        self.engines: list[Engine] = []
        self.gateways: list[Gateway] = []
        self.clients: dict[int, httpx.Client] = {}
        try:
            self._registry_setup(s3_endpoint, tenants)
            self.env = {**self.live.env, **common}
            self._start_engines(engines, engine_env or {}, pin_engines)
            urls = ",".join(e.url for e in self.engines)
            shared = {"LORAPLEX_ENGINE_URLS": urls}
            if redis_url:
                shared["LORAPLEX_GATEWAY_REDIS_URL"] = redis_url
            for j, env in enumerate(gateway_env):
                self._start_gateway(j, {**shared, **env})
            self.engine_url = self.engines[0].url if self.engines else ""
            if self.gateways:
                self.gateway_url = self.gateways[0].url
                self.gateway_metrics_url = self.gateways[0].metrics_url
        except BaseException:
            self.close()
            raise

    # -- start-up ---------------------------------------------------------------------------

    def _registry_setup(self, s3_endpoint: str, tenants: Sequence[str]) -> None:
        live = self.live
        self.http = live.http(timeout=120)
        self.ops = live.bearer()
        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        self.prefix = live.env["LORAPLEX_OBJECT_STORE"].removeprefix(f"s3://{BUCKET}/")
        for f in sorted(self.base.iterdir()):
            self.s3.put_object(Bucket=BUCKET, Key=f"base-models/tiny/{f.name}", Body=f.read_bytes())
        self.ok(
            self.http.post(
                "/v1/base-models",
                json={"name": "tiny", "uri": f"s3://{BUCKET}/base-models/tiny"},
                headers=self.ops,
            )
        )
        self.tokens: dict[str, dict[str, str]] = {}
        self.tenant_ids: dict[str, str] = {}
        for slug in tenants:
            tenant = self.ok(
                self.http.post(
                    "/v1/tenants",
                    json={"slug": slug, "display_name": slug.title()},
                    headers=self.ops,
                )
            )
            self.tenant_ids[slug] = tenant["id"]
            client = self.ok(
                self.http.post(f"/v1/tenants/{slug}/clients", json={}, headers=self.ops)
            )
            self.tokens[slug] = live.bearer(client["client_id"], client["client_secret"])

    def _start_engines(self, n: int, engine_env: dict[str, str], pin: bool) -> None:
        cpus = os.cpu_count() or 1
        for i in range(n):
            port, home = free_port(), self.live.home / f"engine-{i}"
            home.mkdir()
            env = {
                **self.env,
                "LORAPLEX_ENGINE_PORT": str(port),
                "LORAPLEX_CACHE_DIR": str(home / "cache"),
                "TMPDIR": str(home),
                **engine_env,
            }
            env.pop("VLLM_CACHE_ROOT", None)  # the engine puts it under its own cache dir
            if pin and cpus > 1:
                env["VLLM_CPU_OMP_THREADS_BIND"] = str(i % cpus)
            argv = [*CLI, "serve", "engine", "--base-model", "tiny"]
            service = Service(f"engine-{i}", argv, env, self.live.home / f"engine-{i}.log")
            self.services.append(service)
            self.engines.append(Engine(i, port, service))

    def _start_gateway(self, j: int, env: dict[str, str]) -> None:
        port, metrics_port = free_port(), free_port()
        full = {**self.env, "LORAPLEX_GATEWAY_METRICS_PORT": str(metrics_port), **env}
        argv = [*CLI, "serve", "gateway", "--port", str(port)]
        service = Service(f"gateway-{j}", argv, full, self.live.home / f"gateway-{j}.log")
        self.services.append(service)
        url = f"http://127.0.0.1:{port}"
        self.gateways.append(Gateway(j, url, f"http://127.0.0.1:{metrics_port}", service, full))
        self.clients[j] = httpx.Client(base_url=url, timeout=120, trust_env=False)

    def wait_ready(self, timeout: float = 420) -> float:
        """Waits for every engine's /health, then for every gateway's /readyz (its engines seen
        healthy). Returns the seconds waited."""
        t0 = time.monotonic()
        for g in self.gateways:
            g.service.wait_http(f"{g.url}/healthz", 60)
        for e in self.engines:
            e.service.wait_http(f"{e.url}/health", max(30.0, timeout - (time.monotonic() - t0)))
        for g in self.gateways:
            g.service.wait_http(f"{g.url}/readyz", 30)
            live = sum(not e.killed for e in self.engines)
            wait_engines_seen(g.url, f"{live}/{len(self.engines)}", 60)
        return time.monotonic() - t0

    # -- the engines, read from themselves ----------------------------------------------------

    @property
    def engine_key(self) -> str:
        return self.env["LORAPLEX_ENGINE_API_KEY"]

    def engine(self, name: str | None) -> Engine:
        for e in self.engines:
            if e.name == name or e.url == name:
                return e
        raise KeyError(f"no engine named {name!r} (engines: {[e.name for e in self.engines]})")

    def resident(self, engine: Engine) -> set[str]:
        """The LoRA adapters (engine names `lpx-...`) the engine's API server has loaded."""
        r = httpx.get(
            f"{engine.url}/v1/models",
            headers={"Authorization": f"Bearer {self.engine_key}"},
            timeout=10,
            trust_env=False,
        )
        r.raise_for_status()
        return {m["id"] for m in r.json()["data"] if str(m["id"]).startswith("lpx-")}

    def residency(self) -> dict[str, set[str]]:
        """{adapter engine name: names of the live engines holding it}."""
        out: dict[str, set[str]] = {}
        for e in self.engines:
            if e.killed:
                continue
            for name in self.resident(e):
                out.setdefault(name, set()).add(e.name)
        return out

    @staticmethod
    def metrics(url: str) -> str:
        return httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text

    def kill_engine(self, engine: Engine) -> None:
        """SIGKILL the engine's whole process group (API server and engine core)."""
        engine.killed = True
        os.killpg(engine.service.proc.pid, signal.SIGKILL)
        engine.service.proc.wait(30)

    def log_of(self, name: str) -> str:
        return (self.live.home / f"{name}.log").read_text(errors="replace")

    # -- requests through the gateways --------------------------------------------------------

    def version(self, tenant: str, name: str, version: int) -> dict[str, Any]:
        return dict(
            self.ok(
                self.http.get(
                    f"/v1/tenants/{tenant}/adapters/{name}/versions/{version}",
                    headers=self.tokens[tenant],
                )
            )
        )

    def ask(
        self,
        gateway: int,
        tenant: str,
        model: str,
        *,
        user: str | None = None,
        body: dict[str, Any] | None = None,
        path: str = "/v1/completions",
    ) -> Reply:
        """One non-streamed request; transport errors become a Reply with status 0."""
        payload = {**SMALL, **(body or {}), "model": model}
        if user is not None:
            payload["user"] = user
        sent = time.perf_counter()
        try:
            r = self.clients[gateway].post(path, json=payload, headers=self.tokens[tenant])
        except httpx.HTTPError as exc:
            return Reply(0, None, None, sent, time.perf_counter(), user, gateway, repr(exc))
        done = time.perf_counter()
        error = None if r.status_code == 200 else r.text[:300]
        return Reply(
            r.status_code,
            r.headers.get("x-loraplex-model"),
            r.headers.get("x-loraplex-engine"),
            sent,
            done,
            user,
            gateway,
            error,
        )

    def run(self, jobs: Iterable[Callable[[], Reply]], concurrency: int = 8) -> list[Reply]:
        """Runs the jobs on `concurrency` threads (closed loop); replies in job order."""
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda job: job(), jobs))

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        super().close()
