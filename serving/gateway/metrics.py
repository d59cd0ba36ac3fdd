"""Gateway metrics, labelled by tenant, adapter and the immutable version that answered.

The labels name tenants and their traffic, so they are served on an internal port of their own
(`gateway_metrics_port`), never on the tenant-facing one. One process per port: with uvicorn
`--workers N` the second worker cannot bind it and refuses to start (scale gateways by replicas).
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "loraplex_gateway_requests_total",
    "Inference requests by outcome",
    ["tenant", "adapter", "version", "endpoint", "status"],
)
LATENCY = Histogram(
    "loraplex_gateway_request_seconds",
    "Request latency, to the last byte",
    ["tenant", "adapter", "version", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
TTFB = Histogram(
    "loraplex_gateway_first_byte_seconds",
    "Time to the engine's first byte (streaming: first token)",
    ["tenant", "adapter", "version"],
    buckets=LATENCY_BUCKETS,
)
OVERHEAD = Histogram(
    "loraplex_gateway_overhead_seconds",
    "Time spent in the gateway before the request reaches the engine",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
TOKENS = Counter(
    "loraplex_gateway_tokens_total",
    "Tokens by kind (prompt, completion)",
    ["tenant", "adapter", "version", "kind"],
)
REJECTED = Counter(
    "loraplex_gateway_rejected_total",
    "Requests refused before the engine (auth, model, rate limit, bad body)",
    ["reason"],
)
SAMPLED = Counter("loraplex_gateway_traffic_sampled_total", "Prompts kept for drift", ["tenant"])


def serve(host: str, port: int) -> tuple[WSGIServer, Thread]:
    """Start /metrics on `host:port` in a thread; the caller shuts the server down."""
    try:
        return start_http_server(port, addr=host)
    except OSError as exc:
        raise RuntimeError(
            f"gateway metrics cannot listen on {host}:{port} ({exc.strerror}): another process "
            "holds it, e.g. a second uvicorn worker; run one gateway process per metrics port"
        ) from exc
