"""Token buckets per key: per tenant (requests, generated tokens) and per client address (failed
auth). Per gateway process: with N replicas a key gets up to N x. At most `max_keys` buckets are
kept (least recently used go first; a dropped bucket comes back full, as an idle one would be)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
