"""What traffic capture costs the gateway: the request path and the flush, side by side.

    .venv/bin/python -m bench.capture_bench                 # 1000 requests x 3 modes x 5 rounds
    .venv/bin/python -m bench.capture_bench --requests 20 --rounds 1 --warmup 5   # quick look

In process, no services: the embedded defaults (SQLite file and a local-folder object store in a
temp dir, schema by the migrations), a registry app (TestClient, as the tests) to create the
base model, tenants, adapters, versions and capture settings, and a gateway app whose engine
client answers through an httpx MockTransport (a ~300-token chat answer with usage, no sleep).
Requests are driven straight into the gateway's ASGI callable, one at a time, so the latency is
the gateway's own (auth and route caches warm, refreshed on their TTLs as in production).

Three modes, alternated in rounds (medians reported):
- off: the tenant opted out of traffic logging (nothing sampled),
- prompts: the adapter captures prompts at rate 1.0,
- full: the adapter captures full traces at rate 1.0.
After each mode's run its buffers are flushed with the gateway's own `UsageWriter.flush`, timed
in parts (prepare = redaction + encoding, DB rows, trace objects + their rows), then the same
requests' redaction alone is timed with `Redactor.redact`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog
from pydantic import SecretStr

import serving.gateway.usage as usage_module
from registry.app import create_app
from registry.logging import configure_logging
from registry.migrate import upgrade
from registry.settings import Settings
from serving.gateway.app import create_gateway
from serving.gateway.capture import Sampled, redactor, sample_records
from tests.conftest import RecordingQueue, Stack, World
from tests.lora_files import make_adapter
from tests.registry.adapters.conftest import AdapterWorld

RESULTS = Path(__file__).parent / "results"
MODES = ("off", "prompts", "full")
USAGE = {"prompt_tokens": 214, "completion_tokens": 301, "total_tokens": 515}
ANSWER = (
    "Thanks for reaching out about order 48213. I checked the shipment: it left our warehouse "
    "on Tuesday and the carrier scanned it twice since, so it is moving normally. "
) * 8 + "If it has not arrived by Friday, reply here and I will open a trace with the carrier."


def _tool(name: str, description: str, **properties: Any) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


SYSTEM = (
    "You are the support assistant of an online shop. Be brief and polite. Use the tools to "
    "look up orders and refunds; never invent an order status."
)
USER = (
    "Hi, my order 48213 has not arrived yet and the tracking page has not changed for three "
    "days. You can reach me at jane.doe@example.com or on +44 20 7946 0958. Can you tell me "
    "where it is, or refund it if it is lost?"
)
STRING = {"type": "string"}
CHAT = {
    "model": "",
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    "tools": [
        _tool("get_order", "Look up an order by its number", order_id=STRING),
        _tool(
            "refund_order",
            "Refund a lost order",
            order_id=STRING,
            reason={"type": "string", "enum": ["lost", "damaged", "other"]},
        ),
    ],
    "tool_choice": "auto",
    "max_tokens": 512,
    "temperature": 0.2,
}


class GCClock:
    """Seconds spent in the garbage collector (all generations), from `gc.callbacks`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0  # generation-2 collections
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._start
        self.full += info["generation"] == 2


GC = GCClock()


def engine() -> httpx.MockTransport:
    answer = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "engine-name",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )
    headers = {"content-type": "application/json"}
    return httpx.MockTransport(lambda request: httpx.Response(200, content=answer, headers=headers))


def ok(resp: Any) -> dict[str, Any]:  # a TestClient response
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.text}")
    body: dict[str, Any] = resp.json()
    return body


def setup(home: Path) -> tuple[Settings, dict[str, tuple[str, str]]]:
    """The registry's world; returns settings and, per mode, (Authorization, model)."""
    settings = Settings(
        home=home,
        engine_url="http://engine",
        engine_api_key=SecretStr("k"),
        usage_flush_seconds=3600,  # flushed by the bench, not by a background task
        gateway_rate_limit_rps=1e6,
        gateway_rate_limit_burst=10**7,
        gateway_tokens_per_minute=10**12,
    )
    settings.home_dir.mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    app = create_app(settings, queue=RecordingQueue())
    world = World(Stack("sqlite", app, app.state.engine))
    aw = AdapterWorld(world, home / "tiny-base")  # base model 'tiny', tenant acme, 'support'
    quiet = world.tenant("quiet")
    config, weights = make_adapter("tiny")
    files = {
        "adapter_config.json": ("adapter_config.json", config),
        "adapter_model.safetensors": ("adapter_model.safetensors", weights),
    }
    http = world.http
    for tenant, name, headers in (
        ("acme", "support", aw.acme.headers),  # created by AdapterWorld
        ("acme", "traced", aw.acme.headers),
        ("quiet", "support", quiet.headers),
    ):
        if name != "support" or tenant != "acme":
            spec = {"name": name, "base_model": "tiny", "training": {"rank": 4}}
            ok(http.post(f"/v1/tenants/{tenant}/adapters", json=spec, headers=headers))
        url = f"/v1/tenants/{tenant}/adapters/{name}"
        version = ok(http.post(f"{url}/versions", files=files, headers=headers))
        if version.get("status") != "ready":
            raise RuntimeError(f"{tenant}/{name} v1 is {version.get('status')}, not ready")
        capture = {"mode": "full" if name == "traced" else "prompts", "sample_rate": 1.0}
        ok(http.put(f"{url}/traffic-capture", json=capture, headers=headers))
    opt_out = {"enabled": False}
    ok(http.put("/v1/tenants/quiet/traffic-logging", json=opt_out, headers=quiet.headers))
    app.state.engine.dispose()
    callers = {
        "off": (quiet.headers["Authorization"], "support@v1"),
        "prompts": (aw.acme.headers["Authorization"], "support@v1"),
        "full": (aw.acme.headers["Authorization"], "traced@v1"),
    }
    return settings, callers


def gateway(settings: Settings) -> Any:
    app = create_gateway(settings)
    client = app.state.engine_client
    for name in ("http", "fresh"):
        setattr(client, name, httpx.AsyncClient(transport=engine(), base_url="http://engine"))
    return app


async def request(app: Any, scope: dict[str, Any], body: bytes) -> int:
    """One request through the app's ASGI callable; returns the status."""
    done = asyncio.Event()
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(dict(scope), receive, send)
    return status


def scope_for(authorization: str, body: bytes) -> dict[str, Any]:
    path = "/v1/chat/completions"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"authorization", authorization.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("10.0.0.7", 40000),
        "server": ("gateway", 80),
    }


async def load(app: Any, authorization: str, model: str, n: int) -> dict[str, Any]:
    body = orjson.dumps({**CHAT, "model": model})
    scope = scope_for(authorization, body)
    latencies: list[float] = []
    errors = 0
    gc0, full0 = GC.seconds, GC.full
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        start = time.perf_counter()
        status = await request(app, scope, body)
        latencies.append(time.perf_counter() - start)
        errors += status != 200
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    return {
        "requests": n,
        "errors": errors,
        "req_per_s": n / wall,
        "p50_ms": latencies[n // 2] * 1e3,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3,
        "mean_ms": wall / n * 1e3,
        "cpu_ms_per_req": cpu / n * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "gc_ms": (GC.seconds - gc0) * 1e3,
        "gc_full": GC.full - full0,
    }


def timed(parts: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


async def flush(app: Any) -> dict[str, Any]:
    """The gateway's own flush of what the run buffered, timed in parts; then redaction alone."""
    writer = app.state.usage
    sampled: list[Sampled] = list(writer._samples)
    usage_rows = len(writer._usage)
    parts: dict[str, float] = {}
    prepare = usage_module.prepare
    usage_module.prepare = timed(parts, "prepare", prepare)  # type: ignore[assignment]
    writer._write = timed(parts, "db_rows", writer._write)
    writer._write_traces = timed(parts, "traces", writer._write_traces)
    writer.store.put_bytes = timed(parts, "object_put", writer.store.put_bytes)
    gc0, full0 = GC.seconds, GC.full
    try:
        t0 = time.perf_counter()
        written = await writer.flush()
        total = time.perf_counter() - t0
    finally:
        usage_module.prepare = prepare
        del writer._write, writer._write_traces, writer.store.put_bytes
    if written != usage_rows or writer._samples or writer._rows or writer._batches:
        raise RuntimeError("the flush left rows behind")
    out: dict[str, Any] = {
        "usage_rows": usage_rows,
        "sampled": len(sampled),
        "flush_ms": total * 1e3,
        "flush_gc_ms": (GC.seconds - gc0) * 1e3,
        "flush_gc_full": GC.full - full0,
        **{f"{k}_ms": v * 1e3 for k, v in parts.items()},
    }
    if sampled:
        red = redactor(sampled[0].settings.redact, sampled[0].settings.patterns)
        t0 = time.perf_counter()
        for s in sampled:
            red.redact(sample_records(s.endpoint, s.body)[0])
            if s.settings.full and s.response is not None:
                red.redact(s.response)
        out["redact_us_per_trace"] = (time.perf_counter() - t0) / len(sampled) * 1e6
    return out


def run(n: int, rounds: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        t_setup = time.perf_counter()
        settings, callers = setup(Path(tmp) / "home")
        app = gateway(settings)
        store = Path(settings.resolved_object_store.removeprefix("file://"))
        progress(f"setup {time.perf_counter() - t_setup:.1f} s")

        async def main() -> dict[str, list[dict[str, Any]]]:
            for mode in MODES:  # caches, code paths, SQLite pages; then an empty buffer
                await load(app, *callers[mode], warmup)
                await flush(app)
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
            for r in range(rounds):
                for mode in MODES[r % 3 :] + MODES[: r % 3]:  # rotate the order
                    row = await load(app, *callers[mode], n)
                    row |= await flush(app)
                    if row["errors"] or row["sampled"] != (0 if mode == "off" else n):
                        raise RuntimeError(
                            f"{mode}: {row['errors']} errors, {row['sampled']} sampled"
                        )
                    runs[mode].append(row)
                    progress(
                        f"round {r + 1} {mode:7}: {row['req_per_s']:.0f} req/s, "
                        f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                        f"flush {row['flush_ms']:.0f} ms"
                    )
            return runs

        try:
            runs = asyncio.run(main())
        finally:
            app.state.db.dispose()
        objects = sorted(store.rglob("*.jsonl"))
        trace_bytes = sum(p.stat().st_size for p in objects)
        first = orjson.loads(objects[0].read_bytes().splitlines()[0]) if objects else {}
    return {
        "runs": runs,
        "trace_objects": len(objects),
        "trace_bytes": trace_bytes,
        "trace_example": first,  # redacted as stored
    }


def summarize(runs: dict[str, list[dict[str, Any]]], n: int) -> dict[str, dict[str, float]]:
    keys = {k for rows in runs.values() for row in rows for k in row}
    med = {
        m: {
            k: statistics.median(r[k] for r in rows if k in r)
            for k in keys
            if any(k in r for r in rows)
        }
        for m, rows in runs.items()
    }
    base = med["off"]
    for mode in MODES:
        m = med[mode]
        m["rps_vs_off"] = m["req_per_s"] / base["req_per_s"]
        m["p50_vs_off"] = m["p50_ms"] / base["p50_ms"]
        m["p99_vs_off"] = m["p99_ms"] / base["p99_ms"]
        m["cpu_vs_off"] = m["cpu_ms_per_req"] / base["cpu_ms_per_req"]
        m["flush_us_per_req"] = m["flush_ms"] * 1e3 / n
        m["flush_extra_us_per_trace"] = (m["flush_ms"] - base["flush_ms"]) * 1e3 / n
    return med


def table(med: dict[str, dict[str, float]], n: int, rounds: int) -> str:
    lines = [
        f"| request path (medians of {rounds} x {n}) | req/s | p50 ms | p99 ms | max ms "
        "| CPU ms/req | GC ms/run | req/s vs off | p50 vs off | p99 vs off |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        m = med[mode]
        lines.append(
            f"| {mode} | {m['req_per_s']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {m['max_ms']:.1f} | {m['cpu_ms_per_req']:.2f} | {m['gc_ms']:.0f} "
            f"| {m['rps_vs_off']:.2f} | {m['p50_vs_off']:.2f} "
            f"| {m['p99_vs_off']:.2f} |"
        )
    lines += [
        "",
        f"| flush of {n} requests (medians) | total ms | µs/request | extra µs/trace vs off "
        "| prepare ms | DB rows ms | trace batch ms (object put) | GC ms "
        "| redact alone µs/trace |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        m = med[mode]
        lines.append(
            f"| {mode} | {m['flush_ms']:.1f} | {m['flush_us_per_req']:.0f} "
            f"| {m['flush_extra_us_per_trace']:.0f} | {m.get('prepare_ms', 0):.1f} "
            f"| {m.get('db_rows_ms', 0):.1f} | {m.get('traces_ms', 0):.1f} "
            f"({m.get('object_put_ms', 0):.1f}) | {m['flush_gc_ms']:.0f} "
            f"| {m.get('redact_us_per_trace', 0):.0f} |"
        )
    return "\n".join(lines)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=1000, help="per mode and round (= flushed)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=100, help="untimed requests per mode first")
    p.add_argument("--out", type=Path, default=RESULTS / "capture.json")
    args = p.parse_args()
    # The gateway logs each request at INFO as in production; the lines go to /dev/null.
    configure_logging("INFO", json=True)
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=devnull))
    t0 = time.perf_counter()
    load1 = os.getloadavg()[0]
    out = run(args.requests, args.rounds, args.warmup)
    med = summarize(out["runs"], args.requests)
    print(table(med, args.requests, args.rounds))
    result = {
        "setup": {
            "requests": args.requests,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "concurrency": 1,
            "engine": "httpx MockTransport, chat answer of ~300 tokens with usage, no sleep",
            "body_bytes": len(orjson.dumps(CHAT)),
            "database": "sqlite (embedded default)",
            "object_store": "local folder (embedded default)",
        },
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": load1,
        "loadavg_after": os.getloadavg()[0],
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t0,
        "trace_objects": out["trace_objects"],
        "trace_bytes": out["trace_bytes"],
        "trace_example": out["trace_example"],
        "medians": med,
        "runs": out["runs"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    progress(
        f"{result['seconds']:.0f} s; load average {load1:.2f} -> {result['loadavg_after']:.2f}"
    )
    progress(f"wrote {args.out}")


if __name__ == "__main__":
    main()
