"""What the gateway adds to a request, against a fast stub upstream: this tree vs a baseline.

    .venv/bin/python -m bench.gateway_overhead [--seconds 4] [--rounds 2] [--streams 1,32]
        [--baseline-rev 3a24d0d] [--redis] [--profile]

Starts PostgreSQL and the S3 server (tests.services; Redis too with `--redis`, which puts the
gateway's rate limits and token budget on it as with several replicas), a registry
(tests/live.py) with one tenant whose adapter has a production version, the stub upstream
(stub.py: vLLM's API at a few tens of microseconds a request) and two gateway processes on the
same database and signing key, both pointed at the stub: **baseline** (`git archive` of
`--baseline-rev`, run from its own tree with this venv) and **new** (this tree).

For each round, stream count and kind (a whole answer; an SSE stream of 4 events + usage), the
load generator (load.py: closed-loop keep-alive clients, raw HTTP/1.1) runs against the stub
directly, then each gateway, in alternating order. Reported: p50/p99 latency, added p50/p99
(gateway minus direct, same round), the gateway's CPU ms per request (/proc of its pid), req/s;
medians over rounds. `--profile` then runs the new gateway once more under cProfile at 1 stream
and prints its top functions. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import pstats
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baseline import BEFORE_ISSUE_20, export_tree
from bench.gateway_overhead.load import closed_loop
from bench.gateway_overhead.world import (
    REPO,
    Proc,
    start_gateway,
    start_stub,
    tenant,
)
from tests.live import start_registry
from tests.services import start_postgres, start_redis, start_s3, sweep_stale

RESULTS = REPO / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")
BODY = {"model": "orders", "prompt": "Where is my order?", "max_tokens": 4, "temperature": 0}
KINDS = {"whole": BODY, "stream": {**BODY, "stream": True}}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(target: Proc, headers: dict[str, str], body: dict[str, Any], n: int, s: float) -> Any:
    before = cpu_s(target.pid)
    r = asyncio.run(closed_loop(f"{target.url}/v1/completions", headers, body, n, s))
    r["cpu_ms_per_req"] = (cpu_s(target.pid) - before) * 1e3 / max(1, r.pop("sent"))
    return r


def run(targets: list[Proc], acme: dict[str, str], args: Any) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        for n in args.streams:
            for kind, body in KINDS.items():
                order = targets if rnd % 2 == 0 else [targets[0], *reversed(targets[1:])]
                direct = None
                for t in order:
                    headers = acme if t.name.startswith("gateway") else {}
                    r = measure(t, headers, body, n, args.seconds)
                    if direct is None:
                        direct = r
                    else:
                        r["added_p50_ms"] = r["p50_ms"] - direct["p50_ms"]
                        r["added_p99_ms"] = r["p99_ms"] - direct["p99_ms"]
                    runs.setdefault(f"{t.name}|{n}|{kind}", []).append(r)
                    print(
                        f"round {rnd + 1} x{n} {kind:6} {t.name:17} p50 {r['p50_ms']:7.3f} "
                        f"p99 {r['p99_ms']:7.3f} ms  {r['req_per_s']:7.0f} req/s  "
                        f"cpu {r['cpu_ms_per_req']:.3f} ms/req  errors {r['errors']}",
                        flush=True,
                    )
    return runs


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out = {}
    for key, rs in runs.items():
        out[key] = {
            k: statistics.median(r[k] for r in rs)
            for k in rs[0]
            if isinstance(rs[0][k], (int, float))
        }
    return out


def table(summ: dict[str, dict[str, float]], names: list[str]) -> str:
    lines = [
        "| streams | kind | gateway | p50 ms | p99 ms | added p50 | added p99 | "
        "CPU ms/req | req/s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summ.items():
        name, n, kind = key.split("|")
        if name not in names:
            continue
        added = (
            (f"{s['added_p50_ms']:.3f}", f"{s['added_p99_ms']:.3f}")
            if "added_p50_ms" in s
            else ("-", "-")
        )
        lines.append(
            f"| {n} | {kind} | {name} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {added[0]} | "
            f"{added[1]} | {s['cpu_ms_per_req']:.3f} | {s['req_per_s']:.0f} | {s['errors']:.0f} |"
        )
    return "\n".join(lines)


def profile(live: Any, stub: Proc, acme: dict[str, str], env: dict[str, str], args: Any) -> str:
    """The new gateway under cProfile for `args.seconds` per kind at 1 stream (requests only):
    its top functions by own time, and by cumulative time within the gateway's package."""
    out = RESULTS / "gateway_overhead.prof"
    gw = start_gateway(live, "profiled", REPO, stub.url, env, profile=out)
    try:
        for body in KINDS.values():
            measure(gw, acme, body, 1, 1.0)  # warm
        os.kill(gw.pid, signal.SIGUSR1)
        for body in KINDS.values():
            measure(gw, acme, body, 1, args.seconds)
        os.kill(gw.pid, signal.SIGUSR2)
        time.sleep(1.0)
    finally:
        gw.stop()
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("tottime").print_stats(35)
    stats.sort_stats("cumulative").print_stats(r"serving/gateway|httpx|httpcore", 35)
    return text.getvalue()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--streams", default="1,32")
    p.add_argument("--baseline-rev", default=BEFORE_ISSUE_20, help="'none' skips the baseline")
    p.add_argument("--redis", action="store_true", help="limits and budget on Redis")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    args.streams = [int(s) for s in args.streams.split(",")]
    sweep_stale()
    services = [start_postgres(), start_s3()]
    env: dict[str, str] = {}
    if args.redis:
        services.append(start_redis())
        env["LORAPLEX_GATEWAY_REDIS_URL"] = services[-1].url
    procs: list[Proc] = []
    RESULTS.mkdir(exist_ok=True)
    try:
        live = start_registry(services[0].url, services[1].url)
        try:
            with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
                acme = tenant(live, Path(tmp))
                stub = start_stub(live.home)
                procs.append(stub)
                if args.baseline_rev != "none":
                    tree = export_tree(args.baseline_rev, Path(tmp))
                    procs.append(start_gateway(live, "baseline", tree, stub.url, env))
                procs.append(start_gateway(live, "new", REPO, stub.url, env))
                runs = run(procs, acme, args)
                summ = summary(runs)
                names = [p.name for p in procs]
                print(table(summ, names))
                report: dict[str, Any] = {"args": vars(args), "summary": summ, "runs": runs}
                if args.profile:
                    report["profile"] = profile(live, stub, acme, env, args)
                    print(report["profile"])
        finally:
            for proc in procs:
                proc.stop()
            live.stop()
    finally:
        for svc in reversed(services):
            svc.stop()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S%z")
    (RESULTS / f"gateway_overhead-{stamp}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
