"""Lineage and alias resolution on a registry seeded at scale (tests/registry/lineage/bulk.py).

    .venv/bin/python -m bench.lineage_bench [--tenants 1000] [--versions 100000] [--samples 1000]
        [--clients 16] [--seconds 10] [--threads 4] [--workers 1]

Starts its own PostgreSQL, migrates, seeds with COPY, then times lineage of random versions and
`production` alias resolution in-process (service calls) and over HTTP against a registry server
subprocess. Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cli.compose import build_registry_app
from registry.adapters.service import adapters
from registry.aliases.service import aliases
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import run_unit_of_work
from registry.lineage.service import lineage
from registry.migrate import upgrade
from registry.settings import Settings
from registry.tenants.repository import TenantRepository
from tests.conftest import create_database
from tests.registry.lineage.bulk import Pick, bulk_seed
from tests.services import _die_with, free_port, start_postgres, sweep_stale

RESULTS = Path(__file__).parent / "results"
LINEAGE = "/v1/tenants/{t}/adapters/{a}/versions/v{n}/lineage"
ALIASES = "/v1/tenants/{t}/adapters/{a}/aliases"


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    q = statistics.quantiles(ms, n=100)
    return {"n": len(ms), "p50_ms": q[49], "p95_ms": q[94], "p99_ms": q[98]}


def _timed(calls: Iterable[Callable[[], object]]) -> dict[str, float]:
    lat = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t0)
    return _stats(lat)


def lineage_once(sm: sessionmaker[Session], p: Pick) -> str:
    """Tenant by slug, the lineage service call, and the JSON the endpoint would send."""
    with sm() as s:
        tenant = TenantRepository(s).get_by_slug(p[0])
        assert tenant is not None
        graph = lineage.graph(s, tenant=tenant, name=p[1], ref=f"v{p[2]}")
        assert sum(n.type == "adapter_version" for n in graph.nodes) == p[2]
        return graph.model_dump_json()


def resolve_once(sm: sessionmaker[Session], p: Pick) -> int:
    """What a gateway does per request: tenant slug -> adapter -> `production` -> number."""
    with sm() as s:
        tenant = TenantRepository(s).get_by_slug(p[0])
        assert tenant is not None
        adapter = adapters.get(s, tenant=tenant, name=p[1])
        return aliases.resolve(s, tenant=tenant, adapter=adapter, alias="production")


def threaded_rate(calls: Sequence[Callable[[], object]], threads: int, seconds: float) -> dict:
    end, done = time.perf_counter() + seconds, [0] * threads

    def worker(i: int) -> None:
        while time.perf_counter() < end:
            calls[(done[i] * threads + i) % len(calls)]()
            done[i] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return {"n": sum(done), "req_per_s": sum(done) / seconds}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its children, the uvicorn workers."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    stats = [Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split() for p in [pid, *kids]]
    return sum(int(f[11]) + int(f[12]) for f in stats) / os.sysconf("SC_CLK_TCK")


async def _load(
    base: str, paths: list[str], headers: dict[str, str], clients_n: int, seconds: float
) -> dict[str, Any]:
    """Closed-loop workers on keep-alive connections, after a 1 s warm-up."""
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients_n, max_keepalive_connections=clients_n)
    async with httpx.AsyncClient(base_url=base, limits=limits, trust_env=False, timeout=30) as http:
        measure_from = time.perf_counter() + 1.0
        end = measure_from + seconds

        async def worker(k: int) -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < end:
                resp = await http.get(paths[k % len(paths)], headers=headers)
                k += clients_n
                if t0 >= measure_from:
                    lat.append(time.perf_counter() - t0)
                    errors += resp.status_code != 200

        await asyncio.gather(*(worker(k) for k in range(clients_n)))
    return {"req_per_s": len(lat) / seconds, "errors": errors, **_stats(lat)}


def bench_app() -> FastAPI:
    """The registry app as `loraplex serve registry` builds it, settings from the environment."""
    from registry.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return build_registry_app(settings)


def start_server(settings: Settings, native: bool, workers: int) -> tuple[Any, str]:
    """`loraplex serve registry` once registry/app.py serves lineage; until then the same app
    factory plus the lineage router (`bench_app`), under uvicorn with the same options."""
    port, home = free_port(), Path(settings.home)
    keys = ("home", "database_url", "object_store")
    env = os.environ | {f"LORAPLEX_{k.upper()}": str(getattr(settings, k)) for k in keys}
    target = "cli serve registry" if native else "uvicorn --factory --no-access-log"
    cmd = [sys.executable, "-m", *target.split(), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)] + ([] if native else ["bench.lineage_bench:bench_app"])
    io: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    with (home / "server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, preexec_fn=_die_with(15), **io)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    with httpx.Client(base_url=base, trust_env=False, timeout=2) as http:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    return proc, base
            except httpx.TransportError:
                time.sleep(0.1)
    proc.kill()
    raise RuntimeError((home / "server.log").read_text()[-3000:])


@dataclass
class Samples:
    versions: list[Pick]  # random versions, for lineage
    deep: list[Pick]  # tips of 30-version chains
    adapters: list[Pick]  # random adapters, for alias resolution


def measure_inprocess(sm: sessionmaker[Session], s: Samples, args: Any) -> dict[str, Any]:
    m: dict[str, Any] = {}
    _timed(partial(lineage_once, sm, p) for p in s.versions[:50])  # warm-up
    m["lineage_inprocess"] = _timed(partial(lineage_once, sm, p) for p in s.versions)
    m["lineage_inprocess_deep"] = _timed(partial(lineage_once, sm, p) for p in s.deep)
    calls = [partial(resolve_once, sm, p) for p in s.adapters]
    m["alias_inprocess"] = _timed(calls)
    m["alias_inprocess_threads"] = threaded_rate(calls, args.threads, args.seconds)
    return m


def measure_http(proc: Any, base: str, auth: tuple[str, str], s: Samples, args: Any) -> dict:
    m: dict[str, Any] = {}
    lpaths = [LINEAGE.format(t=t, a=a, n=n) for t, a, n in s.versions]
    apaths = [ALIASES.format(t=t, a=a) for t, a, _ in s.adapters]
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
        tok = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
        headers = {"Authorization": f"Bearer {tok.raise_for_status().json()['access_token']}"}

        def get(path: str) -> Callable[[], object]:
            return lambda: http.get(path, headers=headers).raise_for_status()

        m["lineage_http"] = _timed(get(p) for p in lpaths)
        m["alias_http"] = _timed(get(p) for p in apaths)
    for key, paths in (("lineage_http_load", lpaths), ("alias_http_load", apaths)):
        cpu0, own0 = _cpu_s(proc.pid), time.process_time()  # CPU over warm-up + run
        m[key] = asyncio.run(_load(base, paths, headers, args.clients, args.seconds))
        m[key]["server_cpu_cores"] = (_cpu_s(proc.pid) - cpu0) / (args.seconds + 1)
        m[key]["loadgen_cpu_cores"] = (time.process_time() - own0) / (args.seconds + 1)
    return m


LABELS = {
    "lineage_inprocess": "lineage, random version, in-process service call",
    "lineage_inprocess_deep": "lineage, tip of a 30-version chain, in-process",
    "lineage_http": "lineage, random version, HTTP, 1 client",
    "lineage_http_load": "lineage, random version, HTTP, {clients} clients",
    "alias_inprocess": "alias resolve (slug -> adapter -> production), in-process",
    "alias_inprocess_threads": "alias resolve, in-process, {threads} threads",
    "alias_http": "GET .../aliases, HTTP, 1 client",
    "alias_http_load": "GET .../aliases, HTTP, {clients} clients",
}


def render(r: dict[str, Any]) -> str:
    p, rows = r["params"], r["seed"]["rows"]
    out = [
        f"### Lineage and alias resolution: {rows['tenants']} tenants, {rows['adapters']} "
        f"adapters, {rows['adapter_versions']} versions ({os.cpu_count()} CPUs)\n",
        f"Seed (COPY, {sum(rows.values())} rows) {r['seed']['seconds']:.1f} s incl. ANALYZE; "
        f"migrations {r['seed']['migrate_seconds']:.1f} s. Server: {r['server']}.\n",
        "| measurement | n | p50 ms | p95 ms | p99 ms | req/s |\n" + "| --- " * 6 + "|",
    ]
    for key, label in LABELS.items():
        m = r["results"][key]
        cells = [f"{m[k]:.1f}" if k in m else "" for k in ("p50_ms", "p95_ms", "p99_ms")]
        rate = f"{m['req_per_s']:.0f}" if "req_per_s" in m else ""
        out.append(f"| {label.format(**p)} | {m['n']} | {' | '.join(cells)} | {rate} |")
    return "\n".join(out + ["", "Targets: lineage p95 < 50 ms; alias resolution >= 1,000 req/s."])


def prepare(settings: Settings, args: Any, rng: random.Random) -> tuple[FastAPI, dict, dict]:
    """Migrations, the app (which writes the signing key the server will share), the seed."""
    t0 = time.perf_counter()
    upgrade(str(settings.database_url))
    app = build_registry_app(settings)
    t1 = time.perf_counter()
    with app.state.engine.begin() as conn:
        data = bulk_seed(conn, args.tenants, args.versions, rng)
        conn.execute(text("ANALYZE"))
    seconds = time.perf_counter() - t1
    return app, data, {"rows": data["rows"], "seconds": seconds, "migrate_seconds": t1 - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # --workers > 1 loses TCP_NODELAY in uvicorn (Kludex/uvicorn#3149): +40 ms a request.
    defaults = {"tenants": 1000, "versions": 100_000, "samples": 1000, "clients": 16}
    for flag, default in (defaults | {"threads": 4, "workers": 1, "seed": 7}).items():
        ap.add_argument(f"--{flag}", type=int, default=default)
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each load run")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    res: dict[str, Any] = {"params": vars(args)}
    sweep_stale()
    pg = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="loraplex-lineage-bench-") as tmp:
            url, store = create_database(pg.url, "loraplex_bench"), f"file://{tmp}/store"
            settings = Settings(home=Path(tmp), database_url=url, object_store=store)
            app, data, res["seed"] = prepare(settings, args, rng)
            tips, n = data["tips"], args.samples
            deep = [t for t in tips if t[2] == 30][:n]
            samples = Samples(rng.sample(data["picks"], n), deep, rng.choices(tips, k=n))
            res["results"] = measure_inprocess(app.state.sessionmaker, samples, args)
            for s in run_unit_of_work(app.state.sessionmaker):
                auditor, secret = clients.create(
                    s, actor=Principal.local_operator(), role=Role.AUDITOR
                )
            native = any(getattr(r, "path", "").endswith("/lineage") for r in app.routes)
            proc, base = start_server(settings, native, args.workers)
            how = "`loraplex serve registry`" if native else "uvicorn bench.lineage_bench:bench_app"
            res["server"] = f"{how} --workers {args.workers}"
            try:
                auth = (auditor.client_id, secret)
                res["results"] |= measure_http(proc, base, auth, samples, args)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    finally:
        pg.stop()
    res["when"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res["machine"] = {"cpus": os.cpu_count(), "loadavg_incl_bench": os.getloadavg()}
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"lineage_bench-{res['when'].replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
