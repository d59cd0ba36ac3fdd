"""4. Cold adapter loads: a fresh version's first request vs a warm one."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.serving.common import SMALL, hist, median, progress
from serving.names import engine_name
from tests.serving.stack import ServingStack


def bench_cold(stack: ServingStack, folders: list[Path]) -> dict[str, Any]:
    """Each fresh version: upload, then its first request (max_tokens=1) straight to the engine,
    then 3 warm ones; the resolver histogram's delta is its DB lookup + S3 fetch + sha256."""
    stack.create_adapter("acme", "fresh")
    headers = {"Authorization": f"Bearer {stack.engine_key}"}
    rows = []
    with httpx.Client(
        base_url=stack.engine_url, headers=headers, trust_env=False, timeout=120
    ) as http:

        def timed(model: str) -> float:
            t0 = time.perf_counter()
            r = http.post("/v1/completions", json={**SMALL, "model": model})
            assert r.status_code == 200, r.text
            return time.perf_counter() - t0

        timed("tiny")
        for folder in folders:
            t0 = time.perf_counter()
            version = stack.upload("acme", "fresh", folder)
            upload_s = time.perf_counter() - t0
            name = engine_name(uuid.UUID(version["id"]))
            h0 = hist(stack.engine_url, "loraplex_resolver_load_seconds")
            cold = timed(name)
            h1 = hist(stack.engine_url, "loraplex_resolver_load_seconds")
            warm = median([timed(name) for _ in range(3)])
            assert h1[1] - h0[1] == 1, "expected exactly one resolver call"
            resolver = h1[0] - h0[0]
            row = {
                "upload_s": upload_s,
                "cold_ms": cold * 1e3,
                "warm_ms": warm * 1e3,
                "resolver_ms": resolver * 1e3,
            }
            row["cold_minus_warm_ms"] = row["cold_ms"] - row["warm_ms"]
            row["vllm_load_ms"] = row["cold_minus_warm_ms"] - row["resolver_ms"]
            progress(
                f"cold load v{version['version']}: cold {row['cold_ms']:.0f} ms, warm "
                f"{row['warm_ms']:.0f} ms, resolver {row['resolver_ms']:.0f} ms"
            )
            rows.append(row)
    keys = ("cold_ms", "warm_ms", "cold_minus_warm_ms", "resolver_ms", "vllm_load_ms", "upload_s")
    return {"runs": rows, **{k: median([r[k] for r in rows]) for k in keys}}
