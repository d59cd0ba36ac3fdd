"""Token buckets per key: per tenant (requests, generated tokens) and per client address (failed
auth). Per gateway process: with N replicas a key gets up to N x. At most `max_keys` buckets are
kept (least recently used go first; a dropped bucket comes back full, as an idle one would be).

The tenant buckets are reached through `Buckets`, an async interface: `LocalBuckets` (these, per
process) or, with Redis configured, `ratelimit_redis.RedisBuckets` (shared by every replica).
Failed-auth buckets stay per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cachetools import LRUCache

MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    rate: float  # tokens added per second
    burst: int  # bucket size
    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    _buckets: LRUCache[str, _Bucket] = field(init=False)

    def __post_init__(self) -> None:
        self._buckets = LRUCache(self.max_keys)

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = _Bucket(tokens=float(self.burst), updated=now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        self._buckets[key] = b
        return b

    def wait(self, key: str, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there (0: now), taking none. A cost above the burst
        waits for a full bucket."""
        b = self._bucket(key)
        need = min(cost, float(self.burst))
        return 0.0 if b.tokens >= need else (need - b.tokens) / self.rate

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 and `cost` (at most the burst) tokens taken if they are there, else `wait`."""
        wait = self.wait(key, cost)
        if wait == 0.0:
            self._buckets[key].tokens -= min(cost, float(self.burst))
        return wait

    def give(self, key: str, tokens: float) -> None:
        """Give back (or, negative, charge more): the bucket may go below zero, a debt that
        later requests wait out."""
        b = self._bucket(key)
        b.tokens = min(float(self.burst), b.tokens + tokens)


class Buckets(Protocol):
    """Per-tenant buckets as the gateway uses them, from the event loop."""

    @property
    def burst(self) -> int: ...

    async def take(self, key: str, cost: float = 1.0) -> float:
        """0 and `cost` taken, or the seconds to wait (taking none); see `RateLimiter.take`."""
        ...

    async def give(self, key: str, tokens: float) -> None:
        """Give back, or (negative) charge a debt; see `RateLimiter.give`."""
        ...

    def settle(self, key: str, tokens: float) -> None:
        """`give`, without waiting for it (from a synchronous callback on the event loop)."""
        ...

    async def close(self) -> None: ...


class LocalBuckets:
    """`RateLimiter` (this process's buckets) behind `Buckets`."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    @property
    def burst(self) -> int:
        return self.limiter.burst

    async def take(self, key: str, cost: float = 1.0) -> float:
        return self.limiter.take(key, cost)

    async def give(self, key: str, tokens: float) -> None:
        self.limiter.give(key, tokens)

    def settle(self, key: str, tokens: float) -> None:
        if tokens:
            self.limiter.give(key, tokens)

    async def close(self) -> None:
        return None
