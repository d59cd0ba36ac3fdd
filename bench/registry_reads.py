"""Registry authenticated reads: requests/s and CPU per request, old code vs new, side by side.

    .venv/bin/python -m bench.registry_reads [--clients 16] [--seconds 5] [--rounds 2]
        [--baseline-rev 3a24d0d] [--workers 1]

Starts its own PostgreSQL, one registry (`tests.live`: `loraplex serve registry`) on a fresh
database seeded small (tests/registry/lineage/bulk.py: 4 tenants with adapters, versions,
aliases and datasets), then more registry processes on the same database and signing key:

- **baseline**: the registry of `--baseline-rev` (git archive of that commit, run from its own
  tree with this venv) - the code before this change;
- **cache off**: this tree with `LORAPLEX_AUTH_CACHE_SECONDS=0` (every request verifies its
  token and reads its client);
- **new**: this tree as configured by default.

Each takes, in turn (alternating within each round), closed-loop keep-alive GETs with one
tenant client's bearer token from `--clients` raw asyncio HTTP/1.1 clients (the registry bench's
load generator): the alias list of an adapter (`GET .../adapters/{a}/aliases`: what resolving an
alias reads) and a dataset's metadata (`GET .../datasets/{id}`). Reported per server and
endpoint: median req/s over the rounds, p50/p99, the server's CPU ms per request (all its
processes), PostgreSQL's, and the ratio to the baseline. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.baseline import BEFORE_ISSUE_20, export_tree
from bench.registry_bench import _load
from tests.live import CLI, LiveRegistry, start_registry
from tests.registry.lineage.bulk import bulk_seed
from tests.services import _die_with, free_port, start_postgres, sweep_stale

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, reaped: bool = False) -> float:
    """utime + stime (+ cutime + cstime: children that ended and were waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11 : 15 if reaped else 13]) / TICK


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid`, its live children (uvicorn workers; PostgreSQL backends) and those
    that ended."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = _proc_cpu(pid, reaped=True)
    except FileNotFoundError:
        return 0.0
    for p in map(int, kids):
        # one that ended meanwhile is counted in the parent's, once reaped
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _proc_cpu(p)
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


@dataclass
class Server:
    name: str
    base_url: str
    pid: int
    proc: subprocess.Popen[bytes] | None = None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def spawn(live: LiveRegistry, name: str, env: dict[str, str], cwd: Path, workers: int) -> Server:
    """Another `loraplex serve registry` on the live registry's database and home (its key)."""
    port = free_port()
    cmd = [*CLI, "serve", "registry", "--host", "127.0.0.1", "--port", str(port)]
    log = (live.home / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        cmd + ["--workers", str(workers)],
        env=live.env | env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with(15),
    )
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    with httpx.Client(base_url=base, trust_env=False, timeout=2) as http:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if http.get("/readyz").status_code == 200:
                    return Server(name, base, proc.pid, proc)
            except httpx.TransportError:
                time.sleep(0.1)
    proc.kill()
    raise RuntimeError((live.home / f"{name}.log").read_text()[-3000:])


def seed(live: LiveRegistry) -> dict[str, Any]:
    """Bulk rows, then a tenant client (through the API) for the first seeded tenant."""
    engine = create_engine(live.env["LORAPLEX_DATABASE_URL"])
    with engine.begin() as conn:
        data = bulk_seed(conn, 4, 120, random.Random(7))
        slug, adapter, _ = data["tips"][0]
        dataset_id = conn.execute(
            text(
                "SELECT d.id FROM datasets d JOIN tenants t ON t.id = d.tenant_id "
                "WHERE t.slug = :slug ORDER BY d.id LIMIT 1"
            ),
            {"slug": slug},
        ).scalar_one()
    engine.dispose()
    with live.http() as http:
        resp = http.post(f"/v1/tenants/{slug}/clients", json={}, headers=live.bearer())
        resp.raise_for_status()
        client = resp.json()
    headers = live.bearer(client["client_id"], client["client_secret"])
    return {
        "paths": {
            "alias_list": f"/v1/tenants/{slug}/adapters/{adapter}/aliases",
            "dataset_get": f"/v1/tenants/{slug}/datasets/{dataset_id}",
        },
        "headers": headers,
    }


def measure(server: Server, path: str, headers: dict, args: Any, pg_pid: int) -> dict[str, Any]:
    window = args.seconds + 1.0  # the load generator's 1 s warm-up is in the CPU window
    cpu0, pg0, own0, (busy0, all0) = (
        tree_cpu_s(server.pid),
        tree_cpu_s(pg_pid),
        time.process_time(),
        machine_busy(),
    )
    result = asyncio.run(
        _load(
            server.base_url + path,
            headers,
            clients=args.clients,
            seconds=args.seconds,
            warmup=1.0,
            loadgen="raw",
        )
    )
    busy1, all1 = machine_busy()
    served = result["req_per_s"] * window  # requests in the CPU window, at the measured rate
    result["server_cpu_ms"] = (tree_cpu_s(server.pid) - cpu0) / served * 1000
    result["pg_cpu_ms"] = (tree_cpu_s(pg_pid) - pg0) / served * 1000
    result["loadgen_cpu_ms"] = (time.process_time() - own0) / served * 1000
    result["machine_busy"] = (busy1 - busy0) / max(all1 - all0, 1)  # all CPUs, every process
    return result


def summarize(servers: list[Server], endpoints: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in servers:
        out[s.name] = {}
        for ep in endpoints:
            runs = s.runs[ep]
            out[s.name][ep] = {
                k: statistics.median(r[k] for r in runs)
                for k in (
                    "req_per_s",
                    "p50_ms",
                    "p99_ms",
                    "server_cpu_ms",
                    "pg_cpu_ms",
                    "loadgen_cpu_ms",
                    "machine_busy",
                )
            } | {"runs_req_per_s": [round(r["req_per_s"]) for r in runs]}
            out[s.name][ep]["errors"] = sum(r["errors"] for r in runs)
    return out


LABELS = {"alias_list": "GET .../adapters/{a}/aliases", "dataset_get": "GET .../datasets/{id}"}


def render(res: dict[str, Any]) -> str:
    p, summary = res["params"], res["summary"]
    lines = [
        f"### Registry authenticated reads: {p['clients']} clients, {p['rounds']} rounds x "
        f"{p['seconds']} s, `--workers {p['workers']}` ({res['machine']['cpus']} CPUs)",
        "",
        f"Load average before {res['machine']['loadavg_before'][0]:.2f}, after "
        f"{res['machine']['loadavg_after'][0]:.2f}. Servers: {', '.join(summary)}.",
        "",
        "| endpoint | server | req/s (median) | runs | p50 ms | p99 ms | server CPU ms/req | "
        "PG CPU ms/req | loadgen ms/req | machine busy | errors | x baseline |",
        "| --- " * 12 + "|",
    ]
    base = next(iter(summary))
    for ep, label in LABELS.items():
        for name, per in summary.items():
            r = per[ep]
            ratio = r["req_per_s"] / summary[base][ep]["req_per_s"]
            lines.append(
                f"| {label} | {name} | {r['req_per_s']:.0f} | "
                f"{', '.join(map(str, r['runs_req_per_s']))} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['server_cpu_ms']:.2f} | {r['pg_cpu_ms']:.2f} | "
                f"{r['loadgen_cpu_ms']:.2f} | {r['machine_busy']:.0%} | {r['errors']} | "
                f"**{ratio:.2f}** |"
            )
    return "\n".join(lines + ["", "Aim: >= 1,000 authenticated req/s on 2 cores."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0, help="each load run, after 1 s warm-up")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; medians reported")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of every server")
    ap.add_argument(
        "--baseline-rev",
        default=BEFORE_ISSUE_20,
        help="git revision for the baseline; 'none' skips it",
    )
    args = ap.parse_args()
    sweep_stale()
    load_before = os.getloadavg()
    pg = start_postgres()
    servers: list[Server] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loraplex-reads-bench-") as tmp:
            extra = {"LORAPLEX_OBJECT_STORE": f"file://{tmp}/store"}
            with start_registry(pg.url, "http://127.0.0.1:9", extra_env=extra) as live:
                setup = seed(live)
                if args.baseline_rev != "none":
                    tree = export_tree(args.baseline_rev, Path(tmp))
                    servers.append(spawn(live, "baseline", {}, tree, args.workers))
                off = {"LORAPLEX_AUTH_CACHE_SECONDS": "0"}
                servers.append(spawn(live, "cache off", off, REPO, args.workers))
                servers.append(spawn(live, "new", {}, REPO, args.workers))
                try:
                    for _ in range(args.rounds):
                        for ep, path in setup["paths"].items():
                            for s in servers:
                                r = measure(s, path, setup["headers"], args, pg.pid)
                                s.runs.setdefault(ep, []).append(r)
                                print(f"{s.name:>9} {ep}: {r['req_per_s']:.0f} req/s", flush=True)
                finally:
                    for s in servers:
                        if s.proc is not None:
                            s.proc.terminate()
                            s.proc.wait(timeout=15)
    finally:
        pg.stop()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res: dict[str, Any] = {
        "when": when,
        "params": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "paths": setup["paths"],
        "summary": summarize(servers, list(setup["paths"])),
        "runs": {s.name: s.runs for s in servers},
    }
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"registry_reads-{when.replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
