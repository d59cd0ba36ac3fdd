"""Audited writes/s: the old global-lock audit append vs per-tenant chains, on PostgreSQL.

    .venv/bin/python -m bench.audit_bench [--writers 16] [--seconds 5] [--batch 500]

Starts its own PostgreSQL (tests.services' server, but with fsync ON unless --no-fsync),
migrates, seeds tenants with one multi-row INSERT, then runs, in one process and one run:

- **writes/s**: `--writers` threads, each a closed loop of realistic audited write transactions
  (UPDATE of a tenant row + one audit event, committed), for `--seconds`: with the OLD append
  (a labelled copy of the `record` from before 0013: one global head row locked FOR UPDATE at
  record time, held until commit) on its own copy of the tables, and with the NEW one
  (`registry.audit.service.audit.record`: per-tenant chain heads, locked at commit), each with
  every writer on its own tenant and with all writers on one tenant; and on own tenants with
  `--after-ms` more of the transaction's life after its event (a pg_sleep standing for the rest
  of an API write's statements and round trips: the old append holds the global lock through it).
- **API write wait during a tick batch**: one transaction records 2 events for each of
  `--batch` tenants (as a 500-schedule tick batch does: `record_many` in the new code, a loop
  of the old `record` in the old), then works `--hold` seconds before committing, while 4
  threads keep doing audited writes on other tenants: p50/p99 of those writes, old vs new.

Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from registry.audit.service import AuditItem, audit
from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, utcnow
from registry.migrate import upgrade
from tests.conftest import create_database
from tests.services import (
    Service,
    _initdb,
    _pg_ready,
    _start,
    free_port,
    pg_bindir,
    start_postgres,
    sweep_stale,
)

RESULTS = Path(__file__).parent / "results"
KEY = b"b" * 32
ACTOR = Principal.local_operator()
Write = Callable[[Session, uuid.UUID, int], None]

OLD_TABLES = """
CREATE TABLE old_audit_events (LIKE audit_events INCLUDING DEFAULTS);
ALTER TABLE old_audit_events ADD PRIMARY KEY (seq);
CREATE TABLE old_audit_chain_head (id int PRIMARY KEY, last_seq bigint, last_hash varchar(64));
INSERT INTO old_audit_chain_head VALUES (1, 0, repeat('0', 64));
"""


# ---- OLD: a copy of `AuditService.record` as it was before migration 0013 (one global chain:
# the single head row locked FOR UPDATE when the event is recorded, until the commit). Kept here
# only to measure it; it writes to old_audit_* tables.
def old_record(
    session: Session, *, tenant_id: uuid.UUID | None, action: str, details: dict
) -> None:
    head = session.execute(
        text("SELECT last_seq, last_hash FROM old_audit_chain_head WHERE id = 1 FOR UPDATE")
    ).one()
    clean = json.loads(json.dumps(details, default=str))
    seq, at = head.last_seq + 1, utcnow()
    body = {
        "seq": seq,
        "occurred_at": at.isoformat(timespec="microseconds"),
        "actor": ACTOR.subject,
        "actor_role": ACTOR.role.value,
        "tenant_id": str(tenant_id) if tenant_id else None,
        "action": action,
        "target_type": "tenant",
        "target_id": str(tenant_id),
        "details": clean,
        "prev_hash": head.last_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(KEY, canonical.encode(), hashlib.sha256).hexdigest()
    session.execute(
        text(
            "INSERT INTO old_audit_events (seq, occurred_at, actor, actor_role, tenant_id, action,"
            " target_type, target_id, details, prev_hash, hash, hash_scheme, chain) VALUES (:seq,"
            " :at, :actor, :role, :tid, :action, 'tenant', :target, :details, :prev, :hash,"
            " 'hmac-sha256', 'legacy')"
        ),
        {
            "seq": seq,
            "at": at,
            "actor": ACTOR.subject,
            "role": ACTOR.role.value,
            "tid": tenant_id,
            "action": action,
            "target": str(tenant_id),
            "details": json.dumps(clean),
            "prev": head.last_hash,
            "hash": digest,
        },
    )
    session.execute(
        text("UPDATE old_audit_chain_head SET last_seq = :s, last_hash = :h WHERE id = 1"),
        {"s": seq, "h": digest},
    )


# ---- end of the old copy


def _touch(session: Session, tenant: uuid.UUID, i: int) -> None:
    session.execute(
        text("UPDATE tenants SET display_name = :n, updated_at = now() WHERE id = :id"),
        {"n": f"renamed {i}", "id": tenant},
    )


def old_write(session: Session, tenant: uuid.UUID, i: int) -> None:
    _touch(session, tenant, i)
    old_record(session, tenant_id=tenant, action="tenant.update", details={"i": i})


def new_write(session: Session, tenant: uuid.UUID, i: int) -> None:
    _touch(session, tenant, i)
    audit.record(
        session,
        actor=ACTOR,
        action="tenant.update",
        target_type="tenant",
        target_id=str(tenant),
        tenant_id=tenant,
        details={"i": i},
    )


def _then_work(write: Write, ms: float) -> Write:
    """`write`, then `ms` more of the transaction's life inside the database before the commit
    (the rest of an API write's statements and round trips after it recorded its event; a
    pg_sleep stands for them)."""

    def run(session: Session, tenant: uuid.UUID, i: int) -> None:
        write(session, tenant, i)
        session.execute(text("SELECT pg_sleep(:s)"), {"s": ms / 1000})

    return run


def _loop(
    sm: sessionmaker[Session], write: Write, tenant: uuid.UUID, stop: threading.Event
) -> list[float]:
    lat, i = [], 0
    while not stop.is_set():
        t0 = time.perf_counter()
        with sm() as s:
            write(s, tenant, i)
            s.commit()
        lat.append(time.perf_counter() - t0)
        i += 1
    return lat


def _run(
    sm: sessionmaker[Session], write: Write, tenants: list[uuid.UUID], seconds: float
) -> list[list[float]]:
    stop, out = threading.Event(), [[] for _ in tenants]

    def run(k: int) -> None:
        out[k] = _loop(sm, write, tenants[k], stop)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(tenants))]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return out


def _pct(lat: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in lat)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {"n": len(ms), "p50_ms": q[49], "p99_ms": q[98], "max_ms": ms[-1]}


def throughput(sm: sessionmaker[Session], write: Write, tenants: list[uuid.UUID], s: float) -> dict:
    _run(sm, write, tenants, min(1.0, s))  # warm-up
    lat = _run(sm, write, tenants, s)
    flat = [x for per in lat for x in per]
    return {"writes_per_s": len(flat) / s, **_pct(flat)}


def tick_wait(
    sm: sessionmaker[Session],
    old: bool,
    batch: list[uuid.UUID],
    others: list[uuid.UUID],
    hold: float,
) -> dict:
    """Writes on `others` while one transaction appends 2 events for each `batch` tenant and
    works `hold` seconds before committing."""
    stop, lat = threading.Event(), [[] for _ in others]
    write = old_write if old else new_write

    def run(k: int) -> None:
        lat[k] = _loop(sm, write, others[k], stop)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(others))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    with sm() as s:
        if old:
            for tid in batch:
                for action in ("training.create", "schedule.fired"):
                    old_record(s, tenant_id=tid, action=action, details={})
        else:
            items = [
                AuditItem(ACTOR, action, "adapter", str(tid), tid, {})
                for tid in batch
                for action in ("training.create", "schedule.fired")
            ]
            audit.record_many(s, items)
        time.sleep(hold)  # the rest of the batch's work (versions, jobs)
        s.commit()
    batch_s = time.perf_counter() - t0
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    return {"batch_seconds": batch_s, **_pct([x for per in lat for x in per])}


def start_durable_postgres() -> Service:
    """tests.services' PostgreSQL, but with fsync on (its default is off): commits then wait for
    the disk, as in production, which is where a lock held until commit costs."""
    t0, port = time.monotonic(), free_port()
    tmp, as_pg = _initdb()
    data = tmp / "data"
    cmd = [str(pg_bindir() / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1"]
    cmd += ["-p", str(port), "-k", str(tmp), "-c", "fsync=on", "-c", "max_connections=200"]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    ready = lambda: _pg_ready(data)  # noqa: E731
    sigs = (signal.SIGINT, signal.SIGQUIT)
    return _start("postgres", "LORAPLEX_TEST_PG_URL", url, cmd, tmp, ready, t0, sigs, **as_pg)


def seed(sm: sessionmaker[Session], n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    rows = [{"id": t, "slug": f"t{k:06d}"} for k, t in enumerate(ids)]
    with sm() as s:
        s.execute(
            text(
                "INSERT INTO tenants (id, slug, display_name, quota_dataset_bytes, quota_adapters,"
                " traffic_logging, created_at, updated_at) VALUES (:id, :slug, :slug, 0, 0, true,"
                " now(), now())"
            ),
            rows,
        )
        for stmt in OLD_TABLES.strip().split(";\n"):
            s.execute(text(stmt))
        s.commit()
    return ids


def render(res: dict[str, Any]) -> str:
    r, w = res["results"], res["params"]["writers"]
    lines = [
        f"| audited writes ({w} writers) | old writes/s | new writes/s | new/old | old p99 ms | "
        "new p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    after = res["params"]["after_ms"]
    for case in ("own_tenants", "one_tenant", "own_tenants_then_work"):
        o, n = r[f"old_{case}"], r[f"new_{case}"]
        ratio = n["writes_per_s"] / o["writes_per_s"]
        label = case.replace("_then_work", f", {after:g} ms more in the transaction")
        lines.append(
            f"| {label.replace('_', ' ')} | {o['writes_per_s']:.0f} | {n['writes_per_s']:.0f} | "
            f"{ratio:.1f}x | {o['p99_ms']:.1f} | {n['p99_ms']:.1f} |"
        )
    lines += ["", "| API write during a tick batch | p50 ms | p99 ms | max ms | batch s |"]
    lines.append("|---|---:|---:|---:|---:|")
    for k in ("old", "new"):
        t = r[f"tick_{k}"]
        lines.append(
            f"| {k} | {t['p50_ms']:.1f} | {t['p99_ms']:.1f} | {t['max_ms']:.1f} | "
            f"{t['batch_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=500, help="tenants in the tick batch")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds the batch works after")
    ap.add_argument("--after-ms", type=float, default=5.0, help="work after the event, third case")
    ap.add_argument("--no-fsync", action="store_true", help="tests.services' fsync=off server")
    args = ap.parse_args()
    res: dict[str, Any] = {"params": vars(args)}
    audit.use_key(KEY)
    sweep_stale()
    pg = start_postgres() if args.no_fsync else start_durable_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="loraplex-audit-bench-"):
            url = create_database(pg.url, "loraplex_audit_bench")
            upgrade(url)
            engine = make_engine(url, pool_size=args.writers + 8)
            sm = make_sessionmaker(engine)
            tenants = seed(sm, args.writers + args.batch + 4)
            mine, batch = tenants[: args.writers], tenants[args.writers : -4]
            one = [tenants[0]] * args.writers
            r: dict[str, Any] = {}
            for name, write in (("old", old_write), ("new", new_write)):
                r[f"{name}_own_tenants"] = throughput(sm, write, mine, args.seconds)
                r[f"{name}_one_tenant"] = throughput(sm, write, one, args.seconds)
                slow = _then_work(write, args.after_ms)
                r[f"{name}_own_tenants_then_work"] = throughput(sm, slow, mine, args.seconds)
            for name in ("old", "new"):
                r[f"tick_{name}"] = tick_wait(sm, name == "old", batch, tenants[-4:], args.hold)
            with sm() as s:
                ok = audit.verify(s)
                r["verify_ok"], r["events"] = ok.ok, ok.events_checked
            res["results"] = r
            engine.dispose()
    finally:
        pg.stop()
    res["when"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res["machine"] = {"cpus": os.cpu_count(), "loadavg_incl_bench": os.getloadavg()}
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"audit_bench-{res['when'].replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
