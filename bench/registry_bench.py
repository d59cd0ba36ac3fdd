"""Registry benchmark: dataset upload throughput vs plain boto3, and read-endpoint latency.

    .venv/bin/python -m bench.registry_bench [--mb 200] [--repeats 3] [--clients 16] [--seconds 10]
        [--upload-only]

Starts its own PostgreSQL and moto S3 (tests.services) and a real registry process
(tests.live), prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import io
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.legacy_s3_writer import LegacyS3ObjectWriter
from registry.storage import S3ObjectStore, open_store
from tests.live import BUCKET, LiveRegistry, start_registry
from tests.registry.datasets.test_large_upload import write_chat_jsonl
from tests.services import AWS_ENV, start_postgres, start_s3, sweep_stale

MiB = 1 << 20
RESULTS = Path(__file__).parent / "results"


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(fn: Callable[[], None], pid: int | None = None) -> dict[str, float]:
    cpu0 = _cpu_s(pid) if pid else 0.0
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds}
    if pid:
        out["server_cpu_s"] = _cpu_s(pid) - cpu0
    return out


def _tenant(live: LiveRegistry, http: httpx.Client, ops: dict[str, str]) -> tuple[str, dict]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    resp = http.post("/v1/tenants", json={"slug": slug, "display_name": slug}, headers=ops)
    resp.raise_for_status()
    resp = http.post(f"/v1/tenants/{slug}/clients", json={}, headers=ops)
    resp.raise_for_status()
    client = resp.json()
    return slug, live.bearer(client["client_id"], client["client_secret"])


class _EofClock(io.FileIO):
    """A file that notes when it was read to the end: the request body is then all sent."""

    eof_at = 0.0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if not data and size != 0:  # b"" at the end (None only in non-blocking mode)
            self.eof_at = time.perf_counter()
        return data or b""


def _api_upload(
    http: httpx.Client, path: Path, slug: str, headers: dict[str, str], out: dict[str, Any]
) -> None:
    with _EofClock(path) as f:  # streamed: httpx reads the file in 64 KiB chunks as it sends
        resp = http.post(
            f"/v1/tenants/{slug}/datasets",
            headers=headers,
            data={"name": "bench"},
            files={"file": (path.name, f, "application/x-ndjson")},
        )
    # After the last byte was sent: the last parts, completing the multipart upload (on the
    # dataset's own key: no copy), the database insert.
    out["after_body_s"] = time.perf_counter() - f.eof_at
    assert resp.status_code == 201, resp.text
    out.update(resp.json(), slug=slug, headers=headers)


def _writer_upload(s3_url: str, path: Path, legacy: bool = False) -> dict[str, float]:
    """The registry's S3 writer alone, in this process, opened on its key as a dataset upload's
    is: 1 MiB writes, then commit (the last parts and completing the upload). `legacy`: the
    writer before uploads went straight to their key (one part at a time to `_tmp/`, then
    complete and a server-side copy; bench/legacy_s3_writer.py)."""
    store = open_store(f"s3://{BUCKET}/bench-writer", s3_endpoint_url=s3_url, s3_region="us-east-1")
    assert isinstance(store, S3ObjectStore)
    key = f"{uuid.uuid4().hex}.jsonl"
    t0 = time.perf_counter()
    writer = LegacyS3ObjectWriter(store) if legacy else store.writer(key)
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            writer.write(chunk)
    t1 = time.perf_counter()
    stored = writer.commit(key)
    t2 = time.perf_counter()
    store.delete(stored.key)
    return {"seconds": t2 - t0, "write_parts_s": t1 - t0, "commit_s": t2 - t1}


def bench_upload(
    live: LiveRegistry, s3_url: str, path: Path, repeats: int, warmup: int
) -> dict[str, Any]:
    """Each API upload goes to a fresh tenant, so every run stores the object (no dedupe).

    The first `warmup` rounds are not counted: the first large objects make moto grow its heap.
    """
    size_mb = path.stat().st_size / MiB
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1", config=Config(signature_version="s3v4")
    )
    names = ("api", "boto3", "boto3_serial", "writer", "legacy_writer")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    dataset: dict[str, Any] = {}

    def boto3_upload(config: TransferConfig) -> None:
        key = f"bench/{uuid.uuid4().hex}.jsonl"
        s3.upload_file(str(path), BUCKET, key, Config=config)
        s3.delete_object(Bucket=BUCKET, Key=key)

    with live.http(timeout=600) as http:
        ops = live.bearer()
        for round_ in range(warmup + repeats):
            slug, headers = _tenant(live, http, ops)
            upload = functools.partial(_api_upload, http, path, slug, headers, dataset)
            api = _timed(upload, live.pid) | {"after_body_s": dataset.pop("after_body_s")}
            # deletes are in the timings; they take milliseconds on moto
            default = _timed(functools.partial(boto3_upload, TransferConfig()))
            serial = _timed(functools.partial(boto3_upload, TransferConfig(max_concurrency=1)))
            writer = _writer_upload(s3_url, path)
            legacy = _writer_upload(s3_url, path, legacy=True)
            if round_ >= warmup:
                results = (api, default, serial, writer, legacy)
                for name, result in zip(names, results, strict=True):
                    runs[name].append(result)
    out: dict[str, Any] = {"file_mb": round(size_mb, 1), "dataset": dataset}
    for name, rs in runs.items():
        for r in rs:
            r["mb_per_s"] = size_mb / r["seconds"]
        out[name] = {"runs": rs, "median_mb_per_s": statistics.median(r["mb_per_s"] for r in rs)}
    out["ratio_api_to_boto3"] = out["api"]["median_mb_per_s"] / out["boto3"]["median_mb_per_s"]
    return out


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def _load(
    url: str,
    headers: dict[str, str],
    *,
    clients: int,
    seconds: float,
    warmup: float,
    loadgen: str,
) -> dict[str, Any]:
    """`clients` closed-loop workers, one keep-alive connection each; warm-up not counted.

    loadgen "raw": GETs written and parsed by hand on asyncio streams (needs Content-Length
    responses), several times cheaper per request than "httpx" (httpx.AsyncClient), so that on
    a small machine the generator takes less CPU away from the server it measures.
    """
    latencies: list[float] = []
    statuses: list[int] = []
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    def record(t0: float, status: int) -> None:
        if t0 >= measure_from:
            latencies.append(time.perf_counter() - t0)
            statuses.append(status)

    async def raw_worker() -> None:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = [f"GET {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode()
        try:
            while (t0 := time.perf_counter()) < end:
                writer.write(request)
                resp = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(resp)
                assert length is not None, resp
                await reader.readexactly(int(length[1]))
                record(t0, int(resp[9:12]))
        finally:
            writer.close()

    async def httpx_worker(http: httpx.AsyncClient) -> None:
        while (t0 := time.perf_counter()) < end:
            resp = await http.get(url, headers=headers)
            record(t0, resp.status_code)

    if loadgen == "raw":
        await asyncio.gather(*(raw_worker() for _ in range(clients)))
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as http:
            await asyncio.gather(*(httpx_worker(http) for _ in range(clients)))
    errors = sum(status != 200 for status in statuses)
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    return {
        "requests": len(ms),
        "errors": errors,
        "req_per_s": len(ms) / seconds,
        "p50_ms": q[49],
        "p95_ms": q[94],
        "p99_ms": q[98],
    }


def bench_reads(
    live: LiveRegistry, dataset: dict[str, Any], clients: int, seconds: float, loadgen: str
) -> dict[str, Any]:
    label = "raw asyncio HTTP/1.1" if loadgen == "raw" else "httpx.AsyncClient"
    out: dict[str, Any] = {"load_generator": f"{label}, {clients} closed-loop keep-alive clients"}
    targets = {
        "dataset_get": (
            f"{live.base_url}/v1/tenants/{dataset['slug']}/datasets/{dataset['id']}",
            dataset["headers"],
        ),
        "healthz": (f"{live.base_url}/healthz", {}),
    }
    for name, (url, headers) in targets.items():
        cpu0, own0 = _cpu_s(live.pid), time.process_time()
        result = asyncio.run(
            _load(url, headers, clients=clients, seconds=seconds, warmup=1.0, loadgen=loadgen)
        )
        # CPU over warm-up + measurement: ~1.0 = one core busy. The server is one process.
        result["server_cpu_cores"] = (_cpu_s(live.pid) - cpu0) / (seconds + 1.0)
        result["load_generator_cpu_cores"] = (time.process_time() - own0) / (seconds + 1.0)
        out[name] = result
    out["ratio_dataset_get_to_healthz"] = (
        out["dataset_get"]["req_per_s"] / out["healthz"]["req_per_s"]
    )
    return out


def _git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def render(res: dict[str, Any]) -> str:
    up, rd = res["upload"], res.get("reads")
    lines = [
        f"### Upload of a {up['file_mb']} MB JSONL ({res['params']['repeats']} runs, medians)",
        "",
        "| path | MB/s | runs (s) | notes (medians) |",
        "| --- | ---: | --- | --- |",
    ]
    for name, label in (
        ("api", "API: POST /v1/tenants/{t}/datasets (validate + dedup + S3 multipart on its key)"),
        ("boto3", "boto3 upload_file, default TransferConfig (10 threads)"),
        ("boto3_serial", "boto3 upload_file, max_concurrency=1 (context)"),
        ("writer", "registry S3ObjectWriter alone, in-process (context)"),
        ("legacy_writer", "the writer before: `_tmp/` + complete + copy, in-process (context)"),
    ):
        rs = up[name]["runs"]
        runs = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        notes = ""
        if name == "api":
            after = statistics.median(r["after_body_s"] for r in rs)
            cpu = statistics.median(r["server_cpu_s"] for r in rs)
            notes = f"{after:.2f} s after the body was sent; server CPU {cpu:.2f} s"
        elif name in ("writer", "legacy_writer"):
            write = statistics.median(r["write_parts_s"] for r in rs)
            commit = statistics.median(r["commit_s"] for r in rs)
            what = "last parts + complete" if name == "writer" else "last part + complete + copy"
            notes = f"writes + parts {write:.2f} s; commit ({what}) {commit:.2f} s"
        lines.append(f"| {label} | {up[name]['median_mb_per_s']:.1f} | {runs} | {notes} |")
    lines += [
        "",
        f"**api / boto3 = {up['ratio_api_to_boto3']:.2f}** (target >= 0.8)",
    ]
    if rd is None:
        return "\n".join(lines)
    lines += [
        "",
        f"### Reads, {rd['load_generator']}, {res['params']['seconds']} s each",
        "",
        "| endpoint | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU | loadgen CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (("dataset_get", "GET dataset (bearer)"), ("healthz", "GET /healthz")):
        r = rd[name]
        lines.append(
            f"| {label} | {r['req_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {r['server_cpu_cores']:.2f} | "
            f"{r['load_generator_cpu_cores']:.2f} |"
        )
    lines += ["", f"**dataset GET / healthz = {rd['ratio_dataset_get_to_healthz']:.2f}**"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="size of the generated JSONL")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="upload rounds not counted")
    ap.add_argument("--clients", type=int, default=16, help="concurrent read clients")
    ap.add_argument("--seconds", type=float, default=10.0, help="read load duration")
    ap.add_argument("--loadgen", choices=["raw", "httpx"], default="raw", help="read load client")
    ap.add_argument("--upload-only", action="store_true", help="skip the read measures")
    args = ap.parse_args()
    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    sweep_stale()
    pg = start_postgres()
    s3 = start_s3()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="loraplex-bench-") as tmp,
            start_registry(pg.url, s3.url) as live,
        ):
            data = write_chat_jsonl(Path(tmp) / "bench.jsonl", args.mb * MiB)
            upload = bench_upload(live, s3.url, data.path, args.repeats, args.warmup)
            dataset = upload.pop("dataset")
            reads = None
            if not args.upload_only:
                reads = bench_reads(live, dataset, args.clients, args.seconds, args.loadgen)
    finally:
        s3.stop()
        pg.stop()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res: dict[str, Any] = {
        "when": when,
        "git": _git_rev(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(args),
        "upload": upload,
        **({"reads": reads} if reads is not None else {}),
    }
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"registry_bench-{when.replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
