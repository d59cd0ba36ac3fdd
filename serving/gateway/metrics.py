"""Gateway metrics, labelled by tenant, adapter and the immutable version that answered.

The labels name tenants and their traffic, so they are served on an internal port of their own
(`gateway_metrics_port`), never on the tenant-facing one. One process per port: with uvicorn
`--workers N` the second worker cannot bind it and refuses to start (scale gateways by replicas).
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
# Push promotion and shared rate limits (issue 19, H6).
ROUTE_NOTIFICATIONS = Counter(
    "loraplex_gateway_route_notifications_total",
    "Route changes pushed by the registry (LISTEN/NOTIFY), and full drops on (re)connect",
    ["kind"],  # tenant | all
)
ROUTE_LISTENER_CONNECTED = Gauge(
    "loraplex_gateway_route_listener_connected",
    "1 while the gateway listens for route changes (0: the TTL alone applies)",
)
RATELIMIT_REDIS_OUTAGES = Counter(
    "loraplex_gateway_ratelimit_redis_outages_total",
    "Times Redis became unreachable for the shared rate limits (per-process buckets meanwhile)",
)
RATELIMIT_LOCAL_FALLBACK = Counter(
    "loraplex_gateway_ratelimit_fallback_total",
    "Rate-limit decisions taken per process because Redis was unreachable",
    ["bucket"],
)
# Engines and routing (issue 19, H5): one series per engine (host:port), removed when DNS drops it.
ENGINE_HEALTHY = Gauge(
    "loraplex_gateway_engine_healthy", "1 while the engine answers /health", ["engine"]
)
ENGINE_INFLIGHT = Gauge(
    "loraplex_gateway_engine_inflight", "This gateway's requests in flight on it", ["engine"]
)
ENGINE_LOAD = Gauge(
    "loraplex_gateway_engine_load",
    "Requests waiting + running on the engine (its vllm:num_requests_*), at the last poll",
    ["engine"],
)
ENGINE_RESIDENT = Gauge(
    "loraplex_gateway_engine_resident_adapters",
    "Adapter versions the engine holds (its /v1/models), at the last poll",
    ["engine"],
)
ENGINE_ADAPTER = Gauge(
    "loraplex_gateway_engine_adapter_resident",
    "1 for each adapter version (engine name) resident on each engine",
    ["engine", "model"],
)
ENGINE_REQUESTS = Counter(
    "loraplex_gateway_engine_requests_total", "Requests the engine answered", ["engine"]
)
ENGINE_FAILURES = Counter(
    "loraplex_gateway_engine_failures_total",
    "Requests that failed on the engine before its response head (retried once elsewhere)",
    ["engine"],
)
ENGINE_DOWN = Counter(
    "loraplex_gateway_engine_down_total",
    "Times the engine was marked down (a failed poll or request); placement moves meanwhile",
    ["engine"],
)
ROUTING = Counter(
    "loraplex_gateway_routing_decisions_total",
    "Engine choices by kind: affinity, spill, retry, random, least_loaded, none",
    ["kind"],
)
STREAM_FAILURES = Counter(
    "loraplex_gateway_stream_failures_total",
    "Streams cut after their response head (reported to the caller as a cut; never replayed)",
    ["engine"],
)


def serve(host: str, port: int) -> tuple[WSGIServer, Thread]:
    """Start /metrics on `host:port` in a thread; the caller shuts the server down."""
    try:
        return start_http_server(port, addr=host)
    except OSError as exc:
        raise RuntimeError(
            f"gateway metrics cannot listen on {host}:{port} ({exc.strerror}): another process "
            "holds it, e.g. a second uvicorn worker; run one gateway process per metrics port"
        ) from exc
