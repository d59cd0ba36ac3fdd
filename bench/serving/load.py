"""Load generators: a batch of all prompts at once, closed-loop clients on raw HTTP/1.1, and a
looping gateway client that records which version answered."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.serving.common import NEW_TOKENS, PROMPTS, SMALL, latency_stats
from tests.serving.stack import ServingStack


async def batch(
    url: str, headers: dict[str, str], models: list[str], max_tokens: int = NEW_TOKENS
) -> dict[str, Any]:
    """All 16 prompts at once (so the engine batches them); generated tokens over wall time."""
    limits = httpx.Limits(max_connections=len(models), max_keepalive_connections=len(models))
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, trust_env=False, timeout=300
    ) as http:

        async def one(prompt: str, model: str) -> dict[str, Any]:
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
                "return_token_ids": True,
            }
            r = await http.post("/v1/completions", json=body)
            assert r.status_code == 200, f"{r.status_code}: {r.text[:300]}"
            return r.json()["choices"][0]

        t0 = time.perf_counter()
        outs = await asyncio.gather(*(one(p, m) for p, m in zip(PROMPTS, models, strict=False)))
        seconds = time.perf_counter() - t0
    tokens = sum(len(o["token_ids"]) for o in outs)
    assert tokens == max_tokens * len(models), tokens
    return {
        "seconds": seconds,
        "tok_s": tokens / seconds,
        "prompt_ids": [o["prompt_token_ids"] for o in outs],
        "token_ids": [o["token_ids"] for o in outs],
    }


def run_batch(url: str, headers: dict[str, str], models: list[str]) -> dict[str, Any]:
    return asyncio.run(batch(url, headers, models))


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def closed_loop(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    streams: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """`streams` closed-loop clients on keep-alive connections, HTTP/1.1 written and parsed by
    hand (cheaper than httpx, so the load generator takes less of the 2 cores)."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    request = ("\r\n".join(head + [f"{k}: {v}" for k, v in headers.items()]) + "\r\n\r\n").encode()
    request += payload
    lat: list[float] = []
    errors = sent = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def worker() -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (t0 := time.perf_counter()) < end:
                writer.write(request)
                resp = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(resp)
                assert length is not None, resp
                await reader.readexactly(int(length[1]))
                sent += 1
                if t0 >= measure_from:
                    lat.append(time.perf_counter() - t0)
                    errors += resp[9:12] != b"200"
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(streams)))
    return {"req_per_s": len(lat) / seconds, "errors": errors, "sent": sent, **latency_stats(lat)}


class Looper(threading.Thread):
    """One gateway client sending max_tokens=1 requests for `orders` back to back."""

    def __init__(self, stack: ServingStack) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=stack.gateway_url, headers=stack.tokens["acme"], trust_env=False, timeout=120
        )
        self.records: list[tuple[float, str | None, int]] = []  # (done at, version label, status)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            r = self.http.post("/v1/completions", json={**SMALL, "model": "orders"})
            self.records.append(
                (time.perf_counter(), r.headers.get("x-loraplex-model"), r.status_code)
            )

    def first(self, label: str, after: float, timeout: float = 60) -> tuple[float, int]:
        """When the first response naming `label` arrived after `after`; errors seen since."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            recs = [r for r in list(self.records) if r[0] > after]
            for done, seen, _ in recs:
                if seen == label:
                    return done, sum(r[2] != 200 for r in recs if r[0] <= done)
            time.sleep(0.005)
        raise TimeoutError(f"no response from {label} within {timeout} s")
