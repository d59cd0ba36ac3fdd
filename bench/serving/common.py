"""Constants and helpers shared by the serving benchmark's measurements."""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent.parent / "results"
NEW_TOKENS = 32
PROMPTS = [
    "Where is my order? I placed it last week and",
    "Hello, I would like to change the delivery address for",
    "The customer asked for a refund because the package",
    "Please reset my password, I cannot log in since",
    "Our invoice shows a charge twice for the same",
    "Can you tell me when the store opens on",
    "I received the wrong size of shoes and need",
    "My subscription renewed although I cancelled it in",
    "The tracking page says delivered but nothing arrived at",
    "How do I add a second user to my account so that",
    "The app crashes every time I open the settings",
    "Is there a discount for ordering more than ten",
    "I want to cancel order number 4471 before it",
    "Which payment methods do you accept for international",
    "The product description says waterproof, but after one",
    "Thank you for the quick help yesterday, one more question about",
]
# (tenant, adapter, seed): the 8 versions of the throughput runs; orders v1/v2 are also the warm
# pair of the promotion runs and orders v1 the target of the gateway runs.
THROUGHPUT = [
    ("acme", "orders", 101),
    ("acme", "orders", 102),
    ("acme", "billing", 103),
    ("acme", "billing", 104),
    ("globex", "support", 105),
    ("globex", "support", 106),
    ("globex", "search", 107),
    ("globex", "search", 108),
]
STACK_ENV = {
    "LORAPLEX_GATEWAY_RATE_LIMIT_RPS": "100000",  # the rate limiter must not shape the load
    "LORAPLEX_GATEWAY_RATE_LIMIT_BURST": "100000",
    "LORAPLEX_ENGINE_MAX_LORAS": "8",
    "LORAPLEX_TRAFFIC_SAMPLE_RATE": "0.1",
}
SETTLE_S = 1.5
OVERHEAD = "loraplex_gateway_overhead_seconds"
SMALL = {"prompt": "Where is my order?", "max_tokens": 1, "temperature": 0}


def progress(msg: str) -> None:
    print(f"[bench.serving {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def metric_sum(text: str, name: str) -> float:
    """Sum of the samples of one Prometheus metric (all label sets) in an exposition text."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def hist(url: str, name: str, les: tuple[str, ...] = ()) -> list[float]:
    """[sum, count, count in bucket le for each of `les`] of a histogram at `url`/metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    keys = [f"{name}_sum", f"{name}_count"] + [f'{name}_bucket{{le="{le}"}}' for le in les]
    return [metric_sum(text, k) for k in keys]


def latency_stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    return {"n": len(ms), "p50_ms": q[49], "p99_ms": q[98], "mean_ms": statistics.fmean(ms)}


def median(xs: list[float]) -> float:
    return statistics.median(xs)
