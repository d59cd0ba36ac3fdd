"""5. Promotion -> first response from the new version through the gateway."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from bench.serving.common import median, progress
from bench.serving.load import Looper
from tests.serving.stack import ServingStack


def bench_promotion(stack: ServingStack, fresh: list[Path], count: int) -> dict[str, Any]:
    """orders: v1 <-> v2 (both warm) alternate with never-served versions uploaded beforehand."""
    cold_versions = [stack.upload("acme", "orders", f)["version"] for f in fresh[:count]]
    looper = Looper(stack)
    looper.start()
    runs: dict[str, list[dict[str, float]]] = {"warm": [], "cold": []}
    try:
        looper.first("orders@v1", 0)
        rng = random.Random(7)
        for k in range(count):
            for kind, version in (("warm", 2 - k % 2), ("cold", cold_versions[k])):
                # Past the resolve TTL (0.5 s), then a random phase of the cache's refresh cycle:
                # a fixed pause would put every PUT at the same point of it.
                time.sleep(0.6 + 0.5 * rng.random())
                t0 = time.perf_counter()
                stack.promote("acme", "orders", version)
                t_put = time.perf_counter()
                done, errors = looper.first(f"orders@v{version}", t0)
                row = {
                    "put_ms": (t_put - t0) * 1e3,
                    "to_first_ms": (done - t_put) * 1e3,
                    "errors": errors,
                }
                progress(
                    f"promotion {kind} -> v{version}: first new response "
                    f"{row['to_first_ms']:.0f} ms after the PUT returned"
                )
                runs[kind].append(row)
    finally:
        looper.stopping.set()
        looper.join(30)
        looper.http.close()
    out: dict[str, Any] = {"runs": runs, "requests": len(looper.records)}
    for kind, rs in runs.items():
        ms = [r["to_first_ms"] for r in rs]
        out[kind] = {
            "median_ms": median(ms),
            "min_ms": min(ms),
            "max_ms": max(ms),
            "put_median_ms": median([r["put_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
        }
    return out
