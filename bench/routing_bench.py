"""Routing benchmark: adapter-affinity vs random routing across 2 real vLLM CPU engines.

    .venv/bin/python -m bench.routing_bench [--requests 1500] [--concurrency 8] [--capacity 8]

One run starts its own PostgreSQL and moto S3 (tests.services) and the multi-engine stack of the
tests (tests/serving/multi_stack.py: a registry process, 2 `loraplex serve engine` on the tiny
base model, 2 gateways given both engines, one with LORAPLEX_GATEWAY_ROUTING=random and one with
affinity). 16 tenants, one adapter each with two versions of random PEFT LoRA weights: v1 is
served in the random phase, v2 in the affinity phase, so each phase starts with every one of its
versions cold on both engines. Each engine's adapter cache holds `--capacity` versions (the
resolver's LORAPLEX_RESOLVER_CACHE_BYTES; evicting one unloads it from vLLM too): the two
engines together hold all 16, one alone does not.

Traffic: the same request sequence in both phases, tenants drawn from a Zipf law (exponent
`--zipf`, fixed `--seed`), completions with max_tokens=1 sent by `--concurrency` closed-loop
clients to that phase's gateway. Per phase, from the engines' own /metrics (deltas): resolver
calls (vLLM did not hold the adapter), S3 fetches (the resolver's cache misses = cold loads),
cache evictions; from the clients: p50/p99 latency, throughput, failures; from the
`x-loraplex-engine` header: how many engines served each version. Warm share = requests served
by an engine that already held the adapter = 1 - resolver calls / requests. Prints a markdown
table and writes JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from serving.names import engine_name
from tests.services import AWS_ENV, start_postgres, start_s3, sweep_stale
from tests.serving.multi_stack import MultiStack, Reply, metric_sum
from tests.serving.stack import make_peft_adapter
from tests.workers.platform import tiny_base_model

RESULTS = Path(__file__).parent / "results"
MODES = ("random", "affinity")
RESOLVES = "loraplex_resolver_resolves_total"


def progress(msg: str) -> None:
    print(f"[bench.routing {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def zipf_sequence(n: int, items: int, exponent: float, seed: int) -> list[int]:
    """`n` draws of item indices 0..items-1 with P(k) proportional to 1/(k+1)^exponent."""
    weights = [1.0 / (k + 1) ** exponent for k in range(items)]
    return random.Random(seed).choices(range(items), weights=weights, k=n)


def engine_counters(stack: MultiStack) -> dict[str, dict[str, float]]:
    out = {}
    for e in stack.engines:
        text = stack.metrics(e.url)
        out[e.name] = {
            # every resolver call but names that are not ours (the base model's)
            "resolver_calls": metric_sum(text, RESOLVES)
            - metric_sum(text, RESOLVES, outcome="not_ours"),
            "fetched": metric_sum(text, RESOLVES, outcome="fetched"),
            "cache_hits": metric_sum(text, "loraplex_resolver_cache_hits_total"),
            "cache_misses": metric_sum(text, "loraplex_resolver_cache_misses_total"),
            "evictions": metric_sum(text, "loraplex_resolver_cache_evictions_total"),
        }
    return out


def delta(
    after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]
) -> dict[str, Any]:
    per = {e: {k: after[e][k] - before[e][k] for k in after[e]} for e in after}
    total = {k: sum(p[k] for p in per.values()) for k in next(iter(per.values()))}
    return {"per_engine": per, "total": total}


def quantiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": q[49], "p99_ms": q[98], "mean_ms": statistics.fmean(ms), "max_ms": ms[-1]}


def unload(stack: MultiStack, names: list[str]) -> None:
    """Make both engines forget the previous phase's versions (vLLM's slots; the resolver's
    folders stay until its LRU evicts them, which costs the next phase nothing)."""
    headers = {"Authorization": f"Bearer {stack.engine_key}"}
    for e in stack.engines:
        held = stack.resident(e)
        for name in names:
            if name in held:
                httpx.post(
                    f"{e.url}/v1/unload_lora_adapter",
                    json={"lora_name": name},
                    headers=headers,
                    timeout=30,
                    trust_env=False,
                ).raise_for_status()


def run_phase(
    stack: MultiStack,
    mode: str,
    gateway: int,
    tenants: list[str],
    sequence: list[int],
    version: int,
    names: list[str],
    concurrency: int,
) -> dict[str, Any]:
    before = engine_counters(stack)
    jobs = [partial(stack.ask, gateway, tenants[k], f"assistant@v{version}") for k in sequence]
    t0 = time.perf_counter()
    replies: list[Reply] = stack.run(jobs, concurrency)
    wall = time.perf_counter() - t0
    time.sleep(1.0)  # the engines' counters are updated after the answer
    engines = delta(engine_counters(stack), before)
    ok = [r for r in replies if r.status == 200]
    spread: dict[str, set[str]] = {}
    for k, r in zip(sequence, replies, strict=True):
        if r.engine:
            spread.setdefault(tenants[k], set()).add(r.engine)
    n, calls = len(replies), engines["total"]["resolver_calls"]
    residency = stack.residency()
    out = {
        "mode": mode,
        "requests": n,
        "failed": n - len(ok),
        "errors": sorted({r.error or "" for r in replies if r.status != 200})[:5],
        "wall_s": wall,
        "req_s": n / wall,
        "latency": quantiles([r.seconds for r in ok]),
        "engines": engines,
        "resolver_calls": calls,
        "cold_loads": engines["total"]["cache_misses"],
        "evictions": engines["total"]["evictions"],
        "warm_share": 1 - calls / n,
        "engines_per_version_served": statistics.fmean(len(s) for s in spread.values()),
        "requests_per_engine": {
            e.name: sum(1 for r in replies if r.engine == e.name) for e in stack.engines
        },
        "resident_after": {
            e.name: sum(1 for v in names if e.name in residency.get(v, ())) for e in stack.engines
        },
    }
    progress(
        f"{mode}: {n} requests in {wall:.1f} s, {out['failed']} failed, resolver calls "
        f"{calls:.0f}, cold loads {out['cold_loads']:.0f}, p50 {out['latency']['p50_ms']:.1f} ms, "
        f"p99 {out['latency']['p99_ms']:.1f} ms"
    )
    return out


def render(res: dict[str, Any]) -> str:
    p, ph = res["params"], res["phases"]
    rows = [
        ("requests failed", lambda m: f"{m['failed']}"),
        (
            "warm share (served by an engine already holding the adapter)",
            lambda m: f"{m['warm_share']:.1%}",
        ),
        ("resolver calls (vLLM did not hold the adapter)", lambda m: f"{m['resolver_calls']:.0f}"),
        ("cold loads (S3 fetches: resolver cache misses)", lambda m: f"{m['cold_loads']:.0f}"),
        ("adapter cache evictions", lambda m: f"{m['evictions']:.0f}"),
        (
            "engines that served a version (mean)",
            lambda m: f"{m['engines_per_version_served']:.2f}",
        ),
        ("p50 latency", lambda m: f"{m['latency']['p50_ms']:.1f} ms"),
        ("p99 latency", lambda m: f"{m['latency']['p99_ms']:.1f} ms"),
        ("mean latency", lambda m: f"{m['latency']['mean_ms']:.1f} ms"),
        ("throughput", lambda m: f"{m['req_s']:.1f} req/s"),
    ]
    r = res["ratios"]
    m = res["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs; load average (1 min) {m['loadavg_before'][0]:.1f} before, "
        f"{m['loadavg_after'][0]:.1f} after; run {res['duration_s']:.0f} s (engines ready after "
        f"{res['engines_ready_s']:.0f} s).",
        "",
        f"### Routing: 2 engines, 16 tenants x 1 adapter, Zipf({p['zipf']}) traffic, "
        f"{p['requests']} requests x max_tokens=1, {p['concurrency']} clients, engine cache "
        f"{p['capacity']} versions",
        "",
        "| per phase | random | affinity | affinity / random |",
        "| --- | ---: | ---: | ---: |",
    ]
    ratio_of = {
        "warm share (served by an engine already holding the adapter)": "warm_share",
        "resolver calls (vLLM did not hold the adapter)": "resolver_calls",
        "cold loads (S3 fetches: resolver cache misses)": "cold_loads",
        "p50 latency": "p50",
        "p99 latency": "p99",
        "mean latency": "mean",
        "throughput": "req_s",
    }
    for label, fmt in rows:
        key = ratio_of.get(label)
        ratio = f"**{r[key]:.2f}**" if key and r.get(key) is not None else ""
        lines.append(f"| {label} | {fmt(ph['random'])} | {fmt(ph['affinity'])} | {ratio} |")
    lines += [
        "",
        "Requests per engine: "
        + "; ".join(f"{mode} {ph[mode]['requests_per_engine']}" for mode in MODES)
        + ". Phase order: "
        + ", ".join(p["order"])
        + ".",
    ]
    return "\n".join(lines)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.routing_bench", description=__doc__)
    ap.add_argument("--requests", type=int, default=1500, help="per phase")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--capacity", type=int, default=8, help="adapter versions per engine cache")
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of tenant traffic")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--order", default="random,affinity", help="phase order")
    ap.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="more stack settings"
    )
    args = ap.parse_args()
    order = args.order.split(",")
    assert sorted(order) == sorted(MODES), f"--order must name {MODES}"
    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    started, load_before = time.perf_counter(), os.getloadavg()
    tenants = [f"t{k:02d}" for k in range(16)]
    progress("base model, PostgreSQL, S3")
    base = tiny_base_model()
    sweep_stale()
    pg, s3 = start_postgres(), start_s3()
    stack: MultiStack | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="loraplex-routing-bench-") as tmp_name:
            tmp = Path(tmp_name)
            folders = {
                (k, v): make_peft_adapter(base, tmp / f"t{k}v{v}", seed=1000 + 10 * k + v)
                for k in range(16)
                for v in (1, 2)
            }
            size = (folders[0, 1] / "adapter_model.safetensors").stat().st_size
            engine_env = {
                # `capacity` versions fit, not one more (the folders also hold a small config)
                "LORAPLEX_RESOLVER_CACHE_BYTES": str(args.capacity * size + size // 2),
                "LORAPLEX_ENGINE_MAX_LORAS": "4",
                "LORAPLEX_ENGINE_MAX_LORA_RANK": "8",
            }
            extra = dict(kv.split("=", 1) for kv in args.env)
            progress("starting the stack (registry, 2 engines, 2 gateways)")
            stack = MultiStack(
                pg.url,
                s3.url,
                base,
                tenants=tenants,
                gateway_env=[{"LORAPLEX_GATEWAY_ROUTING": mode} for mode in MODES],
                engine_env=engine_env,
                extra_env=extra,
            )
            progress("uploading 32 versions while the engines start")
            names: dict[int, list[str]] = {1: [], 2: []}
            for k, t in enumerate(tenants):
                stack.create_adapter(t, "assistant")
                for v in (1, 2):
                    uploaded = stack.upload(t, "assistant", folders[k, v])
                    names[v].append(engine_name(uuid.UUID(uploaded["id"])))
            stack.wait_ready()
            ready_s = time.perf_counter() - started
            progress(f"engines ready after {ready_s:.0f} s")
            sequence = zipf_sequence(args.requests, len(tenants), args.zipf, args.seed)
            phases: dict[str, dict[str, Any]] = {}
            previous: list[str] = []
            for mode in order:
                version = 1 if mode == "random" else 2
                unload(stack, previous)
                time.sleep(1.5)  # a vLLM worker busy-polls for 1 s after its last step
                phases[mode] = run_phase(
                    stack,
                    mode,
                    MODES.index(mode),
                    tenants,
                    sequence,
                    version,
                    names[version],
                    args.concurrency,
                )
                previous = names[version]
    finally:
        if stack is not None:
            stack.close()
        s3.stop()
        pg.stop()
    a, r = phases["affinity"], phases["random"]
    ratios = {
        "warm_share": _ratio(a["warm_share"], r["warm_share"]),
        "resolver_calls": _ratio(a["resolver_calls"], r["resolver_calls"]),
        "cold_loads": _ratio(a["cold_loads"], r["cold_loads"]),
        "p50": _ratio(a["latency"]["p50_ms"], r["latency"]["p50_ms"]),
        "p99": _ratio(a["latency"]["p99_ms"], r["latency"]["p99_ms"]),
        "mean": _ratio(a["latency"]["mean_ms"], r["latency"]["mean_ms"]),
        "req_s": _ratio(a["req_s"], r["req_s"]),
    }
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res: dict[str, Any] = {
        "when": when,
        "git": git_rev(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "params": vars(args) | {"order": order, "tenants": len(tenants), "adapter_bytes": size},
        "stack_env": engine_env | extra,
        "duration_s": time.perf_counter() - started,
        "engines_ready_s": ready_s,
        "phases": phases,
        "ratios": ratios,
    }
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"routing_bench-{when.replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2, default=sorted) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
