"""3. The gateway against the engine directly: latency, its overhead histogram, CPU per request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.serving.common import OVERHEAD, SMALL, hist, median, progress
from bench.serving.load import closed_loop
from bench.serving.processes import cpu_s
from tests.serving.stack import ServingStack


def bench_gateway(
    stack: ServingStack, orders_v1: str, repeats: int, seconds: float, streams: list[int]
) -> dict[str, Any]:
    gateway_pid, engine_pid = stack.services[1].proc.pid, stack.services[0].proc.pid
    paths = {
        "direct": (
            f"{stack.engine_url}/v1/completions",
            {"Authorization": f"Bearer {stack.engine_key}"},
            {**SMALL, "model": orders_v1},
        ),
        "gateway": (
            f"{stack.gateway_url}/v1/completions",
            stack.tokens["acme"],
            {**SMALL, "model": "orders"},
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {f"{p}_{n}": [] for n in streams for p in paths}
    for rep in range(repeats):
        for n in streams:
            for path in paths if rep % 2 == 0 else reversed(paths):  # alternate the order
                url, headers, body = paths[path]
                m0 = hist(stack.gateway_metrics_url, OVERHEAD, ("0.001", "0.002"))
                cpu0 = (cpu_s(gateway_pid), cpu_s(engine_pid, tree=True), time.process_time())
                r = asyncio.run(closed_loop(url, headers, body, n, seconds, warmup=0.5))
                cpu1 = (cpu_s(gateway_pid), cpu_s(engine_pid, tree=True), time.process_time())
                m1 = hist(stack.gateway_metrics_url, OVERHEAD, ("0.001", "0.002"))
                r["gateway_cpu_ms_per_req"] = (cpu1[0] - cpu0[0]) * 1e3 / r.pop("sent")
                r["engine_cpu_cores"] = (cpu1[1] - cpu0[1]) / (seconds + 0.5)
                r["loadgen_cpu_cores"] = (cpu1[2] - cpu0[2]) / (seconds + 0.5)
                if path == "gateway" and m1[1] > m0[1]:
                    count = m1[1] - m0[1]
                    r["in_gateway_mean_ms"] = (m1[0] - m0[0]) / count * 1e3
                    r["in_gateway_under_1ms"] = (m1[2] - m0[2]) / count
                    r["in_gateway_under_2ms"] = (m1[3] - m0[3]) / count
                progress(
                    f"gateway run {rep + 1}: {path} x{n} p50 {r['p50_ms']:.2f} ms "
                    f"p99 {r['p99_ms']:.2f} ms {r['req_per_s']:.0f} req/s"
                )
                runs[f"{path}_{n}"].append(r)
    out: dict[str, Any] = {"runs": runs}
    for n in streams:
        d, g = runs[f"direct_{n}"], runs[f"gateway_{n}"]
        row = {
            "direct_p50_ms": median([r["p50_ms"] for r in d]),
            "gateway_p50_ms": median([r["p50_ms"] for r in g]),
            "direct_p99_ms": median([r["p99_ms"] for r in d]),
            "gateway_p99_ms": median([r["p99_ms"] for r in g]),
            "direct_req_per_s": median([r["req_per_s"] for r in d]),
            "gateway_req_per_s": median([r["req_per_s"] for r in g]),
            "in_gateway_mean_ms": median([r["in_gateway_mean_ms"] for r in g]),
            "in_gateway_under_1ms": median([r["in_gateway_under_1ms"] for r in g]),
            "in_gateway_under_2ms": median([r["in_gateway_under_2ms"] for r in g]),
            "gateway_cpu_ms_per_req": median([r["gateway_cpu_ms_per_req"] for r in g]),
            "errors": sum(r["errors"] for r in d + g),
        }
        row["overhead_p50_ms"] = row["gateway_p50_ms"] - row["direct_p50_ms"]
        row["overhead_p99_ms"] = row["gateway_p99_ms"] - row["direct_p99_ms"]
        row["ratio_p50"] = row["gateway_p50_ms"] / row["direct_p50_ms"]
        out[f"streams_{n}"] = row
    return out
