"""Closed-loop clients on keep-alive connections, HTTP/1.1 written and parsed by hand (so the
load generator takes as little of the machine as it can): whole answers (content-length) and
streams (chunked, timed to the last byte and to the first event)."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
LAST_CHUNK = b"0\r\n\r\n"


def request_bytes(url: str, headers: dict[str, str], body: dict[str, Any]) -> bytes:
    parts = urlsplit(url)
    payload = orjson.dumps(body)
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, float | None]:
    """(head, when the first body byte arrived for a chunked answer); the body is read whole."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    if length is not None:
        await reader.readexactly(int(length[1]))
        return head, None
    if _CHUNKED.search(head) is None:
        raise RuntimeError(f"neither content-length nor chunked: {head[:200]!r}")
    first = await reader.readuntil(b"\r\n")  # the first chunk's size line
    first_at = time.perf_counter()
    if first != LAST_CHUNK[:3]:
        await reader.readuntil(b"\r\n" + LAST_CHUNK)
    else:
        await reader.readuntil(b"\r\n")
    return head, first_at


async def closed_loop(
    url: str, headers: dict[str, str], body: dict[str, Any], streams: int, seconds: float
) -> dict[str, Any]:
    """`streams` clients sending `body` back to back for `warm-up + seconds`; latencies of the
    `seconds` part (a quarter of `seconds` of warm-up, at least 0.3 s)."""
    parts = urlsplit(url)
    request = request_bytes(url, headers, body)
    lat: list[float] = []
    first: list[float] = []
    errors = sent = 0
    start = time.perf_counter()
    measure_from = start + max(0.3, seconds / 4)
    end = measure_from + seconds

    async def worker() -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (t0 := time.perf_counter()) < end:
                writer.write(request)
                head, first_at = await _read_answer(reader)
                t1 = time.perf_counter()
                sent += 1
                if t0 >= measure_from:
                    lat.append(t1 - t0)
                    if first_at is not None:
                        first.append(first_at - t0)
                    errors += head[9:12] != b"200"
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(streams)))
    out = {"req_per_s": len(lat) / seconds, "errors": errors, "sent": sent, **stats(lat)}
    if first:
        out["ttfb_p50_ms"] = stats(first)["p50_ms"]
    return out


def stats(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {"n": len(seconds), "p50_ms": float("nan"), "p99_ms": float("nan")}
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50_ms": q[49], "p99_ms": q[98], "mean_ms": statistics.fmean(ms)}
