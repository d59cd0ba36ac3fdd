"""Prometheus metrics of the resolver's adapter cache (`serving/cache.py`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_FETCH_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)


@dataclass(frozen=True)
class CacheMetrics:
    hits: Counter
    misses: Counter
    evictions: Counter
    bytes: Gauge
    entries: Gauge
    fetch_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> CacheMetrics:
        """Builds and registers the metrics on `registry`. None means prometheus_client's default
        REGISTRY, where one shared set is built per process and returned on every call
        (registering the same names twice there would fail)."""
        if registry is not None:
            return cls._build(registry)
        global _default_metrics
        with _default_metrics_lock:
            if _default_metrics is None:
                _default_metrics = cls._build(REGISTRY)
            return _default_metrics

    @classmethod
    def _build(cls, reg: CollectorRegistry) -> CacheMetrics:
        return cls(
            hits=Counter("loraplex_resolver_cache_hits", "Adapter cache hits", registry=reg),
            misses=Counter("loraplex_resolver_cache_misses", "Adapter cache misses", registry=reg),
            evictions=Counter(
                "loraplex_resolver_cache_evictions", "Adapter cache evictions", registry=reg
            ),
            bytes=Gauge("loraplex_resolver_cache_bytes", "Bytes of cached adapters", registry=reg),
            entries=Gauge(
                "loraplex_resolver_cache_entries", "Adapter versions cached", registry=reg
            ),
            fetch_seconds=Histogram(
                "loraplex_resolver_fetch_seconds",
                "Time to download one adapter version into the cache",
                buckets=_FETCH_BUCKETS,
                registry=reg,
            ),
        )


_default_metrics: CacheMetrics | None = None
_default_metrics_lock = threading.Lock()
